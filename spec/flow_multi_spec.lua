-- End to end against hwfota-sim --modules 2: two modules driven concurrently in one
-- process (hwfota.spawn + hwfota.loop), both upgraded, and the simulator's log shows
-- their flows overlapped (each module downloaded while the other did).
local hwfota = require "hwfota"
local sim = require "support.sim"

describe("flow: two modules in one process", function()
  it("upgrades both concurrently; their downloads overlap; AT^FWUP once each", function()
    local s = sim.start{"--time-scale", "0.03", "--modules", "2"}
    finally(function() s:stop() end)
    assert.equal(2, #s.paths)
    local reports, spans = {}, {}
    for i, path in ipairs(s.paths) do
      hwfota.spawn(function()
        local o = sim.opts{skip_model_check = true}
        local t0 = hwfota.now()
        reports[i] = hwfota.run(path, {}, o)
        spans[i] = hwfota.now() - t0
      end)
    end
    local t0 = hwfota.now()
    assert.same({}, hwfota.loop())
    local total = hwfota.now() - t0
    for m = 0, 1 do
      local r = reports[m + 1]
      assert.equal("upgraded", r.status, r.message)
      assert.equal(sim.TO, r.to)
      assert.equal(1, s:count("AT^FWUP", m), "module " .. m)
      assert.same({11, 12, 30, 40, 50, 90}, s:states(m))
    end
    -- different modules answered (IMEIs differ)
    assert.are_not.equal(reports[1].imei, reports[2].imei)
    -- overlap in the simulator's own clock: each download started before the other ended
    local function t(pred, m) return s:select(pred, m)[1].t end
    local start0, end0 = t({ev = "state", state = 30}, 0), t({ev = "state", state = 40}, 0)
    local start1, end1 = t({ev = "state", state = 30}, 1), t({ev = "state", state = 40}, 1)
    assert.is_true(start0 < end1 and start1 < end0,
                   ("downloads overlap: [%.3f, %.3f] and [%.3f, %.3f]"):format(start0, end0, start1, end1))
    -- and the whole took less than the two runs one after the other
    assert.is_true(total < spans[1] + spans[2] - 0.2,
                   ("concurrent: %.2f s in all, runs of %.2f and %.2f s"):format(total, spans[1], spans[2]))
  end)
end)
