-- The hwfota command ended by a signal in the middle of a download (issue 12.8):
-- SIGTERM (procd's stop) must leave the port free, exclusive flag dropped, for the
-- next open; SIGKILL cannot, and the next open must recognise the flag it left as
-- stale (the simulator no longer clears it: --release-dead-host is off).
local hwfota = require "hwfota"
local sim = require "support.sim"

local LUA = os.getenv("LUA") or "lua5.4"
local CMD = sim.top .. "/lua/bin/hwfota"

-- Start `hwfota download` on the module; returns the pipe and the pid.
local function start_download(s)
  local cmd = ("echo $$; exec %s %s --port %s download --apn 1234 --skip-model-check 2>&1")
              :format(LUA, sim.sh_quote(CMD), sim.sh_quote(s.path))
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("l"))
  assert(pid, "no pid")
  return p, pid
end

-- Open the port again; returns the port's events after one command.
local function reopen_events(s)
  local port, msg, code = hwfota.open(s.path)
  assert(port, ("reopen: %s (%s)"):format(tostring(msg), tostring(code)))
  local ev = {}
  port:on_event(function(e) ev[#ev + 1] = e.event end)
  local res, cmsg = port:command("AT", {timeout = 5})
  port:close()
  assert(res, cmsg)
  return table.concat(ev, " ")
end

describe("the next hwfota command after a SIGKILL", function()
  it("says that it took over the stale exclusive flag", function()
    local s = sim.start{"--time-scale", "0.03", "--rate", "200"}
    local p, pid = start_download(s)
    assert.is_not_nil(s:wait_for({dir = "rx", line = "AT^FOTADLQ"}, 20), "the download started")
    os.execute(("kill -KILL %d"):format(pid))
    p:close()
    local cmd = ("%s %s --port %s status 2>&1"):format(LUA, sim.sh_quote(CMD), sim.sh_quote(s.path))
    local sp = assert(io.popen(cmd, "r"))
    local out = sp:read("a")
    local ok = sp:close()
    s:stop()
    assert.is_true(ok, out)
    assert.matches("exclusive flag (TIOCEXCL) left set by a process that ended without closing",
                   out, 1, true)
  end)
end)

describe("hwfota command ended by a signal during a download", function()
  local s
  after_each(function() if s then s:stop() end s = nil end)

  for _, c in ipairs{{sig = "TERM", stale = false}, {sig = "KILL", stale = true}} do
    it(("SIG%s: the next open %s"):format(c.sig, c.stale and "takes over the stale flag"
                                                         or "finds the port free"), function()
      -- about 13 s of download (79114 bytes at 200 B per model second, scale 0.03)
      s = sim.start{"--time-scale", "0.03", "--rate", "200"}
      local p, pid = start_download(s)
      local got = s:wait_for({dir = "rx", line = "AT^FOTADLQ"}, 20)
      assert.is_not_nil(got, "the download started")
      local closed_before = #s:select{ev = "host", what = "closed"}
      os.execute(("kill -%s %d"):format(c.sig, pid))
      local out = p:read("a")
      p:close()
      assert.is_nil(s:wait_for({ev = "state", state = 40}, 0), "killed before the end: " .. out)
      local deadline = hwfota.now() + 2
      while #s:select{ev = "host", what = "closed"} <= closed_before and hwfota.now() < deadline do
        hwfota.poll({}, 0.02)
      end
      assert.is_true(#s:select{ev = "host", what = "closed"} > closed_before,
                     "the simulator saw the host close")
      local events = reopen_events(s)
      if c.stale then
        assert.matches("stale_exclusive", events)
      else
        assert.is_nil(events:find("stale_exclusive", 1, true), events)
      end
    end)
  end
end)

-- Ctrl-C during a flow is a loop event (hwfota.on_signal), not an error thrown
-- into whatever code runs: the command says it stops at the next decision
-- point, lets the download finish in the module, declines the image (defer:
-- discarded) and exits 130; a second Ctrl-C ends it at once.
describe("hwfota command interrupted (SIGINT) during a download", function()
  local s
  after_each(function() if s then s:stop() end s = nil end)

  it("stops at the next decision point and exits 130", function()
    s = sim.start{"--time-scale", "0.03", "--rate", "1000"}   -- about 2.4 s of download
    local p, pid = start_download(s)
    assert.is_not_nil(s:wait_for({dir = "rx", line = "AT^FOTADL=1"}, 20), "the download started")
    os.execute(("kill -INT %d"):format(pid))
    local out = p:read("a")
    local _, how, code = p:close()
    assert.equal("exit", how, out)
    assert.equal(130, code, out)
    assert.matches("interrupted: stopping at the next decision point", out, 1, true)
    assert.equal(1, select(2, out:gsub("interrupted: stopping", "")), out)
    -- the download ran to its end in the module, then the image was declined
    assert.is_not_nil(s:wait_for({ev = "state", state = 40}, 0), out)
    assert.is_not_nil(s:wait_for({dir = "rx", line = "AT^FOTADL=0"}, 5), out)
  end)

  it("a second Ctrl-C leaves at once", function()
    s = sim.start{"--time-scale", "0.03", "--rate", "100"}
    local p, pid = start_download(s)
    assert.is_not_nil(s:wait_for({dir = "rx", line = "AT^FOTADLQ"}, 20), "the download started")
    os.execute(("kill -INT %d"):format(pid))
    local t0 = hwfota.now()
    hwfota.poll({}, 0.3)
    os.execute(("kill -INT %d"):format(pid))
    local out = p:read("a")
    p:close()
    assert.is_true(hwfota.now() - t0 < 5, "left " .. (hwfota.now() - t0) .. " s later")
    assert.matches("interrupted: stopping at the next decision point", out, 1, true)
    assert.is_nil(s:wait_for({ev = "state", state = 40}, 0), "left before the end: " .. out)
  end)
end)
