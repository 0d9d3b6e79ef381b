-- One poll loop for everything: port:command yields inside tasks, and any fd
-- (hwfota.watch) or timer (hwfota.timer) lives on the loop the modules use.
local hwfota = require "hwfota"
local peer = require "support.peer"
local socket = require "socket"

local open_peer, finish = peer.open, peer.finish   -- line sync at open off

local SLOW = "expect AT+GMR\nsleep 2\nsend 12.815.03.01.00\nsend OK\n"

describe("nothing blocks the loop", function()
  it("port:command in a task yields: another task ticks every 0.1 s meanwhile", function()
    local p, port = open_peer(SLOW)
    local done, ticks, res, took = false, 0, nil, nil
    hwfota.spawn(function()
      local t0 = hwfota.now()
      res = assert(port:command("AT+GMR", {timeout = 5}))
      took = hwfota.now() - t0
      done = true
    end)
    hwfota.spawn(function()
      while not done do
        hwfota.sleep(0.1)
        ticks = ticks + 1
      end
    end)
    assert.same({}, hwfota.loop())
    assert.equal("12.815.03.01.00", res.lines[1])
    assert.is_true(took >= 1.9, "the answer took " .. took .. " s")
    assert.is_true(ticks >= 15, "the other task ticked only " .. ticks .. " times")
    port:close()
    finish(p)
  end)

  it("a timer chain ticks while a task waits for a slow answer", function()
    local p, port = open_peer(SLOW)
    local done, ticks = false, 0
    local function tick()
      ticks = ticks + 1
      if not done then hwfota.timer(0.1, tick) end
    end
    hwfota.timer(0.1, tick)
    hwfota.spawn(function()
      assert(port:command("AT+GMR", {timeout = 5}))
      done = true
    end)
    assert.same({}, hwfota.loop())
    assert.is_true(ticks >= 15, "the timer fired only " .. ticks .. " times")
    port:close()
    finish(p)
  end)

  it("keeps failures as values inside a task (timeout, closed port)", function()
    local p, port = open_peer("expect AT+GMR\nsleep 1\n")
    local r
    hwfota.spawn(function() r = table.pack(port:command("AT+GMR", {timeout = 0.3})) end)
    hwfota.loop()
    assert.is_nil(r[1])
    assert.equal("ETIMEDOUT", r[3])
    port:close()
    hwfota.spawn(function() r = table.pack(port:command("AT")) end)
    hwfota.loop()
    assert.equal("ECLOSED", r[3])
    p:finish()
  end)

  it("still raises on misuse inside a task", function()
    local p, port = open_peer("")
    local task = hwfota.spawn(function() port:command(42) end)
    hwfota.loop()
    assert.is_false(task.ok)
    assert.matches("bad argument #1 to 'command'", task.error)
    port:close()
    p:finish()
  end)
end)

describe("hwfota.watch", function()
  local server
  before_each(function()
    server = assert(socket.bind("127.0.0.1", 0))
    server:settimeout(0)
  end)
  after_each(function() server:close() end)

  it("wakes on its socket, at once, with no periodic timer", function()
    local _, port = server:getsockname()
    local accepted, woke_after, client, connect_at
    local polls, real_poll = 0, hwfota.core.poll
    hwfota.core.poll = function(...) polls = polls + 1; return real_poll(...) end
    local w
    w = hwfota.watch(server, "r", function(ready, watcher)
      assert.equal(w, watcher)
      assert.matches("r", ready)
      accepted = assert(server:accept())
      woke_after = hwfota.now() - connect_at
      watcher:cancel()
    end)
    hwfota.timer(0.5, function()
      client = socket.tcp()
      client:settimeout(0)
      connect_at = hwfota.now()
      client:connect("127.0.0.1", port)
    end)
    local ok, err = pcall(hwfota.loop)
    hwfota.core.poll = real_poll
    assert(ok, err)
    assert.is_truthy(accepted)
    assert.is_true(woke_after < 0.05, "woke " .. woke_after .. " s after the connect")
    -- one wait until the timer, one until the connection, maybe one more: no polling
    assert.is_true(polls <= 4, polls .. " waits for one connection in 0.5 s")
    assert.is_false(w:active())
    accepted:close()
    client:close()
  end)

  it("takes a plain fd and an object with fileno(); hwfota.loop() runs while it is active", function()
    local _, port = server:getsockname()
    local fd = math.tointeger(server:getfd())
    local calls = 0
    local w = hwfota.watch(fd, "r", function(_, watcher)
      calls = calls + 1
      local c = server:accept()
      if c then c:close() end
      watcher:cancel()
    end)
    local clients = {}
    hwfota.timer(0.2, function()
      clients[1] = socket.tcp(); clients[1]:settimeout(0); clients[1]:connect("127.0.0.1", port)
    end)
    hwfota.loop()   -- returns only once the watcher cancelled itself
    assert.equal(1, calls)
    assert.is_false(w:active())
    clients[1]:close()
    local fake = {fileno = function() return fd end}
    local w2 = hwfota.watch(fake, "rw", function() end)
    assert.is_true(w2:active())
    assert.is_true(w2:cancel())
    assert.is_false(w2:cancel())
  end)

  it("runs in the private loop of a blocking call too", function()
    local _, port = server:getsockname()
    local seen = false
    local w = hwfota.watch(server, "r", function(_, watcher)
      local c = server:accept()
      if c then c:close() end
      seen = true
      watcher:cancel()
    end)
    local client = socket.tcp(); client:settimeout(0); client:connect("127.0.0.1", port)
    hwfota.sleep(0.3)   -- outside a task: a private loop
    assert.is_true(seen)
    assert.is_false(w:active())
    client:close()
  end)

  it("raises a callback's error from the loop and cancels the watcher", function()
    local _, port = server:getsockname()
    local w = hwfota.watch(server, "r", function() error("boom in the callback") end)
    local client = socket.tcp(); client:settimeout(0); client:connect("127.0.0.1", port)
    local ok, err = pcall(hwfota.loop)
    assert.is_false(ok)
    assert.matches("hwfota.watch callback failed: .*boom in the callback", err)
    assert.is_false(w:active())
    client:close()
  end)

  it("raises when the watched object lost its fd", function()
    local s2 = assert(socket.bind("127.0.0.1", 0))
    local w = hwfota.watch(s2, "r", function() end)
    s2:close()
    local ok, err = pcall(hwfota.loop)
    assert.is_false(ok)
    assert.matches("has no fd any more", err)
    assert.is_false(w:active())
  end)

  -- 200 watchers (it was 64 at most): each on its own UDP socket, one datagram
  -- to each, and every watcher's callback runs; on both wait sets (epoll keeps
  -- the registrations between waits, poll(2) rebuilds them)
  for _, backend in ipairs{"epoll", "poll"} do
    it("serves 200 watchers in one wait set (" .. backend .. ")", function()
      local core = require "hwfota.core"
      local before = core.pump()
      assert.equal(backend, (core.pump(backend)))
      local N, socks, got, ws = 200, {}, {}, {}
      local tx = assert(socket.udp())
      for i = 1, N do
        socks[i] = assert(socket.udp())
        assert(socks[i]:setsockname("127.0.0.1", 0))
        socks[i]:settimeout(0)
        ws[i] = assert(hwfota.watch(socks[i], "r", function()
          local d = socks[i]:receive()
          if d then got[i] = d end
        end))
      end
      for i = 1, N do
        local _, port = socks[i]:getsockname()
        assert(tx:sendto("d" .. i, "127.0.0.1", port))
      end
      local deadline = hwfota.now() + 10
      local n = 0
      while n < N and hwfota.now() < deadline do
        hwfota.poll({}, 0.5)
        n = 0
        for i = 1, N do if got[i] == "d" .. i then n = n + 1 end end
      end
      assert.equal(N, n)
      local _, ctl = core.pump()
      if backend == "epoll" then
        -- unchanged watchers cost no epoll_ctl after the first wait
        hwfota.poll({}, 0)
        local _, ctl2 = core.pump()
        assert.equal(ctl, ctl2)
        assert.is_true(ctl >= N, "each watcher was registered once (" .. ctl .. ")")
      else
        assert.equal(0, ctl)
      end
      for i = 1, N do ws[i]:cancel(); socks[i]:close() end
      tx:close()
      core.pump(before)
    end)
  end

  it("takes 100,000 watchers at most; a cancelled one makes room", function()
    local ws, f = {}, function() end
    for i = 1, 100000 do ws[i] = assert(hwfota.watch(0, "r", f)) end
    local w, msg, code = hwfota.watch(0, "r", f)
    assert.is_nil(w)
    assert.equal("ENOSPC", code)
    assert.matches("too many watchers: 100000 are active", msg)
    ws[1]:cancel()
    ws[1]:cancel()   -- a second cancel frees nothing more
    ws[1] = assert(hwfota.watch(0, "r", f))
    assert.is_nil((hwfota.watch(0, "r", f)))
    for _, x in ipairs(ws) do x:cancel() end
  end)

  it("refuses wrong arguments", function()
    local f = function() end
    assert.has_error(function() hwfota.watch("x", "r", f) end,
      "bad argument #1 to 'watch' (fd or object with getfd()/fileno() expected, got string)")
    assert.has_error(function() hwfota.watch(-1, "r", f) end)
    assert.has_error(function() hwfota.watch({}, "r", f) end)
    assert.has_error(function() hwfota.watch(0, "x", f) end,
      "bad argument #2 to 'watch' (\"r\", \"w\" or \"rw\" expected, got \"x\")")
    assert.has_error(function() hwfota.watch(0, "r", 1) end,
      "bad argument #3 to 'watch' (function expected, got number)")
    assert.has_error(function() hwfota.watch(0, "r", f, 1) end,
      "bad argument #4 to 'watch' (table expected, got number)")
    assert.has_error(function() hwfota.core.poll({}, 0, {{fd = 0, events = "x"}}) end)
    assert.has_error(function() hwfota.core.poll({}, 0, {{fd = "0", events = "r"}}) end)
    -- string options of the binding: looked up in their list, the message names
    -- the option and its choices; a NUL inside is no option
    local ok, err = pcall(hwfota.core.poll, {}, 0, {{fd = 0, events = "x"}})
    assert.is_false(ok)
    assert.matches('fds[1].events must be "r", "w" or "rw"', err, 1, true)
    ok, err = pcall(hwfota.core.poll, {}, 0, {{fd = 0, events = "r\0x"}})
    assert.is_false(ok)
    ok, err = pcall(hwfota.core.open, "/dev/null", 115200, "xon")
    assert.is_false(ok)
    assert.matches('flow control must be "none" or "rtscts"', err, 1, true)
  end)
end)

describe("hwfota.timer", function()
  it("fires once, in order, and can be cancelled", function()
    local order = {}
    hwfota.timer(0.2, function() order[#order + 1] = "b" end)
    local t = hwfota.timer(0.1, function() order[#order + 1] = "x" end)
    hwfota.timer(0.05, function() order[#order + 1] = "a"; t:cancel() end)
    local t0 = hwfota.now()
    hwfota.loop()
    assert.same({"a", "b"}, order)
    assert.is_true(hwfota.now() - t0 >= 0.19)
    assert.is_false(t:active())
  end)

  it("raises a callback's error from the loop", function()
    hwfota.timer(0, function() error("timer went wrong") end)
    local ok, err = pcall(hwfota.loop)
    assert.is_false(ok)
    assert.matches("hwfota.timer callback failed: .*timer went wrong", err)
  end)

  it("refuses a bad delay or callback", function()
    assert.has_error(function() hwfota.timer(-1, function() end) end,
      "bad argument #1 to 'timer' (non-negative finite number expected)")
    assert.has_error(function() hwfota.timer(0 / 0, function() end) end)
    assert.has_error(function() hwfota.timer(math.huge, function() end) end)
    assert.has_error(function() hwfota.timer(1, "f") end,
      "bad argument #2 to 'timer' (function expected, got string)")
  end)
end)

describe("hwfota.on_signal", function()
  local function kill(sig)
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("l"):match("^(%d+)")
    f:close()
    os.execute(("kill -%s %s"):format(sig, pid))
  end

  it("delivers SIGUSR1 as a loop event, then gives the old disposition back", function()
    local got = {}
    local h = assert(hwfota.on_signal({"USR1", "USR2"}, function(name, handler)
      got[#got + 1] = name
      assert.is_true(handler:active())
    end))
    hwfota.timer(0.05, function() kill("USR1") end)
    hwfota.timer(0.1, function() kill("USR2") end)
    local t = hwfota.timer(5, function() end)
    hwfota.spawn(function()
      while #got < 2 do hwfota.sleep(0.02) end
      t:cancel()
    end)
    hwfota.loop()
    assert.same({"USR1", "USR2"}, got)
    assert.is_true(h:cancel())
    assert.is_false(h:active())
    assert.is_false(h:cancel())
  end)

  it("is served by a blocking call's loop and by hwfota.poll", function()
    local n = 0
    local h = assert(hwfota.on_signal("USR1", function() n = n + 1 end))
    kill("USR1")
    hwfota.sleep(0.1)
    assert.equal(1, n)
    kill("USR1")
    hwfota.poll({}, 0.1)
    assert.equal(2, n)
    h:cancel()
  end)

  it("does not keep hwfota.loop() running", function()
    local h = assert(hwfota.on_signal("USR2", function() end))
    local t0 = hwfota.now()
    hwfota.loop()
    assert.is_true(hwfota.now() - t0 < 0.5)
    h:cancel()
  end)

  it("refuses unknown signals", function()
    assert.has_error(function() hwfota.on_signal("KILL", function() end) end,
      "bad argument #1 to 'on_signal' (unknown signal \"KILL\": INT, TERM, HUP, USR1 or USR2)")
    assert.has_error(function() hwfota.on_signal({}, function() end) end)
    assert.has_error(function() hwfota.on_signal("INT") end,
      "bad argument #2 to 'on_signal' (function expected, got nil)")
    assert.has_error(function() hwfota.on_signal("INT", function() end, "once") end,
      "bad argument #3 to 'on_signal' (table expected, got string)")
  end)
end)
