-- `make fleet-sim`: the rollout controller on 10,000 simulated routers (hwfota.fleet.sim),
-- for several seeds: waves, duration, peak concurrent upgrades, and the check that the
-- halt fires in the first wave whose failure rate crosses the limit (never otherwise).
-- usage: lua5.4 spec/fleet/sim.lua [ROUTERS] [SEED...]
local sim = require "hwfota.fleet.sim"

local n = tonumber(arg[1]) or 10000
local seeds = {}
for i = 2, #arg do seeds[#seeds + 1] = math.tointeger(tonumber(arg[i])) end
if #seeds == 0 then seeds = {1, 2, 3, 4, 5} end

print(("fleet-sim: %d routers, waves 1%%,10%%,50%%,100%%, max failure rate 2%%, window "
       .. "01:00-05:00 router time in 6 time zones, 10%% offline (churn), failures 1-5%%")
      :format(n))
local bad = 0
for _, seed in ipairs(seeds) do
  local rep = sim.run{routers = n, seed = seed}
  print(sim.format(rep))
  if not rep.halt_ok then bad = bad + 1 end
  if rep.duplicates > 0 then bad = bad + 1 end
end
if bad > 0 then
  print(("fleet-sim: %d check(s) WRONG"):format(bad))
  os.exit(1)
end
print("fleet-sim: every halt came in the first wave over the limit, none without one; no command ran twice")
