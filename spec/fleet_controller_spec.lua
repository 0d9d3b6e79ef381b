-- busted specs for hwfota.fleet.controller: waves, hash stability, halt, resume, offline
-- routers, windows, concurrency, restarts (retained state, state file), command ids.
-- The controller runs on hwfota.fleet.membus with a virtual clock; the agents here are
-- scripted (each command's outcome is set by the test).
local controller = require "hwfota.fleet.controller"
local membus = require "hwfota.fleet.membus"
local vclock = require "hwfota.fleet.vclock"
local proto = require "hwfota.fleet.proto"
local policy = require "hwfota.policy"
local json = require "hwfota.json"

local FROM, TO = "1.0", "2.0"

-- A fleet of scripted agents. Each agent: `outcome` ("ok" | failure code | "silent"),
-- `delay` (seconds to the result), `firmware`, `utc_offset`, `busy` (refuse commands).
local function fleet(n, opts)
  opts = opts or {}
  local clock = vclock.new(opts.start or 0)
  local broker = membus.new{clock = clock, latency = 0.01}
  local env = {clock = clock, broker = broker, agents = {}, cmds = {}, ids = {}, order = {}}
  for i = 1, n do
    local rid = ("r%02d"):format(i)
    local a = {rid = rid, firmware = FROM, outcome = "ok", delay = 60, ledger = {},
               runs = 0, utc_offset = nil}
    if opts.each then opts.each(a, i) end
    local function msg(kind, f)
      return assert(proto.encode(assert(proto.build(kind, f))))
    end
    a.client = broker:client{client_id = rid, will = {topic = proto.topic(rid, "online"),
      payload = msg("online", {online = false, time = 0}), retain = true}}
    local c = a.client
    local function pub(kind, f, retain) c:publish(proto.topic(rid, kind), msg(kind, f), {retain = retain}) end
    a.status = {router = rid, phase = "idle"}
    local function status() local s = {} for k, v in pairs(a.status) do s[k] = v end
      s.time = clock.now(); pub("status", s, true) end
    c:on_connect(function()
      pub("online", {online = true, time = clock.now()}, true)
      pub("inventory", {router = rid, model = "MU609", imei = ("86722302%07d"):format(i),
                        firmware = a.firmware, fota_state = 0, agent = "test", time = clock.now(),
                        country = "DE", location = "loc" .. i, utc_offset = a.utc_offset}, true)
      status()
    end)
    c:on_message(function(_, payload)
      local m = assert(proto.decode(payload, "cmd"))
      env.cmds[#env.cmds + 1] = {rid = rid, id = m.id, t = clock.now(), to = m.to}
      env.ids[m.id] = (env.ids[m.id] or 0) + 1
      if a.ledger[m.id] then return pub("reply", {id = m.id, accepted = false, reason = "duplicate"}) end
      if a.busy then return pub("reply", {id = m.id, accepted = false, reason = "busy"}) end
      a.ledger[m.id] = true
      pub("reply", {id = m.id, accepted = true})
      a.runs = a.runs + 1
      a.status = {router = rid, cmd = m.id, rollout = m.rollout, phase = "downloading", progress = 0}
      status()
      if a.outcome == "silent" then return end
      clock.timer(a.delay, function()
        if a.outcome == "ok" then
          a.status = {router = rid, cmd = m.id, rollout = m.rollout, phase = "done",
                      result = {ok = true, outcome = "upgraded", from = a.firmware, to = m.to}}
          a.firmware = m.to
        else
          a.status = {router = rid, cmd = m.id, rollout = m.rollout, phase = "failed",
                      result = {ok = false, outcome = "failed", code = a.outcome}}
        end
        status()         -- lost while offline: sent again on reconnection
      end)
    end)
    c:subscribe(proto.topic(rid, "cmd"))
    env.agents[rid] = a
    env.order[i] = a
  end
  function env.controller(o)
    o = o or {}
    local bus = broker:client{client_id = o.client_id or "ctl"}
    local events = {}
    local ctl = controller.new{bus = bus, clock = clock, settle = 1, tick = 10,
      publish_interval = 1, result_timeout = o.result_timeout or 3600,
      retry_delay = o.retry_delay or 100, store = o.store,
      on_event = function(ev, st) if ev ~= "publish" then events[#events + 1] = {ev, st} end end}
    assert(ctl:start())
    return ctl, bus, events
  end
  function env.run(seconds) clock.run(clock.now() + (seconds or 3600)) end
  return env
end

local function rollout(ctl, spec)
  local out, err
  ctl:when_ready(function() out, err = ctl:rollout(spec) end)
  return function() return out, err end
end

-- Routers of wave k under `spec` (by the policy kit's cohort position, directly).
local function wave_members(env, spec, k)
  local out = {}
  for _, a in ipairs(env.order) do
    local p = policy.cohort_position(":" .. (spec.salt or spec.id) .. ":fleet", a.rid)
    local lo, hi = k > 1 and spec.waves[k - 1] or 0, spec.waves[k]
    if p >= lo and p < hi then out[#out + 1] = a.rid end
  end
  table.sort(out)
  return out
end

local function commanded(env)
  local set, list = {}, {}
  for _, c in ipairs(env.cmds) do
    if not set[c.rid] then set[c.rid] = true; list[#list + 1] = c.rid end
  end
  table.sort(list)
  return list, set
end

local function no_duplicate_ids(env)
  for id, n in pairs(env.ids) do assert.equal(1, n, "command " .. id .. " sent " .. n .. " times") end
end

describe("hwfota.fleet.controller", function()
  it("assigns waves by the policy kit's cohort position, stably and evenly", function()
    local spec = assert(controller.check_spec{id = "ro", to = TO, waves = {10, 50, 100}})
    for i = 1, 200 do
      local rid = "router-" .. i
      local p = policy.cohort_position(":ro:fleet", rid)
      assert.equal(p, controller.position(rid, "ro"))
      local w = controller.wave_of(rid, spec)
      assert.equal(controller.wave_of(rid, spec), w)
      assert.equal(p < 10 and 1 or p < 50 and 2 or 3, w)
    end
    -- a cumulative wave list: a router in wave 1 of {10,...} stays in wave 1 of {20,...}
    local wider = assert(controller.check_spec{id = "ro", to = TO, waves = {20, 100}})
    for i = 1, 200 do
      if controller.wave_of("router-" .. i, spec) == 1 then
        assert.equal(1, controller.wave_of("router-" .. i, wider))
      end
    end
    -- above the last wave: not in the rollout
    local half = assert(controller.check_spec{id = "ro", to = TO, waves = {50}})
    local outside = 0
    for i = 1, 200 do if not controller.wave_of("router-" .. i, half) then outside = outside + 1 end end
    assert.is_true(outside > 80 and outside < 120, outside)
    -- sequential router names spread over the waves (not crowded into a few places)
    local tenth = assert(controller.check_spec{id = "ro", to = TO,
      waves = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100}})
    local count = {}
    for i = 1, 2000 do
      local w = controller.wave_of(("r%04d"):format(i), tenth)
      count[w] = (count[w] or 0) + 1
    end
    for k = 1, 10 do assert.is_true(count[k] > 140 and count[k] < 260, k .. ": " .. count[k]) end
  end)

  it("checks the rollout spec", function()
    local bad = {
      {{id = "a:b", to = TO}, "id"}, {{id = "x", to = "1.0\";"}, "to"},
      {{id = "x", to = TO, waves = {50, 10}}, "waves"}, {{id = "x", to = TO, waves = {0}}, "waves"},
      {{id = "x", to = TO, waves = {101}}, "waves"},
      {{id = "x", to = TO, max_failure_rate = 1}, "max_failure_rate"},
      {{id = "x", to = TO, window = "25:00-01:00"}, "window"},
      {{id = "x", to = TO, window = "01:00-01:00"}, "empty"},
      {{id = "x", to = TO, concurrency = 0}, "concurrency"},
    }
    for _, c in ipairs(bad) do
      local s, msg, code = controller.check_spec(c[1])
      assert.is_nil(s, c[2]); assert.equal("EINVAL", code); assert.matches(c[2], msg)
    end
    local w = assert(controller.parse_window("22:30-02:00"))
    assert.same({from = 1350, to = 120, text = "22:30-02:00"}, w)
  end)

  it("commands wave 1 first, then the next wave after its results; ids <rollout>:<rid>:1", function()
    local env = fleet(30)
    local ctl = env.controller()
    local spec = {id = "ro1", to = TO, waves = {20, 60, 100}, max_failure_rate = 0.5}
    local res = rollout(ctl, spec)
    env.run(30)                               -- settle, wave 1 sent, no result yet
    assert.truthy(res())
    local w1 = wave_members(env, spec, 1)
    assert.is_true(#w1 > 0)
    assert.same(w1, (commanded(env)))
    for _, c in ipairs(env.cmds) do
      assert.equal("ro1:" .. c.rid .. ":1", c.id)
      assert.equal(TO, c.to)
    end
    env.run(7200)
    local st = ctl:state("ro1")
    assert.equal("done", st.state)
    assert.equal(30, #(commanded(env)))
    for k = 1, 3 do
      assert.equal(#wave_members(env, spec, k), st.waves_stats[k].routers)
      assert.equal(st.waves_stats[k].routers, st.waves_stats[k].done)
    end
    -- each wave started after the previous one ended
    assert.is_true(st.waves_stats[2].started >= st.waves_stats[1].ended)
    assert.is_true(st.waves_stats[3].started >= st.waves_stats[2].ended)
    no_duplicate_ids(env)
    for _, a in pairs(env.agents) do assert.equal(1, a.runs) end
  end)

  it("never has more than `concurrency` commands in flight", function()
    local env = fleet(30, {each = function(a, i) a.delay = 50 + i * 7 end})
    local ctl = env.controller()
    rollout(ctl, {id = "c", to = TO, waves = {100}, concurrency = 4})
    local max = 0
    for _ = 1, 400 do
      env.run(5)
      local inflight = 0
      for _, a in pairs(env.agents) do
        if a.status.phase == "downloading" then inflight = inflight + 1 end
      end
      max = math.max(max, inflight)
    end
    assert.equal(4, max)
    assert.equal("done", ctl:state("c").state)
    assert.equal(4, ctl:state("c").peak_inflight)
  end)

  it("counts routers already on the version as done without a command", function()
    local env = fleet(10, {each = function(a, i) if i <= 4 then a.firmware = TO end end})
    local ctl = env.controller()
    rollout(ctl, {id = "d", to = TO, waves = {100}})
    env.run(3600)
    local st = ctl:state("d")
    assert.equal("done", st.state)
    assert.equal(10, st.totals.done)
    local _, set = commanded(env)
    for i = 1, 4 do assert.is_nil(set[("r%02d"):format(i)]) end
    assert.equal(6, #(commanded(env)))
  end)

  it("halts at the wave whose failure rate is over the limit, naming the failing routers and codes", function()
    local spec = {id = "h", to = TO, waves = {30, 100}, max_failure_rate = 0.05}
    local env = fleet(30)
    local w1 = wave_members(env, spec, 1)
    env.agents[w1[1]].outcome = "EFWUP"
    env.agents[w1[1]].delay = 500              -- the last result of the wave
    local ctl, _, events = env.controller()
    rollout(ctl, spec)
    env.run(3600)
    local st = ctl:state("h")
    assert.equal("halted", st.state)
    assert.matches("^wave 1: 1 of " .. #w1 .. " routers failed", st.reason)
    assert.same({{router = w1[1], wave = 1, code = "EFWUP"}}, st.failures)
    assert.same(w1, (commanded(env)))          -- wave 2 untouched
    assert.equal("halt", events[#events][1])
  end)

  it("halts at once while a wave runs when its failures already exceed the limit on its size", function()
    local spec = {id = "e", to = TO, waves = {100}, max_failure_rate = 0.1}
    local env = fleet(30, {each = function(a, i)
      a.delay = (i <= 4) and 10 or 1000
      if i <= 4 then a.outcome = "EDOWNLOAD" end
    end})
    local ctl = env.controller()
    rollout(ctl, spec)
    env.run(100)
    local st = ctl:state("e")
    assert.equal("halted", st.state)            -- 4 > 0.1 * 30, the others still running
    assert.matches("4 of 30 routers failed", st.reason)
    assert.matches("of the wave already", st.reason)
    assert.equal(26, st.inflight)
  end)

  it("does not halt at a rate equal to the limit", function()
    local spec = {id = "q", to = TO, waves = {100}, max_failure_rate = 0.1}
    local env = fleet(30, {each = function(a, i) if i <= 3 then a.outcome = "EFWUP" end end})
    local ctl = env.controller()
    rollout(ctl, spec)
    env.run(3600)
    local st = ctl:state("q")
    assert.equal("done", st.state)
    assert.equal(3, st.failures_total)
  end)

  it("resume goes on with the next wave and does not retry failed routers unless asked", function()
    local spec = {id = "r", to = TO, waves = {30, 100}, max_failure_rate = 0.05}
    local env = fleet(30)
    local w1 = wave_members(env, spec, 1)
    env.agents[w1[1]].outcome = "EFWUP"
    local ctl = env.controller()
    rollout(ctl, spec)
    env.run(3600)
    assert.equal("halted", ctl:state("r").state)
    local r, msg, code = ctl:resume("nope")
    assert.is_nil(r); assert.equal("ENOENT", code); assert.matches("nope", msg)
    assert.is_true(ctl:resume("r"))
    env.run(3600)
    local st = ctl:state("r")
    assert.equal("done", st.state)
    assert.equal(1, env.agents[w1[1]].runs)      -- not retried
    assert.equal(30, #(commanded(env)))
    no_duplicate_ids(env)
    -- a second halt/resume with retry_failed sends the failed router command number 2
    env.agents[w1[1]].outcome = "ok"
    assert.is_nil((ctl:resume("r")))             -- not halted
    ctl:halt("r", "operator test")
    assert.equal("operator test", ctl:state("r").reason)
    assert.is_true(ctl:resume("r", {retry_failed = true}))
    env.run(3600)
    assert.equal(1, env.ids["r:" .. w1[1] .. ":2"])
    assert.equal(0, ctl:state("r").failures_total)
  end)

  it("counts offline routers apart and commands them when they come back", function()
    local spec = {id = "o", to = TO, waves = {100}, max_failure_rate = 0}
    local env = fleet(10)
    local away = env.order[3]
    env.clock.run(0.5)                          -- everyone connected
    membus.set_online(away.client, false)
    local ctl = env.controller()
    rollout(ctl, spec)
    env.run(3600)
    local st = ctl:state("o")
    assert.equal("done", st.state)              -- the wave ended without it
    assert.equal(1, st.waves_stats[1].offline)
    assert.equal(0, st.failures_total)
    assert.is_nil(env.ids["o:" .. away.rid .. ":1"])
    membus.set_online(away.client, true)
    env.run(600)
    assert.equal(1, env.ids["o:" .. away.rid .. ":1"])
    st = ctl:state("o")
    assert.equal(10, st.totals.done)
    assert.equal(0, st.totals.offline)
  end)

  it("a router that goes offline in flight stops holding its wave; its late result counts", function()
    local spec = {id = "l", to = TO, waves = {100}, max_failure_rate = 0.5}
    local env = fleet(6, {each = function(a, i) if i == 1 then a.delay = 900 end end})
    local ctl = env.controller()
    rollout(ctl, spec)
    env.run(100)
    membus.set_online(env.order[1].client, false)
    env.run(500)
    local st = ctl:state("l")
    assert.equal("done", st.state)
    assert.equal(1, st.totals.offline)
    env.run(1000)                                -- the run ended while offline
    membus.set_online(env.order[1].client, true)
    env.run(100)
    st = ctl:state("l")
    assert.equal(6, st.totals.done)
    assert.equal(1, env.order[1].runs)
  end)

  it("a command lost while the router dropped off goes again, same id, when it is back", function()
    local env = fleet(3)
    local ctl, bus = env.controller()
    local lost = env.order[2]
    local publish = bus.publish
    bus.publish = function(b, topic, payload, o)   -- r02 drops off as its command leaves
      local ok, e, c = publish(b, topic, payload, o)
      if topic == "hwfota/r02/cmd" and not lost.dropped then
        lost.dropped = true
        membus.set_online(lost.client, false)
      end
      return ok, e, c
    end
    rollout(ctl, {id = "g", to = TO, waves = {100}})
    env.run(600)
    assert.equal(0, lost.runs)
    assert.is_nil(env.ids["g:r02:1"])             -- never arrived
    assert.equal("done", ctl:state("g").state)     -- r02 counted offline
    membus.set_online(lost.client, true)
    env.run(600)
    assert.equal(1, env.ids["g:r02:1"])
    assert.equal(1, lost.runs)
    assert.equal(3, ctl:state("g").totals.done)
  end)

  it("a router without a result within result_timeout fails with ETIMEDOUT", function()
    local spec = {id = "t", to = TO, waves = {100}, max_failure_rate = 0.5}
    local env = fleet(4, {each = function(a, i) if i == 2 then a.outcome = "silent" end end})
    local ctl = env.controller{result_timeout = 300}
    rollout(ctl, spec)
    env.run(200)
    assert.equal("running", ctl:state("t").state)
    env.run(400)
    local st = ctl:state("t")
    assert.equal("done", st.state)
    assert.equal("ETIMEDOUT", st.failures[1].code)
    assert.equal("r02", st.failures[1].router)
  end)

  it("a refused command goes again with the next id after retry_delay", function()
    local env = fleet(3, {each = function(a, i) if i == 1 then a.busy = true end end})
    local ctl = env.controller{retry_delay = 100}
    rollout(ctl, {id = "b", to = TO, waves = {100}})
    env.run(50)
    assert.equal(1, env.ids["b:r01:1"])
    env.order[1].busy = false
    env.run(3600)
    assert.equal(1, env.ids["b:r01:2"])
    assert.equal("done", ctl:state("b").state)
    assert.equal(3, ctl:state("b").totals.done)
  end)

  it("commands a router only inside its local window (UTC plus utc_offset)", function()
    -- start at 00:00 UTC; window 01:00-02:00 local; r01 at UTC+0, r02 at UTC-3h
    local env = fleet(2, {each = function(a, i) a.utc_offset = (i == 2) and -3 * 3600 or 0 end})
    local ctl = env.controller()
    rollout(ctl, {id = "w", to = TO, waves = {100}, window = "01:00-02:00"})
    env.run(3000)
    assert.same({}, env.cmds)
    env.run(1000)                                -- 01:06 UTC
    assert.same({"r01"}, (commanded(env)))
    env.run(3 * 3600)                            -- 04:06 UTC = 01:06 at UTC-3
    assert.same({"r01", "r02"}, (commanded(env)))
    local t2
    for _, c in ipairs(env.cmds) do if c.rid == "r02" then t2 = c.t end end
    assert.is_true(t2 >= 4 * 3600 and t2 < 5 * 3600)
  end)

  it("publishes its state retained, decodable and under the size limit", function()
    local env = fleet(30, {each = function(a) a.outcome = "EFWUP" end})
    local ctl = env.controller()
    rollout(ctl, {id = "p", to = TO, waves = {100}, max_failure_rate = 0.9})
    env.run(3600)
    local payload = env.broker.retained["hwfota/fleet/rollout/p"]
    assert.truthy(payload)
    local st = assert(proto.decode(payload, "rollout"))
    assert.equal("halted", st.state)
    assert.is_true(#payload <= proto.MAX_PAYLOAD)
    assert.is_true(#st.failures >= 1)
  end)

  it("a restarted controller takes the rollout up from the retained state: no command twice", function()
    local spec = {id = "s", to = TO, waves = {30, 100}, max_failure_rate = 0.5, concurrency = 3}
    local env = fleet(30, {each = function(a, i) a.delay = 200 + 13 * i end})
    local ctl1, bus1 = env.controller()
    rollout(ctl1, spec)
    env.run(900)
    local sent_before = #env.cmds
    assert.is_true(sent_before > 0 and sent_before < 30)
    ctl1:stop()
    membus.kill(bus1)
    env.run(300)                                  -- results keep coming meanwhile
    local ctl2 = env.controller{client_id = "ctl2"}
    local res = rollout(ctl2, {id = "s"})         -- only the id: the rest from the state
    env.run(7200)
    assert.truthy(res())
    local st = ctl2:state("s")
    assert.equal("done", st.state)
    assert.same({30, 100}, st.waves)
    assert.equal(30, #(commanded(env)))
    no_duplicate_ids(env)
    for _, a in pairs(env.agents) do assert.equal(1, a.runs) end
  end)

  it("a restarted controller with a state file sends no command again, not even in flight", function()
    local files = {}
    local store = {load = function(id) return files[id] end,
                   save = function(id, text) files[id] = text; return true end}
    local spec = {id = "f", to = TO, waves = {100}, max_failure_rate = 0.5}
    local env = fleet(10, {each = function(a, i) a.delay = 100 * i end})
    local ctl1, bus1 = env.controller{store = store}
    rollout(ctl1, spec)
    env.run(250)
    assert.truthy(files.f)
    local saved = assert(json.decode(files.f))
    assert.equal("sent", saved.routers.r05[1])
    ctl1:stop()
    membus.kill(bus1)
    -- the retained state is gone too (e.g. another broker): only the file remains
    env.broker.retained["hwfota/fleet/rollout/f"] = nil
    local ctl2 = env.controller{client_id = "ctl2", store = store}
    rollout(ctl2, {id = "f"})
    env.run(3600)
    assert.equal("done", ctl2:state("f").state)
    no_duplicate_ids(env)
  end)

  it("refuses to take up a rollout id with another version", function()
    local env = fleet(2)
    local ctl1, bus1 = env.controller()
    rollout(ctl1, {id = "x", to = TO, waves = {100}})
    env.run(600)
    ctl1:stop(); membus.kill(bus1)
    local ctl2 = env.controller{client_id = "c2"}
    local res = rollout(ctl2, {id = "x", to = "3.0", waves = {100}})
    env.run(10)
    local ok, msg = res()
    assert.is_nil(ok); assert.matches("exists with to=2.0", msg)
  end)

  it("obeys halt and resume requests on hwfota/fleet/control/<id>", function()
    local env = fleet(10, {each = function(a) a.delay = 1000 end})
    local ctl = env.controller()
    rollout(ctl, {id = "k", to = TO, waves = {50, 100}})
    local op = env.broker:client{client_id = "op"}
    env.run(100)
    op:publish(controller.control_topic("k"), json.encode{v = 1, type = "control", op = "halt",
                                                          reason = "stop now"})
    env.run(10)
    local st = ctl:state("k")
    assert.equal("halted", st.state)
    assert.equal("stop now", st.reason)
    env.run(3000)
    local n = #env.cmds
    op:publish(controller.control_topic("k"), json.encode{v = 1, type = "control", op = "resume"})
    env.run(5000)
    assert.equal("done", ctl:state("k").state)
    assert.is_true(#env.cmds > n)
  end)

  it("drops malformed and foreign messages without raising", function()
    local env = fleet(2)
    local ctl = env.controller()
    local bad = env.broker:client{client_id = "bad"}
    env.run(5)
    bad:publish("hwfota/r01/status", "{not json")
    bad:publish("hwfota/r01/inventory", '{"v":2,"type":"inventory"}')
    bad:publish("hwfota/r02/status", assert(proto.encode(assert(proto.build("status",
      {router = "r01", phase = "done", time = 1})))))     -- names another router
    bad:publish("hwfota/fleet/control/zz", "x")
    env.run(5)
    assert.equal(2, #ctl:inventory())
    assert.equal("idle", ctl.routers.r02.status.phase)
  end)

  it("lists the inventory (the IMEI list)", function()
    local env = fleet(3)
    local ctl = env.controller()
    env.run(5)
    local inv = ctl:inventory()
    assert.equal(3, #inv)
    assert.same({router = "r01", model = "MU609", imei = "867223020000001", firmware = FROM,
                 country = "DE", location = "loc1", online = true, fota_state = 0,
                 phase = "idle"}, inv[1])
  end)
end)
