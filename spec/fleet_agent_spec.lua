-- The fleet agent (issue 16, hwfota.fleet.agent) on the in-memory broker
-- (hwfota.fleet.membus) and a simulated module (hwfota-sim): what it publishes,
-- which commands it runs and which it refuses, its command ledger across a
-- restart, and a final status that survives the broker's absence.
local hwfota = require "hwfota"
local sim = require "support.sim"
local membus = require "hwfota.fleet.membus"
local proto = require "hwfota.fleet.proto"
local agent = require "hwfota.fleet.agent"

local clock = {now = hwfota.now, timer = hwfota.timer}

-- Run fn(env) in a task on the shared loop until everything settled; the
-- environment is stopped whatever happens, and fn's error (an assertion) is
-- raised here.
local function drive(env, fn)
  local err
  hwfota.spawn(function()
    local ok, e = xpcall(fn, debug.traceback, env)
    if not ok then err = e end
    env.stop()
  end)
  hwfota.loop()
  if err then error(err, 0) end
end

local function wait_until(pred, timeout)
  local deadline = hwfota.now() + (timeout or 20)
  while hwfota.now() < deadline do
    local v = pred()
    if v then return v end
    hwfota.sleep(0.02)
  end
  return nil
end

-- A simulated module, a broker, a controller-side client that records every
-- message under hwfota/, and an agent "r1" (started by env:start()).
local function setup(o)
  o = o or {}
  local env = {}
  env.sim = sim.start(o.sim_args or {}, {scale = "0.03"})
  env.dir = env.sim.dir
  env.journal = env.dir .. "/journal"
  env.broker = membus.new{clock = clock}
  env.got = {}
  env.ctl = env.broker:client{client_id = "ctl"}
  env.ctl:on_message(function(topic, payload, retained)
    local m = proto.decode(payload)
    env.got[#env.got + 1] = {topic = topic, msg = m, retained = retained, at = hwfota.now()}
  end)
  env.ctl:subscribe("hwfota/#")
  env.logs = {}
  function env.new_agent(extra)
    local rid = extra and extra.router or "r1"
    local will = assert(proto.encode(assert(proto.build("online", {online = false, time = 1}))))
    local bus = env.broker:client{client_id = "agent-" .. rid,
                                  will = {topic = "hwfota/" .. rid .. "/online", payload = will, retain = true}}
    local cfg = {bus = bus, router = rid, port = env.sim.path, clock = clock,
                 options = sim.opts{journal = env.journal}, site = "s1", country = "DE",
                 location = "Berlin", policies = o.policies,
                 log = function(level, msg) env.logs[#env.logs + 1] = level .. ": " .. msg end}
    for k, v in pairs(extra or {}) do cfg[k] = v end
    local a = assert(agent.new(cfg))
    env.bus = bus
    return a
  end
  -- messages of one kind for r1 (or rid), decoded, in order
  function env.of(kind, rid)
    local out = {}
    for _, g in ipairs(env.got) do
      if g.topic == "hwfota/" .. (rid or "r1") .. "/" .. kind then out[#out + 1] = g.msg end
    end
    return out
  end
  function env.reply(id)
    for _, m in ipairs(env.of("reply")) do if m and m.id == id then return m end end
  end
  function env.last_status()
    local s = env.of("status")
    return s[#s]
  end
  function env.final(id)   -- the final status of command id
    for _, m in ipairs(env.of("status")) do
      if m and m.cmd == id and (m.phase == "done" or m.phase == "failed") then return m end
    end
  end
  function env.send(cmd, topic)
    local fields = {}
    for k, v in pairs(cmd) do fields[k] = v end
    local kind = fields.select and "fleet_cmd" or "cmd"
    local payload = assert(proto.encode(assert(proto.build(kind, fields))))
    return env.ctl:publish(topic or "hwfota/r1/cmd", payload, {qos = 1})
  end
  function env.stop()
    if env.stopped then return end
    env.stopped = true
    if env.agent then env.agent:stop() end
    env.ctl:close()
    env.broker:stop()
    env.sim:stop()
  end
  return env
end

-- Start the agent and wait for its inventory.
local function start(env, extra)
  env.agent = env.new_agent(extra)
  env.agent:start()
  assert(wait_until(function() return #env.of("inventory") > 0 end), "no inventory published")
end

local function settle(env)
  assert(wait_until(function() return not env.agent:busy() end, 30), "the agent stayed busy")
  hwfota.sleep(0.1)
end

describe("fleet agent", function()
  it("publishes online, the module's inventory and an idle status on start", function()
    local env = setup()
    drive(env, function()
      start(env)
      local inv = env.of("inventory")[1]
      assert.equal("r1", inv.router)
      assert.equal(sim.FROM, inv.firmware)
      assert.matches("^%d+$", inv.imei)
      assert.equal("MU509-b", inv.model)
      assert.equal("DE", inv.country)
      assert.equal("s1", inv.site)
      assert.equal("Berlin", inv.location)
      assert.equal(10, inv.fota_state)
      assert.is_number(inv.utc_offset)     -- the controller's windows use the router's time
      assert.is_true(env.of("online")[1].online)
      assert(wait_until(function() return env.last_status() end))
      assert.equal("idle", env.last_status().phase)
    end)
  end)

  it("runs an upgrade to the offered version: accepted, phases, final result, new inventory", function()
    local env = setup()
    drive(env, function()
      start(env)
      env.send{id = "u1", op = "upgrade", to = sim.TO, rollout = "ro1"}
      assert(wait_until(function() return env.final("u1") end, 30), "no final status")
      assert.is_true(env.reply("u1").accepted)
      local f = env.final("u1")
      assert.equal("done", f.phase)
      assert.equal("ro1", f.rollout)
      assert.is_true(f.result.ok)
      assert.equal("upgraded", f.result.outcome)
      assert.equal(sim.TO, f.result.to)
      local phases = {}
      for _, m in ipairs(env.of("status")) do if m.cmd == "u1" then phases[m.phase] = true end end
      assert.is_true(phases.busy and phases.checking and phases.downloading and phases.upgrading)
      settle(env)
      local invs = env.of("inventory")
      assert.equal(sim.TO, invs[#invs].firmware)
      assert.equal(1, env.sim:count("AT^FWUP"))
    end)
  end)

  it("refuses a command while a run is busy (not queued) and runs it never", function()
    local env = setup()
    drive(env, function()
      start(env)
      env.send{id = "u1", op = "upgrade"}
      assert(wait_until(function()
        local s = env.last_status()
        return s and s.cmd == "u1" and s.phase ~= "busy" and s.phase ~= "idle"
      end), "the upgrade did not start")
      env.send{id = "c2", op = "check"}
      assert(wait_until(function() return env.reply("c2") end))
      assert.is_false(env.reply("c2").accepted)
      assert.equal("busy", env.reply("c2").reason)
      assert(wait_until(function() return env.final("u1") end, 30))
      settle(env)
      assert.equal(1, env.sim:count("AT^FOTADET"))   -- the check never ran
      assert.is_nil(env.final("c2"))
    end)
  end)

  it("refuses an id seen before as duplicate and sends nothing to the module", function()
    local env = setup()
    drive(env, function()
      start(env)
      env.send{id = "c1", op = "check"}
      assert(wait_until(function() return env.final("c1") end, 30))
      settle(env)
      assert.equal("new_version", env.final("c1").result.outcome)
      local n = #env.sim:commands()
      env.send{id = "c1", op = "check"}
      assert(wait_until(function()
        local k = 0
        for _, m in ipairs(env.of("reply")) do if m.id == "c1" then k = k + 1 end end
        return k == 2
      end))
      local replies = {}
      for _, m in ipairs(env.of("reply")) do if m.id == "c1" then replies[#replies + 1] = m end end
      assert.is_false(replies[2].accepted)
      assert.equal("duplicate", replies[2].reason)
      hwfota.sleep(0.3)
      assert.equal(n, #env.sim:commands())
    end)
  end)

  it("keeps its ledger in <journal>.agent across a restart: a redelivered id is not run again", function()
    local env = setup()
    drive(env, function()
      start(env)
      env.send{id = "ro1:r1:1", op = "upgrade", to = sim.TO, rollout = "ro1"}
      assert(wait_until(function() return env.final("ro1:r1:1") end, 30))
      settle(env)
      env.agent:stop()
      local text = assert(sim.read_file(env.journal .. ".agent"))
      local entries = assert(agent.parse_ledger(text))
      assert.equal("ro1:r1:1", entries[#entries].id)
      assert.equal("upgraded", entries[#entries].outcome)
      assert.equal(sim.TO, entries[#entries].arg)
      -- a new agent process on the same journal: the broker redelivers the command
      env.got = {}
      start(env)
      env.send{id = "ro1:r1:1", op = "upgrade", to = sim.TO, rollout = "ro1"}
      assert(wait_until(function() return env.reply("ro1:r1:1") end))
      assert.is_false(env.reply("ro1:r1:1").accepted)
      assert.equal("duplicate", env.reply("ro1:r1:1").reason)
      hwfota.sleep(0.3)
      assert.equal(1, env.sim:count("AT^FWUP"))
    end)
  end)

  it("resumes a flow command the ledger says was running when the journal says an update is under way", function()
    local env = setup()
    drive(env, function()
      start(env)
      env.send{id = "d1", op = "download"}
      assert(wait_until(function() return env.final("d1") end, 30))
      settle(env)
      assert.equal("downloaded", env.final("d1").result.outcome)
      assert.is_truthy(sim.read_file(env.journal))      -- the image's journal is kept
      env.agent:stop()
      -- the agent died while running u9 (recorded before the run started)
      local entries = assert(agent.parse_ledger(assert(sim.read_file(env.journal .. ".agent"))))
      entries[#entries + 1] = {id = "u9", op = "upgrade", outcome = "running", arg = sim.TO, rollout = "ro9"}
      assert(hwfota.core.write_file_atomic(env.journal .. ".agent", agent.format_ledger(entries)))
      env.got = {}
      start(env)
      assert(wait_until(function() return env.final("u9") end, 30), "u9 was not resumed")
      local f = env.final("u9")
      assert.equal("done", f.phase)
      assert.equal("upgraded", f.result.outcome)
      assert.equal("ro9", f.rollout)
      assert.equal(1, env.sim:count("AT^FOTADL=1"))   -- the verified image was not fetched again
      assert.equal(1, env.sim:count("AT^FWUP"))
      settle(env)
      local after = assert(agent.parse_ledger(assert(sim.read_file(env.journal .. ".agent"))))
      assert.equal("u9", after[#after].id)
      assert.equal("upgraded", after[#after].outcome)
      -- and once done it is a duplicate like any other id
      env.send{id = "u9", op = "upgrade", to = sim.TO}
      assert(wait_until(function() return env.reply("u9") end))
      assert.equal("duplicate", env.reply("u9").reason)
    end)
  end)

  it("does not resume a command the ledger says was running when no update is under way", function()
    local env = setup()
    drive(env, function()
      local text = agent.format_ledger{{id = "u8", op = "upgrade", outcome = "running"}}
      assert(hwfota.core.write_file_atomic(env.journal .. ".agent", text))
      start(env)
      hwfota.sleep(0.5)
      assert.is_false(env.agent:busy())
      assert.equal(0, env.sim:count("AT^FOTADET"))
      local e = assert(agent.parse_ledger(assert(sim.read_file(env.journal .. ".agent")) ))
      assert.equal("u8", e[1].id)
      env.send{id = "u8", op = "upgrade"}
      assert(wait_until(function() return env.reply("u8") end))
      assert.equal("duplicate", env.reply("u8").reason)
    end)
  end)

  it("refuses a ledger path that is not a regular file, ignores a corrupt ledger, refuses commands it cannot record", function()
    local dir = sim.tmpdir()
    local broker = membus.new{clock = clock}
    local function new(journal, logs)
      return agent.new{bus = broker:client{client_id = "x"}, router = "r1", port = "/dev/null",
                       options = {journal = journal},
                       log = function(l, m) if logs then logs[#logs + 1] = l .. ": " .. m end end}
    end
    os.execute("ln -s /etc/passwd " .. sim.quote(dir .. "/j.agent"))
    local a, msg, code = new(dir .. "/j")
    assert.is_nil(a)
    assert.equal("EJOURNAL", code)
    assert.matches("j.agent", msg)
    local f = assert(io.open(dir .. "/k.agent", "w"))
    f:write("hwfota-agent-ledger 1\nnot a ledger line\n")
    f:close()
    local logs = {}
    a = assert(new(dir .. "/k", logs))
    assert.matches("ignoring the command ledger", logs[1])
    assert.is_nil(next(a.seen))
    -- a ledger whose directory went away cannot be written: refused, not run
    os.execute("mkdir " .. sim.quote(dir .. "/gone"))
    local replies = {}
    local bus = {publish = function(_, topic, payload) replies[#replies + 1] = proto.decode(payload) return true end,
                 connected = function() return true end}
    local b = assert(agent.new{bus = bus, router = "r1", port = "/dev/null",
                               options = {journal = dir .. "/gone/j"}, log = function() end})
    os.execute("rmdir " .. sim.quote(dir .. "/gone"))
    b:command{id = "c1", op = "check"}
    assert.is_false(b:busy())
    assert.is_false(replies[1].accepted)
    assert.matches("cannot record the command", replies[1].reason)
    os.execute("rm -rf " .. sim.quote(dir))
  end)

  it("reads its ledger strictly: a malformed ledger is refused whole", function()
    local good = agent.format_ledger{{id = "a:b:1", op = "upgrade", outcome = "upgraded", arg = "1.2"},
                                     {id = "x", op = "check", outcome = "refused"}}
    local e = assert(agent.parse_ledger(good))
    assert.equal(2, #e)
    assert.equal("1.2", e[1].arg)
    assert.is_nil(e[2].arg)
    local bad = {
      "", "hwfota-agent-ledger 2\n", good:sub(1, -2),                    -- header, no final LF
      good .. "a b c d e\n",                                             -- unknown op
      good .. "a/b check done - -\n",                                    -- id charset
      good .. "a check DONE - -\n",                                      -- outcome charset
      good .. "a check done - - extra\n",                                -- extra field
      good .. "a check done x;y -\n",                                    -- arg charset
      good .. ("a check done - -\n"):rep(64),                            -- more than 64
      good .. string.rep("x", 20000) .. "\n",                            -- size
      good .. "a\0 check done - -\n",
    }
    for i, t in ipairs(bad) do
      local ok, msg = agent.parse_ledger(t)
      assert.is_nil(ok, "bad ledger " .. i .. " accepted")
      assert.is_string(msg)
    end
    -- the ledger keeps the last 64
    local many = {}
    for i = 1, 70 do many[i] = {id = "c" .. i, op = "check", outcome = "done"} end
    local kept = assert(agent.parse_ledger(agent.format_ledger(many)))
    assert.equal(64, #kept)
    assert.equal("c7", kept[1].id)
  end)

  it("drops bad messages without raising and without a reply, and goes on working", function()
    local env = setup()
    drive(env, function()
      start(env)
      local bad = {
        "not json", "[]", '{"v":2,"type":"cmd","id":"b1","op":"check"}',
        '{"v":1,"type":"cmd","id":"b2","op":"reboot"}',
        '{"v":1,"type":"cmd","id":"b 3","op":"check"}',
        '{"v":1,"type":"status","router":"r1","phase":"idle","time":1}',
        '{"v":1,"type":"cmd","id":"b4","op":"upgrade","to":"1;AT^FWUP"}',
        '{"v":1,"type":"cmd","id":"b5","op":"check","pad":"' .. string.rep("x", 9000) .. '"}',
        "", "\0\255",
      }
      for _, p in ipairs(bad) do assert(env.ctl:publish("hwfota/r1/cmd", p)) end
      assert(env.ctl:publish("hwfota/fleet/cmd", "{"))
      hwfota.sleep(0.3)
      assert.equal(0, #env.of("reply"))
      assert.is_false(env.agent:busy())
      env.send{id = "ok1", op = "report"}
      assert(wait_until(function() return env.reply("ok1") end))
      assert.is_true(env.reply("ok1").accepted)
      local dropped = 0
      for _, l in ipairs(env.logs) do if l:find("dropped", 1, true) then dropped = dropped + 1 end end
      assert.equal(#bad + 1, dropped)
    end)
  end)

  it("acts on a fleet command only when every selector matches", function()
    local env = setup()
    drive(env, function()
      start(env)
      local inv = env.of("inventory")[1]
      env.send({id = "f1", op = "report", select = {routers = {"r2", "r3"}}}, "hwfota/fleet/cmd")
      env.send({id = "f2", op = "report", select = {model = "MU609"}}, "hwfota/fleet/cmd")
      env.send({id = "f3", op = "report", select = {routers = {"r1"}, country = "FR"}}, "hwfota/fleet/cmd")
      env.send({id = "f4", op = "report", select = {firmware = "1.0"}}, "hwfota/fleet/cmd")
      env.send({id = "f5", op = "report", select = {routers = {"r2", "r1"}, model = inv.model,
                                                    firmware = inv.firmware, country = "DE",
                                                    site = "s1"}}, "hwfota/fleet/cmd")
      assert(wait_until(function() return env.reply("f5") end))
      hwfota.sleep(0.2)
      for _, id in ipairs{"f1", "f2", "f3", "f4"} do assert.is_nil(env.reply(id), id) end
      assert.is_true(env.reply("f5").accepted)
      -- a command on another router's topic is not for this agent
      env.send({id = "o1", op = "report"}, "hwfota/r2/cmd")
      hwfota.sleep(0.2)
      assert.is_nil(env.reply("o1"))
    end)
  end)

  it("runs only named policies of its directory: a name cannot leave it", function()
    local pdir = sim.tmpdir()
    local f = assert(io.open(pdir .. "/look.lua", "w"))
    f:write('return {on_new_version = function() return "reject" end}\n')
    f:close()
    local outside = assert(io.open(pdir .. "/../hwfota-agent-evil.lua", "w"))
    outside:write('error("the outside policy ran")\n')
    outside:close()
    local env = setup{policies = pdir .. "/"}
    drive(env, function()
      start(env)
      env.send{id = "p1", op = "policy", policy = ".."}
      env.send{id = "p2", op = "policy", policy = "..hwfota-agent-evil"}
      env.send{id = "p3", op = "policy", policy = "look.lua"}
      assert(wait_until(function() return env.reply("p3") end))
      for _, id in ipairs{"p1", "p2", "p3"} do
        assert.is_false(env.reply(id).accepted, id)
        assert.matches("bad policy name", env.reply(id).reason)
      end
      -- a path in the message never even decodes
      assert(env.ctl:publish("hwfota/r1/cmd",
        '{"v":1,"type":"cmd","id":"p4","op":"policy","policy":"../hwfota-agent-evil"}'))
      hwfota.sleep(0.2)
      assert.is_nil(env.reply("p4"))
      assert.equal(0, env.sim:count("AT^FOTADET"))
      env.send{id = "p5", op = "policy", policy = "look"}
      assert(wait_until(function() return env.final("p5") end, 30))
      assert.is_true(env.reply("p5").accepted)
      assert.equal("rejected", env.final("p5").result.outcome)
      assert.equal(1, env.sim:count("AT^FOTADET"))
    end)
    os.remove(pdir .. "/../hwfota-agent-evil.lua")
    os.execute("rm -rf " .. sim.quote(pdir))
  end)

  it("refuses ops it is not allowed, and a policy without a policies directory", function()
    local env = setup()
    drive(env, function()
      start(env, {allow = {"check", "report", "policy"}})
      env.send{id = "d1", op = "upgrade"}
      env.send{id = "d2", op = "policy", policy = "look"}
      assert(wait_until(function() return env.reply("d2") end))
      assert.equal("op not allowed", env.reply("d1").reason)
      assert.equal("no policies directory configured", env.reply("d2").reason)
      assert.equal(0, env.sim:count("AT^FOTADET"))
    end)
  end)

  it("goes on with the run while the broker is away and publishes the final status when it is back", function()
    local env = setup()
    drive(env, function()
      start(env)
      env.send{id = "u1", op = "upgrade", to = sim.TO}
      assert(wait_until(function()
        local s = env.last_status()
        return s and s.cmd == "u1" and s.phase ~= "busy"
      end), "the upgrade did not start")
      env.broker:stop()
      local seen = #env.got
      -- the run finishes without the broker
      assert(env.sim:await({dir = "rx", line = "AT^FWUP"}, 30), "AT^FWUP never sent")
      assert(wait_until(function() return not env.agent:busy() end, 30))
      assert.equal(seen, #env.got)
      assert.is_nil(env.final("u1"))
      env.broker:start()
      assert(wait_until(function() return env.final("u1") end, 10), "no final status after the broker came back")
      local f = env.final("u1")
      assert.is_true(f.result.ok)
      assert.equal("upgraded", f.result.outcome)
      assert.equal(1, env.sim:count("AT^FWUP"))
      -- and it is retained: a controller that connects now reads it
      local late = env.broker:client{client_id = "late"}
      local got
      late:on_message(function(topic, payload, retained)
        if topic == "hwfota/r1/status" then got = {proto.decode(payload), retained} end
      end)
      late:subscribe("hwfota/r1/status")
      assert(wait_until(function() return got end))
      assert.is_true(got[2])
      assert.equal("u1", got[1].cmd)
      assert.equal("done", got[1].phase)
      late:close()
    end)
  end)

  it("cancels the running flow on a cancel command", function()
    local env = setup{sim_args = {"--rate", "2000"}}
    drive(env, function()
      start(env)
      env.send{id = "d1", op = "download"}
      assert(wait_until(function()
        local s = env.last_status()
        return s and s.cmd == "d1" and s.phase == "downloading"
      end), "the download did not start")
      env.send{id = "x1", op = "cancel"}
      assert(wait_until(function() return env.final("d1") end, 30))
      assert.is_true(env.reply("x1").accepted)
      local f = env.final("d1")
      assert.is_false(f.result.ok)
      assert.equal("cancelled", f.result.outcome)
      settle(env)
      env.send{id = "x2", op = "cancel"}
      assert(wait_until(function() return env.reply("x2") end))
      assert.equal("idle", env.reply("x2").reason)
    end)
  end)
  it("publishes download progress at most every PROGRESS_EVERY seconds", function()
    local env = setup{sim_args = {"--rate", "1000"}}
    local every = agent.PROGRESS_EVERY
    agent.PROGRESS_EVERY = 0.4     -- 5 s in the field; the simulated download takes ~2.4 s
    local ok, err = pcall(drive, env, function()
      start(env)
      env.send{id = "d1", op = "download"}
      assert(wait_until(function() return env.final("d1") end, 30))
      local prev, n
      n = 0
      for _, g in ipairs(env.got) do
        local m = g.msg
        if g.topic == "hwfota/r1/status" and m.cmd == "d1" and m.phase == "downloading" and m.progress then
          if prev and prev.msg.phase == "downloading" then
            assert.is_true(g.at - prev.at >= 0.4 - 0.05, ("two progress statuses %.3f s apart"):format(g.at - prev.at))
          end
          n = n + 1
        end
        if g.topic == "hwfota/r1/status" then prev = g end
      end
      assert.is_true(n >= 2, "progress was published " .. n .. " times")
      assert.is_true(n <= 10)
    end)
    agent.PROGRESS_EVERY = every
    assert(ok, err)
  end)

  it("hwfota agent: usage errors exit 2 with one message, --help exits 0", function()
    local cli = require "hwfota.cli"
    local function run(args)
      local out, errs = {}, {}
      local rc = cli.main(args, {stdout = function(s) out[#out + 1] = s end,
                                 stderr = function(s) errs[#errs + 1] = s end})
      return rc, table.concat(out), table.concat(errs)
    end
    local rc, out = run{"agent", "--help"}
    assert.equal(0, rc)
    assert.matches("usage: hwfota agent", out)
    assert.matches("Exit codes", out)
    local base = {"agent", "--broker", "127.0.0.1:1883", "--journal", "/tmp/j", "--port", "/dev/x",
                  "--router-id", "r1"}
    local function with(extra, drop)
      local a = {}
      for i, v in ipairs(base) do if not (drop and (v == drop or base[i - 1] == drop)) then a[#a + 1] = v end end
      for _, v in ipairs(extra) do a[#a + 1] = v end
      return a
    end
    for _, case in ipairs{
      {with({}, "--broker"), "needs %-%-broker"},
      {with({}, "--journal"), "needs %-%-journal"},
      {with({}, "--port"), "needs %-%-port"},
      {with({"--broker", "nohost"}), "HOST:PORT"},
      {with({"--broker", "h:70000"}), "HOST:PORT"},
      {with({"--router-id", "a/b"}), "router id"},
      {with({"--router-id", "+"}), "router id"},
      {with({"--password", "x"}), "unknown option %-%-password"},
      {with({"--password-file", "/tmp/p"}, "--username"), "needs %-%-username"},
      {with({"--certfile", "/tmp/c"}), "go together"},
      {with({"--poll", "nan"}), "%-%-poll"},
      {with({"--apn", "a;b"}), "%-%-apn"},
      {with({"extra"}), "no argument"},
      {with({"--site"}), "needs a value"},
    } do
      local code, _, err = run(case[1])
      assert.equal(2, code, table.concat(case[1], " "))
      assert.matches(case[2], err)
    end
  end)

  it("hwfota agent runs until SIGTERM, then says online=false and exits 0", function()
    local env = setup()
    local acli = require "hwfota.fleet.agent_cli"
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("n")
    f:close()
    local bus = env.broker:client{client_id = "agent-r9"}
    -- the signal comes once the agent is up; the command's own loop serves it. A
    -- real broker's socket keeps that loop going; the in-memory one has none, so a
    -- timer stands in for it until the agent closed its bus
    hwfota.timer(1, function() os.execute("kill -TERM " .. pid) end)
    local function keep() if not bus.dead then hwfota.timer(0.05, keep) end end
    keep()
    local rc = acli.main({"--broker", "127.0.0.1:1", "--router-id", "r9", "--journal",
                          env.journal, "--port", env.sim.path}, {bus = bus, stderr = function() end})
    local online, inv = env.of("online", "r9"), env.of("inventory", "r9")
    env.stop()
    hwfota.loop()
    assert.equal(0, rc)
    assert.is_true(#online >= 2, "online messages: " .. #online)
    assert.is_true(online[1].online)
    assert.is_false(online[#online].online)
    assert.equal(1, #inv)
  end)
end)
