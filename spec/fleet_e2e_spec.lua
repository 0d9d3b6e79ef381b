-- The fleet end to end (issue 16's proof): a real Mosquitto on 127.0.0.1 with a
-- password file and the contract's ACL (support.broker), 20 `hwfota agent`
-- processes each driving one module of `hwfota-sim --modules 20`, and the
-- controller as the operator runs it (`hwfota fleet rollout`, a process).
-- The simulator's log counts what each module received (AT^FWUP).
local hwfota = require "hwfota"
local sim = require "support.sim"
local broker = require "support.broker"
local json = require "hwfota.json"
local proto = require "hwfota.fleet.proto"
local controller = require "hwfota.fleet.controller"

local has_mqtt = pcall(require, "hwfota.mqtt")
local has_broker, no_broker = broker.available()

local N = 20
local RIDS = {}
for i = 1, N do RIDS[i] = ("r%02d"):format(i) end
local WAVES = {10, 50, 100}
local top = sim.top

-- Drive the loop (the monitor's MQTT client) until pred() or timeout (real s).
local function wait_until(pred, timeout)
  local deadline = hwfota.now() + (timeout or 30)
  repeat
    local v = pred()
    if v then return v end
    hwfota.poll({}, 0.05)
  until hwfota.now() > deadline
  return pred()
end

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

-- The waves of the routers for a rollout id (the controller's own cohort rule).
local function waves_of(id)
  local spec = {salt = id, waves = WAVES}
  local by = {{}, {}, {}}
  local of = {}
  for _, rid in ipairs(RIDS) do
    local w = controller.wave_of(rid, spec)
    of[rid] = w
    table.insert(by[w], rid)
  end
  return by, of
end

-- A rollout id whose waves have 1-3, at least 4 and at least 4 routers: the
-- failures then fall in wave 2 with routers before and after it.
local function pick_rollout(prefix)
  for i = 1, 500 do
    local id = prefix .. i
    local by = waves_of(id)
    if #by[1] >= 1 and #by[1] <= 3 and #by[2] >= 4 and #by[3] >= 4 then return id, by end
  end
  error("no rollout id with usable waves")
end

-- A broker, a simulator with 20 modules (extra arguments: faults), 20 agents and an
-- in-process monitor (the controller user) that keeps the last message per topic.
local function start_fleet(sim_args)
  local env = {}
  local users = {{name = "controller", password = "ctl-secret"}}
  for i, rid in ipairs(RIDS) do users[#users + 1] = {name = rid, password = "pw-" .. i} end
  env.broker = assert(broker.start{users = users})
  local args = {"--modules", tostring(N)}
  for _, a in ipairs(sim_args or {}) do args[#args + 1] = a end
  env.sim = sim.start(args, {scale = "0.03"})
  env.pids = {}
  local launch = {}
  for i, rid in ipairs(RIDS) do
    launch[#launch + 1] = ("lua5.4 lua/bin/hwfota agent --broker 127.0.0.1:%d --username %s "
      .. "--password-file %s --router-id %s --site lab --country DE --location bench "
      .. "--journal %s/journal-%s --port %s --poll 0.2 --reboot-timeout 20 "
      .. ">/dev/null 2>%s/agent-%s.err </dev/null & echo $!"):format(env.broker.port, rid,
      sim.quote(env.broker:password_file(rid)), rid, sim.quote(env.sim.dir), rid,
      sim.quote(env.sim.paths[i]), sim.quote(env.sim.dir), rid)
  end
  local out = sh("cd " .. sim.quote(top) .. " && " .. table.concat(launch, "; "))
  for pid in out:gmatch("%d+") do env.pids[#env.pids + 1] = pid end
  assert(#env.pids == N, "not every agent started")
  env.last, env.seen = {}, {}
  local mqtt_bus = require "hwfota.fleet.mqtt_bus"
  function env.monitor_bus(client_id, user, pw_file)
    local bus = assert(mqtt_bus.new{host = "127.0.0.1", port = env.broker.port,
      client_id = client_id, username = user, password_file = pw_file,
      keepalive = 5, backoff = {first = 0.2, max = 1}})
    return bus
  end
  env.mon = env.monitor_bus("e2e-monitor", "controller", env.broker:password_file("controller"))
  env.mon:on_message(function(topic, payload)
    local m = proto.decode(payload)
    if m then
      env.last[topic] = m
      env.seen[#env.seen + 1] = {topic = topic, msg = m}
    end
  end)
  env.mon:subscribe("hwfota/#", {qos = 1})
  function env.count(kind, pred)
    local n = 0
    for _, rid in ipairs(RIDS) do
      local m = env.last["hwfota/" .. rid .. "/" .. kind]
      if m and (not pred or pred(m, rid)) then n = n + 1 end
    end
    return n
  end
  function env.fwups(rid)   -- AT^FWUP the module of rid received
    for i, r in ipairs(RIDS) do if r == rid then return env.sim:count("AT^FWUP", i - 1) end end
  end
  function env.fota_cmds(rid)   -- FOTA commands (AT^FOTA*, AT^FWUP) the module received
    for i, r in ipairs(RIDS) do
      if r == rid then
        local n = 0
        for _, c in ipairs(env.sim:commands(i - 1)) do
          if c:find("^AT%^FOTADET") or c:find("^AT%^FOTADL") or c:find("^AT%^FWUP") then n = n + 1 end
        end
        return n
      end
    end
  end
  -- `hwfota fleet rollout ...` in the background; returns {pid=, out=, err=, rc=}
  function env.rollout(id, extra, tag)
    local base = env.sim.dir .. "/rollout-" .. id .. (tag or "")
    local r = {out = base .. ".json", err = base .. ".err", rcf = base .. ".rc"}
    local cmd = ("cd %s && (lua5.4 lua/bin/hwfota fleet rollout --to %s --waves 10%%,50%%,100%% "
      .. "--max-failure-rate 5%% --id %s --broker 127.0.0.1:%d --username controller "
      .. "--password-file %s --settle 2 --json %s >%s 2>%s; echo $? >%s) >/dev/null 2>&1 </dev/null & echo $!"):format(
      sim.quote(top), sim.TO, id, env.broker.port,
      sim.quote(env.broker:password_file("controller")), extra or "", sim.quote(r.out),
      sim.quote(r.err), sim.quote(r.rcf))
    r.pid = sh(cmd):match("%d+")
    function r.done()
      local t = sim.read_file(r.rcf)
      if t and t:match("%d+") then r.rc = tonumber(t:match("%d+")); return true end
    end
    function r.state()
      return json.decode(sim.read_file(r.out) or "")
    end
    return r
  end
  function env.stop()
    if env.stopped then return end
    env.stopped = true
    for _, pid in ipairs(env.pids) do os.execute("kill -TERM " .. pid .. " 2>/dev/null") end
    env.mon:close()
    hwfota.poll({}, 0.5)
    env.sim:stop()
    env.broker:cleanup()
  end
  return env
end

local function all_inventories(env)
  return wait_until(function() return env.count("inventory") == N end, 60)
end

local function skip_reason()
  if not has_mqtt then return "hwfota.mqtt is not built (libmosquitto-dev missing)" end
  return no_broker
end

describe("fleet end to end (mosquitto, 20 agents, hwfota-sim)", function()
  if not (has_mqtt and has_broker) then
    it("needs mosquitto and hwfota.mqtt", function() pending(skip_reason()) end)
    return
  end

  local id, by = pick_rollout("halt-")
  local failing = {by[2][1], by[2][2]}
  local fault_modules = {}
  for _, rid in ipairs(failing) do fault_modules[#fault_modules + 1] = tonumber(rid:sub(2)) - 1 end
  local env
  -- whatever fails, no agent, simulator or broker outlives the spec
  teardown(function() if env then env.stop() end end)
  -- the fleet of the first two tests: two modules of wave 2 fail their upgrade
  local function faulty_fleet()
    local e = start_fleet{"--fault-modules", table.concat(fault_modules, ","), "--upgrade-fail", "80"}
    assert(all_inventories(e), "not every agent published its inventory")
    return e
  end

  it("router X can command neither router Y nor the fleet (ACL); the controller can", function()
    env = faulty_fleet()
    local inv = env.last["hwfota/r01/inventory"]
    assert.equal("DE", inv.country)
    assert.equal(sim.FROM, inv.firmware)
    assert.equal(N, env.count("online", function(m) return m.online end))
    local x = env.monitor_bus("e2e-r01", "r01", env.broker:password_file("r01"))
    x:on_message(function() end)
    assert(wait_until(function() return x:connected() end, 10))
    local function cmd(cid, extra)
      local f = {id = cid, op = "report"}
      for k, v in pairs(extra or {}) do f[k] = v end
      return assert(proto.encode(assert(proto.build(f.select and "fleet_cmd" or "cmd", f))))
    end
    assert(x:publish("hwfota/r02/cmd", cmd("acl-x-1"), {qos = 1}))
    assert(x:publish("hwfota/fleet/cmd", cmd("acl-x-2", {select = {routers = {"r02"}}}), {qos = 1}))
    assert(x:publish("hwfota/r02/status", '{"v":1,"type":"status","router":"r02","phase":"failed","time":1}',
                     {qos = 1, retain = true}))
    -- the controller's command on the same topic is answered: the check can see a reply
    assert(env.mon:publish("hwfota/r02/cmd", cmd("acl-c-1"), {qos = 1}))
    assert(wait_until(function()
      local r = env.last["hwfota/r02/reply"]
      return r and r.id == "acl-c-1"
    end, 20), "the controller's command got no reply")
    hwfota.poll({}, 0.5)
    for _, s in ipairs(env.seen) do
      if s.msg.type == "reply" then
        assert.is_not.equal("acl-x-1", s.msg.id)
        assert.is_not.equal("acl-x-2", s.msg.id)
      end
      if s.topic == "hwfota/r02/status" then assert.is_not.equal(1, s.msg.time) end
    end
    x:close()
  end)

  it("a rollout 10%,50%,100% at 5% halts in the wave of the two failing routers; later waves untouched", function()
    env = env or faulty_fleet()      -- run alone (--filter): a fleet of its own
    local ro = env.rollout(id)
    assert(wait_until(ro.done, 120), "the rollout did not end")
    local st = assert(ro.state(), "no JSON state: " .. tostring(sim.read_file(ro.err)))
    assert.equal(1, ro.rc)
    assert.equal("halted", st.state)
    assert.equal(2, st.wave)
    assert.matches("^wave 2:", st.reason)
    -- the halt names exactly the two failing routers, in wave 2 (it waited for the
    -- commands already out: --halt-wait)
    local named = {}
    for _, f in ipairs(st.failures) do
      assert.equal(2, f.wave)
      named[#named + 1] = f.router .. ":" .. tostring(f.code)
    end
    table.sort(named)
    assert.same({failing[1] .. ":EUPGRADE", failing[2] .. ":EUPGRADE"}, named)
    -- both failing routers end failed with the upgrade's code; nobody else fails
    assert(wait_until(function()
      return env.count("status", function(m) return m.rollout == id and m.phase == "failed" end) == 2
    end, 60), "the failing routers' final statuses")
    -- the controller taken up again on the same rollout (as an operator would, to
    -- look at it) knows both failures from the retained state and statuses
    local again = env.rollout(id, nil, "again")
    assert(wait_until(again.done, 60), "the second controller did not end")
    local st2 = assert(again.state(), "no JSON state: " .. tostring(sim.read_file(again.err)))
    assert.equal("halted", st2.state)
    local names = {}
    for _, f in ipairs(st2.failures) do names[#names + 1] = f.router .. ":" .. tostring(f.code) end
    table.sort(names)
    assert.same({failing[1] .. ":EUPGRADE", failing[2] .. ":EUPGRADE"}, names)
    for _, rid in ipairs(failing) do
      local s = env.last["hwfota/" .. rid .. "/status"]
      assert.equal("failed", s.phase)
      assert.equal("EUPGRADE", s.result.code)
      assert.equal(1, env.fwups(rid))
    end
    for _, rid in ipairs(by[1]) do
      assert.equal("done", env.last["hwfota/" .. rid .. "/status"].phase)
      assert.equal(1, env.fwups(rid))
    end
    for i = 3, #by[2] do
      local rid = by[2][i]
      assert(wait_until(function() return env.last["hwfota/" .. rid .. "/status"].phase == "done" end, 30))
      assert.equal(1, env.fwups(rid))
    end
    -- wave 3: never commanded, the module never asked
    for _, rid in ipairs(by[3]) do
      assert.is_nil(env.last["hwfota/" .. rid .. "/status"].cmd)
      assert.equal(0, env.fota_cmds(rid), rid)
      assert.equal(sim.FROM, env.last["hwfota/" .. rid .. "/inventory"].firmware)
    end
    env.stop()
  end)

  it("a rollout without failures upgrades all 20 with one AT^FWUP each, through a broker killed and restarted mid-rollout", function()
    if env then env.stop() end
    env = start_fleet()
    local rid2, by2 = pick_rollout("all-")
    assert(all_inventories(env), "not every agent published its inventory")
    local ro = env.rollout(rid2)
    -- wave 2 under way: kill the broker (SIGKILL) and start it again
    assert(wait_until(function()
      for _, rid in ipairs(by2[2]) do
        local s = env.last["hwfota/" .. rid .. "/status"]
        if s and s.rollout == rid2 and s.phase ~= "done" and s.phase ~= "failed" then return true end
      end
    end, 60), "wave 2 never started")
    env.broker:kill()
    hwfota.poll({}, 1.5)
    assert(env.broker:start())
    assert(wait_until(ro.done, 120), "the rollout did not end")
    local st = assert(ro.state(), "no JSON state: " .. tostring(sim.read_file(ro.err)))
    assert.equal(0, ro.rc)
    assert.equal("done", st.state)
    assert.equal(N, st.totals.done)
    -- nothing ran twice
    for _, rid in ipairs(RIDS) do assert.equal(1, env.fwups(rid), rid) end
    -- nothing lost: a client that connects now reads every router's final status
    local late = env.monitor_bus("e2e-late", "controller", env.broker:password_file("controller"))
    local finals = {}
    late:on_message(function(topic, payload, retained)
      local m = proto.decode(payload)
      if m and m.type == "status" and retained then finals[m.router] = m end
    end)
    late:subscribe("hwfota/+/status", {qos = 1})
    assert(wait_until(function()
      local n = 0
      for _ in pairs(finals) do n = n + 1 end
      return n == N
    end, 30), "a final status is missing")
    for _, rid in ipairs(RIDS) do
      local m = finals[rid]
      assert.equal("done", m.phase, rid)
      assert.equal(rid2, m.rollout)
      assert.is_true(m.result.ok)
      assert.equal(sim.TO, m.result.to)
    end
    late:close()
    env.stop()
  end)
end)
