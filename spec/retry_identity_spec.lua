-- hwfota.run's retry after a lost port (policy.on_failure) must not take another
-- module for its own (issue 12.1, found by the fault campaign, seed 100159: the port
-- swapped to another module during AT^FOTADET, the attempt failed EPORTLOST, and the
-- retry's fresh machine discarded, downloaded and applied an image on the other
-- module). The retry confirms the IMEI the run started with: EIDENTITY, and nothing
-- but the setup and read-only queries reaches the swapped-in module.
local hwfota = require "hwfota"
local sim = require "support.sim"

local READ_ONLY = {["ATE0"] = true, ["AT+CMEE=2"] = true, ["AT+GMR"] = true, ["AT+CGSN"] = true,
                   ["ATI"] = true}

describe("hwfota.run retry after a port swap", function()
  local s
  after_each(function() if s then s:stop() end end)

  it("fails EIDENTITY and changes nothing on the other module", function()
    s = sim.start{"--time-scale", "0.03", "--port-swap", "cmd=FOTADET"}
    local failures = {}
    local report = hwfota.run(s.path, {
      on_failure = function(err, attempt)
        failures[#failures + 1] = err.code
        if attempt == 1 then return 0.2 end
      end,
    }, sim.opts{skip_model_check = true})
    assert.equal("failed", report.status)
    assert.equal("EIDENTITY", report.code, report.message)
    assert.equal(2, report.attempts)
    assert.same({"EPORTLOST"}, failures)   -- no retry after EIDENTITY
    assert.is_not_nil(s:index{ev = "fault", fault = "port-swap"})
    local sent = {}
    for _, e in ipairs(s:select{dir = "rx"}) do
      if e.swapped then
        sent[#sent + 1] = e.line
        assert.is_true(READ_ONLY[e.line] or e.line:sub(-1) == "?",
                       e.line .. " reached the swapped-in module")
      end
    end
    assert.is_true(#sent > 0, "the retry did not reach the swapped-in module at all")
  end)
end)
