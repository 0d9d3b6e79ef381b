-- hwfota.trigger.once and hwfota.trigger.socket in process: one flow at a time,
-- and a socket listener that wakes on its socket, not on a timer.
local hwfota = require "hwfota"
local once = require "hwfota.trigger.once"
local trigger = require "hwfota.trigger.socket"
local socket = require "socket"

describe("hwfota.trigger.once", function()
  it("runs one flow at a time and refuses while busy", function()
    local done = {}
    local r = once.new(function(...) done[#done + 1] = table.pack(...) end)
    assert.is_true(r:start(function(x) hwfota.sleep(0.1); return x * 2 end, 21))
    assert.is_true(r:busy())
    local ok, msg, code = r:start(function() end)
    assert.is_nil(ok)
    assert.equal("EBUSY", code)
    assert.matches("already running", msg)
    assert.same({}, hwfota.loop())
    assert.is_false(r:busy())
    assert.equal(1, #done)
    assert.is_true(done[1][1])
    assert.equal(42, done[1][2])
    assert.is_true(r:start(function() end))   -- free again
    hwfota.loop()
    assert.equal(2, r.runs)
  end)

  it("a run that raises: on_done sees it, the task fails visibly, the runner is free", function()
    local seen
    local r = once.new(function(ok, err) seen = {ok, err} end)
    r:start(function() error("flow broke", 0) end)
    local failed = hwfota.loop()
    assert.equal(1, #failed)
    assert.matches("flow broke", failed[1].error)
    assert.same({false, "flow broke"}, seen)
    assert.is_false(r:busy())
  end)
end)

describe("hwfota.trigger.socket", function()
  it("answers at once after a connect while idle, with no periodic wake-up", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local runner = once.new()
    local flow_ran = false
    local l = trigger.listen(server, trigger.protocol{runner = runner, token = "k",
      flow = function() hwfota.sleep(0.2); flow_ran = true end})
    local polls, real_poll = 0, hwfota.core.poll
    hwfota.core.poll = function(...) polls = polls + 1; return real_poll(...) end
    local replies, latency, idle_polls = {}, {}, nil
    local script = {"status", "upgrade", "upgrade k", "upgrade k", "status", "nonsense"}
    local function ask(i)
      if i > #script then l:close(); return end
      local c = assert(socket.tcp())
      assert(c:connect("127.0.0.1", port))
      local t0 = hwfota.now()
      c:send(script[i] .. "\n")
      hwfota.watch(c, "r", function(_, w)
        replies[i] = c:receive("*l")
        latency[i] = hwfota.now() - t0
        w:cancel()
        c:close()
        ask(i + 1)
      end)
    end
    hwfota.timer(0.5, function() idle_polls = polls; ask(1) end)
    local ok, err = pcall(hwfota.loop)
    hwfota.core.poll = real_poll
    server:close()
    assert(ok, err)
    assert.same({"idle", "error not authorised", "started", "busy", "running",
                 "error unknown command (upgrade, status, quit)"}, replies)
    -- idle for 0.5 s: one wait until the timer (two at most), no 0.1 s polling
    assert.is_true(idle_polls <= 2, idle_polls .. " waits while idle")
    assert.is_true(latency[1] < 0.05, "answered " .. latency[1] .. " s after the connect")
    assert.is_true(flow_ran)
  end)

  it("closes a client that sends no full line in time, and one that sends too much", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local l = trigger.listen(server, function() return "never" end,
                             {client_timeout = 0.2, max_line = 16})
    local slow = assert(socket.tcp()); assert(slow:connect("127.0.0.1", port))
    slow:send("status")   -- no line end
    local big = assert(socket.tcp()); assert(big:connect("127.0.0.1", port))
    big:send(("x"):rep(100))
    local closed = {}
    for name, c in pairs{slow = slow, big = big} do
      hwfota.watch(c, "r", function(_, w)
        local line, e = c:receive("*l")
        closed[name] = {line, e, hwfota.now()}
        w:cancel()
        c:close()
      end)
    end
    local t0 = hwfota.now()
    hwfota.timer(0.6, function() l:close() end)
    hwfota.loop()
    server:close()
    assert.equal("closed", closed.slow[2])
    assert.equal("closed", closed.big[2])
    assert.is_true(closed.slow[3] - t0 >= 0.19, "the slow client had its 0.2 s")
    assert.is_true(closed.big[3] - t0 < 0.15, "too long a line: closed at once")
  end)
end)

describe("hwfota.trigger.sms inbox", function()
  local sms = require "hwfota.trigger.sms"
  local peer = require "support.peer"

  it("wakes on the indication, refuses a malformed one, times out, sees a lost port", function()
    local p = peer.start('sleep 0.3\nsend +CMTI: "SM",1;AT^FWUP\nsend +CMTI: "SM",3\n' ..
                         'send +CMTI: "SM",3\nsleep 0.8\nhangup\n')
    local port = assert(hwfota.open(p.path, {sync = false}))
    local bad = {}
    local inbox = sms.inbox(port, function(line, why) bad[#bad + 1] = line .. " / " .. why end)
    local ticks, got, took = 0, nil, nil
    hwfota.spawn(function()
      local t0 = hwfota.now()
      got = table.pack(inbox:wait(5))
      took = hwfota.now() - t0
    end)
    hwfota.spawn(function()
      while not got do hwfota.sleep(0.05); ticks = ticks + 1 end
    end)
    assert.same({}, hwfota.loop())
    assert.is_true(got[1])
    assert.is_true(took >= 0.25 and took < 1.5, "woke after " .. took .. " s")
    assert.is_true(ticks >= 4, "the other task ticked " .. ticks .. " times meanwhile")
    assert.equal(3, inbox:pop())
    assert.is_nil(inbox:pop())            -- queued once
    assert.same({'+CMTI: "SM",1;AT^FWUP / malformed +CMTI'}, bad)
    local ok, why = inbox:wait(0.2)
    assert.is_false(ok)
    assert.equal("timeout", why)
    local r = table.pack(inbox:wait(5))   -- the peer hangs up
    assert.is_nil(r[1])
    assert.equal("EPORTLOST", r[3])
    inbox:close()
    port:close()
    p:finish()
  end)
end)
