-- `hwfota fleet ...` over a real, private Mosquitto (spec/support/broker.lua: password
-- file, the contract's ACL) through hwfota.fleet.mqtt_bus: the CLI's field path. Three
-- scripted agents in this process (the agent itself, hwfota agent, has its own specs);
-- router r2 fails its upgrade.
local hwfota = require "hwfota"
local broker = require "support.broker"
local cli = require "hwfota.cli"
local proto = require "hwfota.fleet.proto"
local json = require "hwfota.json"

local has_mqtt, mqtt = pcall(require, "hwfota.mqtt")
local has_broker, no_broker = broker.available()
local skip = (not has_mqtt and ("hwfota.mqtt is not built: " .. tostring(mqtt):match("^[^\n]*")))
             or (not has_broker and no_broker)
if skip then
  describe("hwfota fleet over mosquitto", function() pending(skip) end)
  return
end
local mqtt_bus = require "hwfota.fleet.mqtt_bus"

local TO = "12.815.01.05.00"

local function enc(kind, f) return assert(proto.encode(assert(proto.build(kind, f)))) end

describe("hwfota fleet over mosquitto", function()
  local b, buses, runs = nil, {}, {}

  setup(function()
    b = assert(broker.start{users = {{name = "controller", password = "c-secret"},
      {name = "r1", password = "p1"}, {name = "r2", password = "p2"}, {name = "r3", password = "p3"}}})
    for i = 1, 3 do
      local rid = "r" .. i
      local fw = "12.815.01.04.00"
      local status = {router = rid, phase = "idle", time = os.time()}
      local bus = assert(mqtt_bus.new{host = b.host, port = b.port, client_id = "agent-" .. rid,
        username = rid, password_file = b:password_file(rid),
        will = {topic = "hwfota/" .. rid .. "/online", retain = true, qos = 1,
                payload = enc("online", {online = false, time = 0})}})
      buses[i] = bus
      bus:on_connect(function()
        bus:publish("hwfota/" .. rid .. "/online", enc("online", {online = true, time = os.time()}),
                    {retain = true, qos = 1})
        bus:publish("hwfota/" .. rid .. "/inventory", enc("inventory", {router = rid,
          model = "MU609", imei = "86722302000000" .. i, firmware = fw, fota_state = 0,
          agent = "spec", time = os.time(), country = "DE", location = "hall " .. i}),
          {retain = true, qos = 1})
        bus:publish("hwfota/" .. rid .. "/status", enc("status", status), {retain = true, qos = 1})
      end)
      bus:on_message(function(_, payload)
        local m = proto.decode(payload, "cmd")
        if not m then return end
        runs[m.id] = (runs[m.id] or 0) + 1
        bus:publish("hwfota/" .. rid .. "/reply", enc("reply", {id = m.id, accepted = true}), {qos = 1})
        hwfota.timer(0.2, function()
          local ok = i ~= 2
          status = {router = rid, cmd = m.id, rollout = m.rollout, phase = ok and "done" or "failed",
                    time = os.time(), result = ok and {ok = true, outcome = "upgraded", from = fw, to = m.to}
                                                or {ok = false, outcome = "failed", code = "EFWUP"}}
          if ok then fw = m.to end
          bus:publish("hwfota/" .. rid .. "/status", enc("status", status), {retain = true, qos = 1})
        end)
      end)
      assert(bus:subscribe("hwfota/" .. rid .. "/cmd", {qos = 1}))
    end
  end)

  teardown(function()
    for _, bus in ipairs(buses) do bus:close() end
    if b then b:cleanup() end
  end)

  local function run(args)
    local out, err = {}, {}
    local full = {"fleet"}
    for _, a in ipairs(args) do full[#full + 1] = a end
    for _, a in ipairs{"--broker", b.host .. ":" .. b.port, "--username", "controller",
                       "--password-file", b:password_file("controller"), "--settle", "1"} do
      full[#full + 1] = a
    end
    local rc = cli.main(full, {stdout = function(s) out[#out + 1] = s end,
                               stderr = function(s) err[#err + 1] = s end})
    return rc, table.concat(out), table.concat(err)
  end

  it("inventory --csv lists the routers from their retained inventories", function()
    local rc, out = run{"inventory", "--csv"}
    assert.equal(0, rc)
    assert.equal("model,imei,firmware,country,location,router\n"
                 .. "MU609,867223020000001,12.815.01.04.00,DE,hall 1,r1\n"
                 .. "MU609,867223020000002,12.815.01.04.00,DE,hall 2,r2\n"
                 .. "MU609,867223020000003,12.815.01.04.00,DE,hall 3,r3\n", out)
  end)

  it("rollout halts on r2's failure, status shows it, resume finishes; nothing ran twice", function()
    local rc, out = run{"rollout", "--to", TO, "--waves", "100%", "--max-failure-rate", "10%",
                        "--id", "mq"}
    assert.equal(1, rc)
    assert.matches("halted: wave 1: 1 of 3 routers failed", out)
    assert.matches("r2%s+wave 1%s+EFWUP", out)
    local rc2, js = run{"status", "--json"}
    assert.equal(0, rc2)
    local doc = assert(json.decode(js))
    assert.equal("halted", doc.rollouts[1].state)
    assert.equal(3, doc.routers.total)
    local rc3, out3 = run{"resume"}
    assert.equal(0, rc3)
    assert.matches("rollout mq: to 12.815.01.05.00, done", out3)
    assert.same({["mq:r1:1"] = 1, ["mq:r2:1"] = 1, ["mq:r3:1"] = 1}, runs)
  end)

  it("a wrong password: the broker refuses, exit 1 and why", function()
    local pw = os.tmpname()
    local f = assert(io.open(pw, "w")); f:write("wrong\n"); f:close()
    local err = {}
    local rc = cli.main({"fleet", "status", "--broker", b.host .. ":" .. b.port,
      "--username", "controller", "--password-file", pw, "--settle", "0"},
      {stdout = function() end, stderr = function(s) err[#err + 1] = s end})
    os.remove(pw)
    err = table.concat(err)
    assert.equal(1, rc)
    assert.matches("no connection within 15 s", err)
    assert.matches("broker connection lost: .*not authori[sz]ed", err:lower())
  end)
end)
