-- busted specs for the fleet simulation (hwfota.fleet.sim): the real controller on
-- membus with a virtual clock and 1,000 simulated routers (`make fleet-sim` runs 10,000).
local sim = require "hwfota.fleet.sim"

describe("fleet simulation, 1,000 routers", function()
  local reports = {}
  for _, seed in ipairs{1, 2, 3} do
    it("seed " .. seed .. ": the halt fires in the first wave over the limit, or never", function()
      local rep = sim.run{routers = 1000, seed = seed}
      reports[seed] = rep
      assert.is_true(rep.halt_ok, sim.format(rep))
      assert.equal(0, rep.duplicates, "a command id arrived twice")
      assert.equal(rep.commands, rep.runs, "every command ran exactly once")
      if rep.state == "halted" then
        assert.truthy(rep.first_over)
        for k = 1, rep.first_over - 1 do
          assert.is_false(rep.waves[k].over, "wave " .. k .. " was over and did not halt")
        end
        for k = rep.first_over + 1, #rep.waves do
          assert.equal(0, rep.waves[k].done + rep.waves[k].failed, "a wave after the halt ran")
        end
      else
        assert.equal("done", rep.state)
        assert.is_nil(rep.first_over)
      end
    end)
  end

  it("fails routers as told and halts when every seed's rate is far over the limit", function()
    for seed = 4, 5 do
      local rep = sim.run{routers = 1000, seed = seed, fail_rate = 0.2}
      assert.equal("halted", rep.state)
      assert.equal(1, rep.halt_reason_wave)
      assert.is_true(rep.halt_ok)
    end
  end)

  it("never halts when no router fails, and upgrades every router not away", function()
    local rep = sim.run{routers = 1000, seed = 6, fail_rate = 0}
    assert.equal("done", rep.state)
    local done, away = 0, 0     -- away: offline, or back but waiting for its window
    for _, w in ipairs(rep.waves) do
      done, away = done + w.done, away + w.offline + w.open
      assert.equal(0, w.failed)
    end
    assert.equal(1000, done + away)
    assert.is_true(done >= 950, done)
    assert.is_true(rep.peak_active > 0)
  end)

  it("a seed reproduces its run exactly", function()
    local a = sim.format(sim.run{routers = 300, seed = 11}):gsub("[%d.]+ s CPU", "")
    local b = sim.format(sim.run{routers = 300, seed = 11}):gsub("[%d.]+ s CPU", "")
    assert.equal(a, b)
  end)

  it("respects a concurrency limit across the fleet", function()
    local rep = sim.run{routers = 1000, seed = 7, fail_rate = 0, concurrency = 25,
                        window = false}
    assert.equal("done", rep.state)
    assert.is_true(rep.peak_active <= 25, rep.peak_active)
    assert.equal(25, rep.peak)
  end)
end)
