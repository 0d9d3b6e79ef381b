-- Line sync at open and resync that does not depend on optional commands
-- (issue 11, items 6 and 7), against the simulator.
local hwfota = require "hwfota"
local sim = require "support.sim"

-- The hwfota command in-process, as spec/cli_spec.lua runs it.
local run = require("support.clirun").run

-- Record the port's events (asserted after, never inside the callback).
local function recorder(port)
  local ev = {}
  port:on_event(function(e) ev[#ev + 1] = e.event .. ":" .. tostring(e.detail) end)
  return ev
end

local function has(list, pat)
  for _, v in ipairs(list) do if v:find(pat) then return true end end
  return false
end

describe("line sync at open (issue 11.6)", function()
  local s
  after_each(function() if s then s:stop() end s = nil end)

  it("the command: a timed-out AT+CSQ's late answer is not the next run's AT+GMR answer", function()
    -- the module holds AT+CSQ for 2.5 s (5 model s at 0.5)
    s = sim.start{"--time-scale", "0.5", "--hang", "cmd=CSQ", "--hang-for", "5"}
    local rc, out, err = run{"--port", s.path, "at", "AT+CSQ", "--timeout", "1"}
    assert.are_not.equal(0, rc, out .. err)
    rc, out, err = run{"--port", s.path, "at", "AT+GMR"}
    assert.equals(0, rc, out .. err)
    assert.matches(sim.FROM, out, 1, true)
    assert.is_nil(out:find("+CSQ", 1, true), out)
    -- and info, right after another timed-out AT+CSQ, still reads the model
    s:stop()
    s = sim.start{"--time-scale", "0.5", "--hang", "cmd=CSQ", "--hang-for", "5"}
    run{"--port", s.path, "at", "AT+CSQ", "--timeout", "1"}
    rc, out, err = run{"--port", s.path, "info"}
    assert.equals(0, rc, out .. err)
    assert.matches("MU509", out, 1, true)
    assert.matches(sim.FROM, out, 1, true)
  end)

  it("the Lua API: a new port discards what an old one left unanswered", function()
    s = sim.start{"--time-scale", "0.5", "--hang", "cmd=CSQ", "--hang-for", "5"}
    local a = assert(hwfota.open(s.path))
    local res, msg, code = a:command("AT+CSQ", {timeout = 1})
    assert.is_nil(res, msg)
    assert.equals("ETIMEDOUT", code)
    a:close()
    local b <close> = assert(hwfota.open(s.path))
    local ev = recorder(b)
    res, msg = b:command("AT+GMR", {timeout = 5})
    assert.is_table(res, msg)
    assert.same({sim.FROM}, res.lines)
    assert.is_true(has(ev, "^resync:AT%+CMEE%?"), table.concat(ev, " | "))
    assert.is_true(has(ev, "^discarded:%+CSQ: "), table.concat(ev, " | "))
    -- the resync went out before AT+GMR
    local cmds = s:commands()
    local i_sync, i_gmr
    for i, c in ipairs(cmds) do
      if c == "AT+GMR" then i_gmr = i end
      if c == "AT+CMEE?" and not i_sync and i > 1 then i_sync = i end
    end
    assert.is_truthy(i_sync and i_gmr and i_sync < i_gmr, table.concat(cmds, " "))
  end)
end)

describe("resync without the optional queries (issue 11.7)", function()
  local s
  after_each(function() if s then s:stop() end s = nil end)

  for _, unknown in ipairs{"cns", "error"} do
    it("falls back to AT when +CMEE?, +CSQ and +CSCS? answer " .. unknown, function()
      s = sim.start{"--time-scale", "0.5", "--unsupported", "+CMEE?,+CSQ,+CSCS?",
                    "--unknown", unknown, "--hang", "cmd=CGSN", "--hang-for", "4"}
      local p <close> = assert(hwfota.open(s.path))
      local ev = recorder(p)
      -- the sync at open already needs the fallback
      local res, msg = p:command("AT+GMR", {timeout = 5})
      assert.is_table(res, msg)
      assert.same({sim.FROM}, res.lines)
      assert.is_true(has(ev, "^resync_refused:AT%+CMEE%?: "), table.concat(ev, " | "))
      assert.is_true(has(ev, "^resync_fallback:resync queries refused by the module"),
                     table.concat(ev, " | "))
      -- a timeout later: the port is not dead, the late IMEI is not AT+GMR's answer
      res, msg = p:command("AT+CGSN", {timeout = 1})
      assert.is_nil(res)
      local t0 = hwfota.now()
      res, msg = p:command("AT+GMR", {timeout = 5})
      assert.is_table(res, msg)
      assert.same({sim.FROM}, res.lines)
      assert.is_true(hwfota.now() - t0 < 6, "answered in time")
      -- once refused, later resyncs use AT directly; AT was written after AT+CGSN
      local cmds = s:commands()
      local after_cgsn
      for i, c in ipairs(cmds) do if c == "AT+CGSN" then after_cgsn = i end end
      assert.equals("AT", cmds[after_cgsn + 1], table.concat(cmds, " "))
    end)
  end
end)
