-- End to end against hwfota-sim (issue 11.8): firmware that does not know AT+CPIN? or
-- AT+CREG? (hwfota-sim --unsupported, answered COMMAND NOT SUPPORT, or ERROR with
-- --unknown error) is not a SIM that is not ready. The run reports what the module
-- said (a notice) and goes on; a SIM that wants its PIN is still ESIM. The command's
-- --no-prereq skips the queries (check_prereq = false).
local hwfota = require "hwfota"
local sim = require "support.sim"

local function notices(report)
  local out = {}
  for _, e in ipairs(report.events or {}) do
    if e.event == "notice" then out[#out + 1] = e.message end
  end
  return table.concat(out, "\n")
end

local cli_run = require("support.clirun").run

describe("flow: prerequisite queries the firmware does not support", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  for _, v in ipairs{{final = "COMMAND NOT SUPPORT", args = {}},
                     {final = "ERROR", args = {"--unknown", "error"}}} do
    it(("answered %s: a notice quoting the module, and the run goes on"):format(v.final), function()
      local args = {"--time-scale", "0.03", "--unsupported", "+CPIN?,+CREG?"}
      for _, a in ipairs(v.args) do args[#args + 1] = a end
      s = sim.start(args)
      local report = hwfota.run(s.path, {}, sim.opts{skip_model_check = true})
      assert.equal("upgraded", report.status, report.message)
      local said = notices(report)
      assert.matches('AT+CPIN? with "' .. v.final .. '"', said, 1, true)
      assert.matches('AT+CREG? with "' .. v.final .. '"', said, 1, true)
      assert.equal(1, s:count("AT+CPIN?"))
      assert.equal(1, s:count("AT+CGREG?"))   -- still asked: it is supported
      assert.equal(1, s:count("AT^FWUP"))
    end)
  end

  it("a SIM that wants its PIN is still ESIM", function()
    s = sim.start{"--time-scale", "0.03", "--sim-pin"}
    local report = hwfota.run(s.path, {}, sim.opts{skip_model_check = true})
    assert.equal("failed", report.status)
    assert.equal("ESIM", report.code, report.message)
    assert.equal(0, s:count("AT^FOTADET"))
  end)

  it("hwfota --no-prereq sends no AT+CPIN?, AT+CREG?, AT+CGREG?", function()
    s = sim.start{"--time-scale", "0.03"}
    local rc, out, err = cli_run{"--port", s.path, "download", "--skip-model-check",
                                 "--poll", "0.2", "--no-prereq"}
    assert.equal(0, rc, out .. err)
    assert.equal(0, s:count("AT+CPIN?"))
    assert.equal(0, s:count("AT+CREG?"))
    assert.equal(0, s:count("AT+CGREG?"))
    assert.equal(1, s:count("AT^FOTADL=1"))
  end)

  it("hwfota download on firmware without AT+CPIN?: says so and downloads", function()
    s = sim.start{"--time-scale", "0.03", "--unsupported", "+CPIN?"}
    local rc, out, err = cli_run{"--port", s.path, "download", "--skip-model-check",
                                 "--poll", "0.2"}
    assert.equal(0, rc, out .. err)
    assert.is_nil((out .. err):find("ESIM", 1, true))
    assert.matches('note: the module answered AT+CPIN? with "COMMAND NOT SUPPORT"', out .. err, 1, true)
    assert.equal(1, s:count("AT+CPIN?"))
    assert.equal(1, s:count("AT^FOTADL=1"))
  end)
end)
