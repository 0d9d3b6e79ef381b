--- A discrete-event simulation of a fleet rollout: the real controller
-- (`hwfota.fleet.controller`) on the in-memory broker (`hwfota.fleet.membus`) with a
-- virtual clock (`hwfota.fleet.vclock`), and a model of the agent on every router that
-- speaks issue 16's contract (retained inventory, online with a last will, status; a
-- command ledger that refuses duplicates; busy refusals; results after a download time).
--
-- The model: download + upgrade time log-normal (median `download_median` s, spread
-- `download_sigma`); each router fails its upgrade with probability `fail_rate` (drawn
-- once per router, so the truth is known); routers go offline and back (exponential
-- periods, `offline` of the time away); routers live in several time zones
-- (`zones`, UTC offsets in seconds, carried as `utc_offset` in the inventory). An upgrade
-- goes on while a router is offline; its result is published when it is back.
--
-- `make fleet-sim` runs `run{}` for 10,000 routers and several seeds (spec/fleet/sim.lua).
-- @module hwfota.fleet.sim
-- @usage
-- local sim = require "hwfota.fleet.sim"
-- local rep = sim.run{routers = 1000, seed = 1, fail_rate = 0.03}
-- print(sim.format(rep))
local controller = require "hwfota.fleet.controller"
local membus = require "hwfota.fleet.membus"
local vclock = require "hwfota.fleet.vclock"
local proto = require "hwfota.fleet.proto"

local fmt = string.format
local M = {}

--- A deterministic pseudo-random generator (64-bit LCG, PCG constants).
-- @tparam integer seed
-- @treturn function `rng() -> float in [0, 1)`
function M.rng(seed)
  if math.type(seed) ~= "integer" then
    error("hwfota.fleet.sim.rng: seed must be an integer", 2)
  end
  local x = seed * 2654435761 + 1
  return function()
    x = x * 6364136223846793005 + 1442695040888963407
    return ((x >> 11) & 0x1fffffffffffff) / 9007199254740992.0
  end
end

local function exp(rng, mean) return -mean * math.log(1 - rng()) end
local function lognormal(rng, median, sigma)
  local u1, u2 = 1 - rng(), rng()
  local z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
  return median * math.exp(sigma * z)
end

local FAIL_CODES = {"EDOWNLOAD", "EFWUP", "ETIMEDOUT", "ECHECKSUM"}

--- One simulated agent.
-- @tparam table env `{broker, clock, rng, stats}`
-- @tparam table o `{rid, model, imei, firmware, utc_offset, fails, download_median,
--   download_sigma, country}`
-- @treturn table agent (`client`, `rid`, ...)
function M.agent(env, o)
  local clock, rng, stats = env.clock, env.rng, env.stats
  local a = {rid = o.rid, firmware = o.firmware, fails = o.fails, ledger = {},
             busy = false, status = {router = o.rid, phase = "idle"}, runs = 0}
  local topic = function(k) return proto.topic(o.rid, k) end
  local c = env.broker:client{client_id = "hwfota-agent-" .. o.rid, will = {
    topic = topic("online"), retain = true, qos = 1,
    payload = assert(proto.encode(assert(proto.build("online", {online = false, time = 0})))),
  }}
  a.client = c
  -- retained messages not yet on the broker (changed while offline): sent on reconnection
  local unsent = {inventory = true, status = true}
  local function pub(kind, fields, retain)
    local m = assert(proto.build(kind, fields))
    local ok = c:publish(topic(kind), assert(proto.encode(m)), {retain = retain, qos = 1})
    unsent[kind] = not ok
  end
  local function inventory()
    pub("inventory", {router = o.rid, model = o.model, imei = o.imei, firmware = a.firmware,
                      fota_state = 0, country = o.country, utc_offset = o.utc_offset,
                      agent = "sim", time = clock.now()}, true)
  end
  local function status()
    local s = {}
    for k, v in pairs(a.status) do s[k] = v end
    s.time = clock.now()
    pub("status", s, true)
  end
  c:on_connect(function()
    pub("online", {online = true, time = clock.now()}, true)
    if unsent.inventory then inventory() end
    if unsent.status then status() end
  end)
  c:on_message(function(_, payload)
    local m = proto.decode(payload, "cmd")
    if not m then stats.bad = stats.bad + 1; return end
    local function reply(ok, reason)
      pub("reply", {id = m.id, accepted = ok, reason = reason}, false)
    end
    if a.ledger[m.id] then stats.duplicates = stats.duplicates + 1; return reply(false, "duplicate") end
    if a.busy then stats.busy = stats.busy + 1; return reply(false, "busy") end
    a.ledger[m.id] = true
    if m.op ~= "upgrade" then return reply(false, "unsupported op " .. m.op) end
    reply(true)
    a.runs = a.runs + 1
    stats.runs = stats.runs + 1
    if a.firmware == m.to then
      a.status = {router = o.rid, cmd = m.id, rollout = m.rollout, phase = "done",
                  result = {ok = true, outcome = "nothing", from = a.firmware, to = m.to}}
      return status()
    end
    a.busy = true
    stats.active = stats.active + 1
    if stats.active > stats.peak_active then stats.peak_active = stats.active end
    a.status = {router = o.rid, cmd = m.id, rollout = m.rollout, phase = "downloading",
                progress = 0}
    status()
    local t = lognormal(rng, o.download_median, o.download_sigma)
    clock.timer(t, function()
      a.busy = false
      stats.active = stats.active - 1
      if a.fails then
        local code = FAIL_CODES[1 + math.floor(rng() * #FAIL_CODES)]
        a.status = {router = o.rid, cmd = m.id, rollout = m.rollout, phase = "failed",
                    result = {ok = false, outcome = "failed", code = code,
                              message = "simulated failure", from = a.firmware}}
      else
        a.status = {router = o.rid, cmd = m.id, rollout = m.rollout, phase = "done",
                    result = {ok = true, outcome = "upgraded", from = a.firmware, to = m.to}}
        a.firmware = m.to
      end
      status()       -- while offline: sent on reconnection
      inventory()
    end)
  end)
  c:subscribe(topic("cmd"), {qos = 1})
  return a
end

--- Run one simulated rollout.
-- @tparam table o options: `routers` (10000), `seed` (1), `fail_rate` (drawn in
--   [0.01, 0.05] from the seed when nil), `offline` (0.10), `zones` (UTC offsets),
--   `waves` ({1, 10, 50, 100}), `max_failure_rate` (0.02), `window` ("01:00-05:00"),
--   `concurrency` (nil), `download_median` (900 s), `download_sigma` (0.5),
--   `on_cycle` (mean online+offline period, 36000 s), `limit` (virtual seconds, 30 days)
-- @treturn table report: `waves` (per wave: routers, done, failed, offline, results,
--   rate, truth), `state`, `reason`, `halted_wave`, `first_over` (the first wave whose
--   observed rate is over the limit), `duration` (virtual s), `peak`, `runs`,
--   `duplicates`, `commands`, `messages`, `wall` (CPU s)
function M.run(o)
  o = o or {}
  local t0 = os.clock()
  local seed = o.seed or 1
  local rng = M.rng(seed)
  local n = o.routers or 10000
  local fail_rate = o.fail_rate or (0.01 + 0.04 * rng())
  local offline = o.offline or 0.10
  local zones = o.zones or {0, 3600, -5 * 3600, 19800, 9 * 3600, -8 * 3600}
  local cycle = o.on_cycle or 36000
  local limit = o.limit or 30 * 86400
  local clock = vclock.new(o.start or 1767225600)   -- 2026-01-01 00:00 UTC
  local broker = membus.new{clock = clock, latency = o.latency or 0.05}
  local stats = {bad = 0, duplicates = 0, busy = 0, runs = 0, active = 0, peak_active = 0}
  local env = {broker = broker, clock = clock, rng = rng, stats = stats}
  local agents = {}
  local from = "12.815.01.04.00"
  local to = o.to or "12.815.01.05.00"
  for i = 1, n do
    local rid = fmt("r%05d", i)
    local a = M.agent(env, {rid = rid, model = (i % 3 == 0) and "MU509" or "MU609",
      imei = fmt("8672230%08d", i), firmware = (o.already and rng() < o.already) and to or from,
      utc_offset = zones[1 + (i % #zones)], fails = rng() < fail_rate,
      download_median = o.download_median or 900, download_sigma = o.download_sigma or 0.5,
      country = "DE"})
    agents[i] = a
    -- churn: offline a fraction `offline` of the time, in exponential periods
    local function toggle(up)
      membus.set_online(a.client, up)
      local mean = up and cycle * (1 - offline) or cycle * offline
      clock.timer(exp(rng, mean), function() toggle(not up) end)
    end
    if offline > 0 then
      local start_up = rng() >= offline
      if not start_up then membus.set_online(a.client, false) end
      local mean = start_up and cycle * (1 - offline) or cycle * offline
      clock.timer(exp(rng, mean), function() toggle(not start_up) end)
    end
  end
  local events = {}
  local at_end = {}     -- wave -> its counts when it ended (or halted)
  local function snapshot(st, k)
    local w = st.waves_stats[k]
    if w and not at_end[k] then at_end[k] = {done = w.done, failed = w.failed, routers = w.routers} end
  end
  local ctl_bus = broker:client{client_id = "hwfota-controller"}
  local ctl = controller.new{bus = ctl_bus, clock = clock, settle = 5, tick = 60,
    publish_interval = o.publish_interval or 60,
    result_timeout = o.result_timeout or 4 * 3600,
    on_event = function(ev, st)
      if ev ~= "publish" then events[#events + 1] = {ev, clock.now(), st.wave, st.reason} end
      if ev == "wave" and st.wave > 1 then snapshot(st, st.wave - 1) end
      if ev == "done" then snapshot(st, st.wave) end
      if ev == "halt" then
        snapshot(st, tonumber((st.reason or ""):match("^wave (%d+)")) or st.wave)
      end
    end}
  assert(ctl:start())
  local id = o.id or "sim"
  local started = clock.now()
  local final
  ctl:when_ready(function()
    assert(ctl:rollout{id = id, to = to, waves = o.waves or {1, 10, 50, 100},
                       max_failure_rate = o.max_failure_rate or 0.02,
                       window = o.window == nil and "01:00-05:00" or o.window or nil,
                       concurrency = o.concurrency})
  end)
  -- run until the rollout halts or is done
  while clock.now() - started < limit do
    clock.run(clock.now() + 600)
    local st = ctl:state(id)
    if st and (st.state == "halted" or st.state == "done") then final = st break end
  end
  final = final or ctl:state(id)
  local finished = clock.now()
  -- let the commands in flight end, to see each wave's results
  clock.run(clock.now() + 12 * 3600)
  local st = ctl:state(id)
  ctl:stop()
  local rep = {seed = seed, routers = n, fail_rate = fail_rate, state = final.state,
               reason = final.reason, duration = finished - started, waves = {},
               peak = final.peak_inflight, peak_active = stats.peak_active,
               runs = stats.runs, duplicates = stats.duplicates, busy = stats.busy,
               commands = st.commands, messages = broker.stats.published,
               limit = final.max_failure_rate, events = events}
  -- truth per wave: routers that would fail
  local truth = {}
  for _, a in ipairs(agents) do
    local w = controller.wave_of(a.rid, {waves = final.waves, salt = final.salt})
    if w then
      truth[w] = truth[w] or {n = 0, fails = 0}
      truth[w].n = truth[w].n + 1
      if a.fails then truth[w].fails = truth[w].fails + 1 end
    end
  end
  for k, w in ipairs(st.waves_stats) do
    local results = w.done + w.failed
    rep.waves[k] = {percent = w.percent, routers = w.routers, done = w.done,
                    failed = w.failed, offline = w.offline, open = w.open, results = results,
                    rate = results > 0 and w.failed / results or 0,
                    truth = truth[k] and truth[k].fails / truth[k].n or 0,
                    started = w.started, ended = w.ended}
    -- the limit as the controller applies it: at the wave's end over its results, or
    -- at any time over the wave's size
    local e = at_end[k]
    local over = (e and e.done + e.failed > 0 and e.failed / (e.done + e.failed) > final.max_failure_rate)
                 or (w.failed > final.max_failure_rate * w.routers and w.failed > 0)
    rep.waves[k].over = over or false
    if not rep.first_over and over then rep.first_over = k end
  end
  if final.state == "halted" then
    rep.halted_wave = final.wave
    for _, e in ipairs(events) do if e[1] == "halt" then rep.halted_wave = e[3] break end end
    rep.halt_reason_wave = tonumber((final.reason or ""):match("^wave (%d+)"))
  end
  -- the claim: the rollout halted exactly when a wave crossed the limit, in the first one
  rep.halt_ok = (rep.first_over == nil and final.state ~= "halted")
                or (rep.first_over ~= nil and rep.halt_reason_wave == rep.first_over)
  rep.wall = os.clock() - t0
  return rep
end

--- A report as text (what `make fleet-sim` prints).
-- @tparam table rep from `run`
-- @treturn string
function M.format(rep)
  local out = {}
  local function p(...) out[#out + 1] = fmt(...) end
  p("seed %d: %d routers, failure rate %.1f%% (limit %.1f%%): %s after %.1f h virtual, %.1f s CPU",
    rep.seed, rep.routers, rep.fail_rate * 100, rep.limit * 100, rep.state,
    rep.duration / 3600, rep.wall)
  if rep.reason then p("  %s", rep.reason) end
  for k, w in ipairs(rep.waves) do
    p("  wave %d (%3g%%): %5d routers, %5d done, %4d failed, %4d offline, rate %5.1f%%"
      .. " (truth %4.1f%%)%s%s", k, w.percent, w.routers, w.done, w.failed, w.offline,
      w.rate * 100, w.truth * 100, w.over and " OVER" or "", w.ended and fmt(", ended at %.1f h",
        (w.ended - (rep.waves[1].started or 0)) / 3600) or (w.started and ", running" or ""))
  end
  p("  peak concurrent upgrades %d (controller in flight %d), %d commands, %d runs, "
    .. "%d duplicates refused, %d messages", rep.peak_active, rep.peak, rep.commands,
    rep.runs, rep.duplicates, rep.messages)
  p("  halt check: %s (first wave over the limit: %s; halted in: %s)",
    rep.halt_ok and "OK" or "WRONG", rep.first_over or "none", rep.halt_reason_wave or "-")
  return table.concat(out, "\n")
end

return M
