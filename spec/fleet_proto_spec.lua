-- busted specs for hwfota.fleet.proto: the fleet contract's topics and messages (pure Lua).
local proto = require "hwfota.fleet.proto"
local json = require "hwfota.json"

local function inv(over)
  local t = {router = "r1", model = "MU609", imei = "867223020012345",
             firmware = "12.815.01.04.00", fota_state = 10, agent = "0.9", time = 1700000000}
  for k, v in pairs(over or {}) do t[k] = v end
  return t
end

describe("hwfota.json", function()
  it("round-trips objects and decodes null as an absent field", function()
    local s = assert(json.encode({a = json.null, b = {1, 2}, c = "x"}))
    assert.truthy(s:find('"a":null', 1, true))
    local t = assert(json.decode(s))
    assert.is_nil(t.a)
    assert.same({1, 2}, t.b)
    assert.equal("x", t.c)
  end)
  it("rejects text that is not exactly one JSON value", function()
    for _, bad in ipairs{"{", "{} x", "", "nul", "[1, 2"} do
      local v, msg, code = json.decode(bad)
      assert.is_nil(v, bad)
      assert.equal("EPROTO", code, bad)
      assert.matches("not JSON", msg)
    end
  end)
  it("raises on a non-string to decode", function()
    assert.has_error(function() json.decode(42) end,
                     "hwfota.json.decode: expected a string, got number")
  end)
  it("cannot encode a function: nil, message, EINVAL", function()
    local s, msg, code = json.encode({f = print})
    assert.is_nil(s)
    assert.equal("EINVAL", code)
    assert.matches("cannot encode", msg)
  end)
end)

describe("hwfota.fleet.proto ids and topics", function()
  it("validates router ids", function()
    for _, ok in ipairs{"r1", "A-b_9", ("x"):rep(64)} do
      assert.is_true(proto.valid_router_id(ok), ok)
    end
    for _, bad in ipairs{"", ("x"):rep(65), "a/b", "a+", "#", "a b", "r.1", "r:1", "fleet", 5} do
      assert.is_false(proto.valid_router_id(bad), tostring(bad))
    end
  end)
  it("validates command and rollout ids", function()
    assert.is_true(proto.valid_cmd_id("ro1:r1:1"))
    assert.is_true(proto.valid_cmd_id("a.b-c_d"))
    assert.is_false(proto.valid_cmd_id("a/b"))
    assert.is_false(proto.valid_cmd_id(("x"):rep(65)))
    assert.is_false(proto.valid_cmd_id(""))
    assert.is_true(proto.valid_rollout_id("fw-12.815"))
    assert.is_false(proto.valid_rollout_id("a:b"))
    assert.is_false(proto.valid_rollout_id(("x"):rep(33)))
  end)
  it("builds and parses topics", function()
    assert.equal("hwfota/r1/status", proto.topic("r1", "status"))
    local t, msg, code = proto.topic("r/1", "status")
    assert.is_nil(t); assert.equal("EINVAL", code); assert.matches("router id", msg)
    assert.has_error(function() proto.topic("r1", "bogus") end)
    assert.has_error(function() proto.topic(1, "cmd") end)
    assert.same({kind = "cmd", router = "r1"}, proto.parse_topic("hwfota/r1/cmd"))
    assert.same({kind = "fleet_cmd"}, proto.parse_topic("hwfota/fleet/cmd"))
    assert.same({kind = "rollout", rollout = "ro1"},
                proto.parse_topic("hwfota/fleet/rollout/ro1"))
    assert.equal("hwfota/fleet/rollout/ro1", proto.rollout_topic("ro1"))
    for _, bad in ipairs{"hwfota/fleet/status", "hwfota/r1/x", "hwfota/r1/cmd/x",
                         "other/r1/cmd", "hwfota/a b/cmd", "hwfota/fleet/rollout/a:b"} do
      local r, _, c = proto.parse_topic(bad)
      assert.is_nil(r, bad); assert.equal("EPROTO", c)
    end
  end)
  it("splits rollout command ids", function()
    local ro, rid, n = proto.parse_rollout_cmd_id("ro1:r-7:3")
    assert.equal("ro1", ro); assert.equal("r-7", rid); assert.equal(3, n)
    assert.is_nil(proto.parse_rollout_cmd_id("manual-42"))
    assert.is_nil(proto.parse_rollout_cmd_id("a:b:c"))
  end)
end)

describe("hwfota.fleet.proto messages", function()
  it("round-trips every kind through encode and decode", function()
    local cases = {
      inventory = inv{site = "depot", country = "DE"},
      status = {router = "r1", cmd = "ro:r1:1", rollout = "ro", phase = "done",
                progress = 100, time = 5,
                result = {ok = true, outcome = "upgraded", from = "1.0", to = "2.0"}},
      online = {online = false, time = 7},
      reply = {id = "c1", accepted = false, reason = "busy"},
      cmd = {id = "c1", op = "upgrade", to = "12.815.01.05.00", rollout = "ro"},
      fleet_cmd = {id = "c2", op = "report", select = {routers = {"r1", "r2"}, country = "DE"}},
      rollout = {id = "ro", state = "running", waves = {1, 10}},
    }
    for kind, fields in pairs(cases) do
      local m = assert(proto.build(kind, fields))
      local s = assert(proto.encode(m))
      local back = assert(proto.decode(s, kind))
      assert.equal(1, back.v)
      for k, v in pairs(fields) do assert.same(v, back[k], kind .. "." .. k) end
      -- without an expected kind, the type says which
      assert.truthy(proto.decode(s))
    end
  end)
  it("writes absent optional fields as null", function()
    local s = assert(proto.encode(assert(proto.build("status",
      {router = "r1", phase = "idle", time = 1}))))
    for _, f in ipairs{"cmd", "rollout", "progress", "result"} do
      assert.truthy(s:find('"' .. f .. '":null', 1, true), f)
    end
    local s2 = assert(proto.encode(assert(proto.build("status", {router = "r1",
      phase = "failed", time = 1, result = {ok = false, outcome = "failed"}}))))
    assert.truthy(s2:find('"code":null', 1, true))
  end)
  it("decodes a fleet command's selector as a fleet_cmd and checks it", function()
    local s = '{"v":1,"type":"cmd","id":"x","op":"check","select":{"routers":["a/b"]}}'
    local m, msg, code = proto.decode(s)
    assert.is_nil(m); assert.equal("EPROTO", code); assert.matches("routers", msg)
  end)
  it("rejects malformed, wrong-version, unknown-type and oversized payloads", function()
    local cases = {
      {"not json", "not JSON"},
      {"[1,2]", "unsupported message version"},
      {'"x"', "not a JSON object"},
      {'{"v":2,"type":"online","online":true,"time":1}', "unsupported message version 2"},
      {'{"v":"1","type":"online","online":true,"time":1}', "version"},
      {'{"v":1,"type":"hello"}', 'unknown message type "hello"'},
      {'{"v":1,"type":"fleet_cmd","id":"x","op":"check"}', "unknown message type"},
      {'{"v":1,"online":true,"time":1}', "without a \"type\""},
      {'{"v":1,"type":"online","online":"yes","time":1}', "online.online: must be a boolean"},
      {'{"v":1,"type":"online","time":1}', "online.online: required"},
      {'{"v":1,"type":"status","router":"r1","phase":"dancing","time":1}', "phase"},
      {'{"v":1,"type":"status","router":"r1","phase":"busy","progress":101,"time":1}',
       "progress"},
      {'{"v":1,"type":"status","router":"r1","phase":"done","time":1,"result":{"ok":1,'
       .. '"outcome":"x"}}', "status.result.ok: must be a boolean"},
      {'{"v":1,"type":"cmd","id":"a b","op":"check"}', "cmd.id"},
      {'{"v":1,"type":"cmd","id":"a","op":"format"}', "cmd.op"},
      {'{"v":1,"type":"cmd","id":"a","op":"upgrade","to":"1.0\\";AT+CFUN=0"}', "cmd.to"},
      {'{"v":1,"type":"cmd","id":"a","op":"policy","policy":"x\\r\\n"}', "cmd.policy"},
      {'{"v":1,"type":"reply","id":"a","accepted":true,"reason":5}', "reply.reason"},
      {'{"v":1,"type":"inventory","router":"r1"}', "inventory.model: required"},
    }
    for _, c in ipairs(cases) do
      local m, msg, code = proto.decode(c[1])
      assert.is_nil(m, c[1])
      assert.equal("EPROTO", code, c[1])
      assert.truthy(msg:find(c[2], 1, true), ("%s: %s"):format(c[1], msg))
    end
    local big = '{"v":1,"type":"reply","id":"a","accepted":true,"reason":"'
                .. ("x"):rep(proto.MAX_PAYLOAD) .. '"}'
    local m, msg, code = proto.decode(big)
    assert.is_nil(m); assert.equal("EMSGSIZE", code); assert.matches("limit", msg)
  end)
  it("checks the expected kind", function()
    local s = assert(proto.encode(assert(proto.build("online", {online = true, time = 1}))))
    local m, msg, code = proto.decode(s, "status")
    assert.is_nil(m); assert.equal("EPROTO", code)
    assert.equal('expected a "status" message, got "online"', msg)
  end)
  it("build returns nil, message, EINVAL on a bad field and raises on bad arguments", function()
    local m, msg, code = proto.build("inventory", inv{imei = 123})
    assert.is_nil(m); assert.equal("EINVAL", code); assert.matches("inventory.imei", msg)
    assert.has_error(function() proto.build("nope", {}) end)
    assert.has_error(function() proto.build("online", "x") end)
    assert.has_error(function() proto.decode(nil) end)
  end)
  it("encode refuses a message over the size limit", function()
    local routers = {}
    for i = 1, 1000 do routers[i] = ("r%05d-long-router-name"):format(i) end
    local m = assert(proto.build("fleet_cmd", {id = "c", op = "report",
                                               select = {routers = routers}}))
    local s, msg, code = proto.encode(m)
    assert.is_nil(s); assert.equal("EMSGSIZE", code); assert.matches("8192", msg)
  end)
  it("matches selectors against an inventory", function()
    local i = inv{country = "DE", site = "s1"}
    assert.is_true(proto.selects(nil, i))
    assert.is_true(proto.selects({model = "MU609", country = "DE"}, i))
    assert.is_false(proto.selects({model = "MU609", country = "FR"}, i))
    assert.is_true(proto.selects({routers = {"r0", "r1"}}, i))
    assert.is_false(proto.selects({routers = {"r0"}}, i))
    assert.is_false(proto.selects({site = "s2"}, i))
  end)
end)
