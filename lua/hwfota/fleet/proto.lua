--- The fleet protocol (issue 16's contract): topic names and the versioned JSON messages
-- that agents (`hwfota agent`) and the controller (`hwfota fleet`) exchange over a bus.
--
-- Topics, under `hwfota/`:
--
--   `hwfota/<rid>/inventory` (retained, agent→), `hwfota/<rid>/status` (retained, agent→),
--   `hwfota/<rid>/online` (retained, agent→; the last will says `online=false`),
--   `hwfota/<rid>/reply` (agent→), `hwfota/<rid>/cmd` (→agent), `hwfota/fleet/cmd`
--   (→all agents, with a selector), `hwfota/fleet/rollout/<rollout-id>` (retained,
--   controller→: a rollout's state).
--
-- Every message is a JSON object with `"v": 1` and a `"type"`. `decode` rejects payloads
-- over `MAX_PAYLOAD` bytes, other versions, unknown types, missing required fields and
-- fields of the wrong type or range; unknown extra fields are ignored (a later v1 may add
-- some). Strings that an agent may put into an AT command or compare with a firmware
-- version (`to`, `policy`) are restricted to `[A-Za-z0-9._+-]`, at most 63 bytes, and also
-- pass `hwfota.check_at_param` when the C core is loaded.
--
-- Inside Lua a message is a plain table; JSON `null` is an absent field. Run-time failures
-- (a bad payload, a bad value) return `nil, message, code`; a wrong argument type raises.
-- @module hwfota.fleet.proto
-- @usage
-- local proto = require "hwfota.fleet.proto"
-- local payload = assert(proto.encode(proto.build("online", {online = true, time = os.time()})))
-- bus:publish(proto.topic("r1", "online"), payload, {retain = true, qos = 1})
-- local msg, err, code = proto.decode(payload, "online")
local json = require "hwfota.json"

local fmt = string.format
local M = {}

--- The protocol version every message carries in `"v"`.
M.VERSION = 1

--- The largest payload `decode` accepts, in bytes.
M.MAX_PAYLOAD = 8192

--- The topic prefix.
M.ROOT = "hwfota"

--- The fleet-wide command topic.
M.FLEET_CMD = "hwfota/fleet/cmd"

--- The kinds of per-router topics (`hwfota/<rid>/<kind>`).
M.ROUTER_TOPICS = {inventory = true, status = true, online = true, reply = true, cmd = true}

--- Status phases.
M.PHASES = {idle = true, busy = true, checking = true, downloading = true,
            upgrading = true, done = true, failed = true}

--- Command operations.
M.OPS = {check = true, download = true, upgrade = true, policy = true, cancel = true,
         report = true}

local core_check
do
  local ok, core = pcall(require, "hwfota.core")
  if ok and type(core) == "table" then core_check = core.check_at_param end
end

--- Is `s` a valid router id (`[A-Za-z0-9_-]{1,64}`, and not `fleet`)?
-- `fleet` is reserved: router `fleet`'s command topic would be the fleet topic
-- `hwfota/fleet/cmd`, and the broker's ACL pattern `hwfota/%u/#` would let a router
-- user of that name command every router.
-- @param s any value
-- @treturn boolean
function M.valid_router_id(s)
  return type(s) == "string" and #s >= 1 and #s <= 64 and s ~= "fleet" and
         s:find("^[%w_-]+$") ~= nil
end

--- Is `s` a valid command id (`[A-Za-z0-9_.:-]{1,64}`)?
-- @param s any value
-- @treturn boolean
function M.valid_cmd_id(s)
  return type(s) == "string" and #s >= 1 and #s <= 64 and s:find("^[%w_.:-]+$") ~= nil
end

--- Is `s` a valid rollout id (`[A-Za-z0-9_.-]{1,32}`: no `:`, so that the command ids
-- `<rollout>:<rid>:<n>` split back unambiguously)?
-- @param s any value
-- @treturn boolean
function M.valid_rollout_id(s)
  return type(s) == "string" and #s >= 1 and #s <= 32 and s:find("^[%w_.-]+$") ~= nil
end

-- A value that may go into an AT command or be compared with a firmware version.
local function valid_atsafe(s)
  if type(s) ~= "string" or #s < 1 or #s > 63 or not s:find("^[%w._+-]+$") then
    return false
  end
  if core_check and not core_check("value", s) then return false end
  return true
end

--- Is `s` acceptable as a firmware version or policy name in a command
-- (`[A-Za-z0-9._+-]{1,63}`, and `hwfota.check_at_param` when the core is loaded)?
-- @param s any value
-- @treturn boolean
function M.valid_version(s) return valid_atsafe(s) end

local function check_rid_arg(fn, rid)
  if type(rid) ~= "string" then
    error(fmt("hwfota.fleet.proto.%s: router id must be a string, got %s", fn, type(rid)), 3)
  end
  if not M.valid_router_id(rid) then
    return nil, fmt("invalid router id %q: 1..64 of A-Z a-z 0-9 _ -, not \"fleet\"", rid), "EINVAL"
  end
  return true
end

--- The topic `hwfota/<rid>/<kind>`.
-- @tparam string rid router id
-- @tparam string kind one of `inventory`, `status`, `online`, `reply`, `cmd`
-- @treturn string topic, or nil, message, `"EINVAL"` for an invalid router id
function M.topic(rid, kind)
  if type(kind) ~= "string" or not M.ROUTER_TOPICS[kind] then
    error(fmt("hwfota.fleet.proto.topic: kind must be inventory, status, online, reply "
              .. "or cmd, got %s", tostring(kind)), 2)
  end
  local ok, msg, code = check_rid_arg("topic", rid)
  if not ok then return nil, msg, code end
  return M.ROOT .. "/" .. rid .. "/" .. kind
end

--- The retained state topic of a rollout, `hwfota/fleet/rollout/<id>`.
-- @tparam string id rollout id
-- @treturn string topic, or nil, message, `"EINVAL"`
function M.rollout_topic(id)
  if type(id) ~= "string" then
    error(fmt("hwfota.fleet.proto.rollout_topic: id must be a string, got %s", type(id)), 2)
  end
  if not M.valid_rollout_id(id) then
    return nil, fmt("invalid rollout id %q: 1..32 of A-Z a-z 0-9 _ . -", id), "EINVAL"
  end
  return M.ROOT .. "/fleet/rollout/" .. id
end

--- Split a topic into what it addresses.
-- @tparam string topic
-- @treturn table `{kind = "inventory"|"status"|"online"|"reply"|"cmd", router = rid}`,
--   `{kind = "fleet_cmd"}` or `{kind = "rollout", rollout = id}`; or nil, message,
--   `"EPROTO"` for a topic outside the layout
function M.parse_topic(topic)
  if type(topic) ~= "string" then
    error(fmt("hwfota.fleet.proto.parse_topic: topic must be a string, got %s",
              type(topic)), 2)
  end
  if topic == M.FLEET_CMD then return {kind = "fleet_cmd"} end
  local id = topic:match("^hwfota/fleet/rollout/([^/]+)$")
  if id then
    if M.valid_rollout_id(id) then return {kind = "rollout", rollout = id} end
    return nil, fmt("topic %q: invalid rollout id", topic), "EPROTO"
  end
  local rid, kind = topic:match("^hwfota/([^/]+)/([^/]+)$")
  if rid and M.ROUTER_TOPICS[kind] and M.valid_router_id(rid) then
    return {kind = kind, router = rid}
  end
  return nil, fmt("topic %q is not a fleet topic", topic), "EPROTO"
end

--- Split a rollout command id `<rollout>:<rid>:<n>`.
-- @tparam string id
-- @treturn[1] string rollout id
-- @treturn[1] string router id
-- @treturn[1] integer n
-- @treturn[2] nil when `id` is not a rollout command id
function M.parse_rollout_cmd_id(id)
  if type(id) ~= "string" then return nil end
  local ro, rid, n = id:match("^([^:]+):([^:]+):(%d+)$")
  if ro and M.valid_rollout_id(ro) and M.valid_router_id(rid) then
    return ro, rid, math.tointeger(tonumber(n))
  end
  return nil
end

-- Field checkers: return true or a description of what was expected.
local function is_int(x) return math.type(x) == "integer" or
  (type(x) == "number" and x == math.floor(x) and x > -2^53 and x < 2^53) end

local function str(maxlen)
  return function(x)
    if type(x) ~= "string" then return "a string" end
    if #x > maxlen then return fmt("a string of at most %d bytes", maxlen) end
    if x:find("[%z\1-\31\127]") then return "a string without control characters" end
    return true
  end
end
local function pred(desc, f) return function(x) return f(x) or desc end end
local number = pred("a number", function(x) return type(x) == "number" and x == x end)
local boolean = pred("a boolean", function(x) return type(x) == "boolean" end)
local rid = pred("a router id (1..64 of A-Z a-z 0-9 _ -, not \"fleet\")", M.valid_router_id)
local cmdid = pred("a command id (1..64 of A-Z a-z 0-9 _ . : -)", M.valid_cmd_id)
local rolloutid = pred("a rollout id (1..32 of A-Z a-z 0-9 _ . -)", M.valid_rollout_id)
local atsafe = pred("1..63 of A-Z a-z 0-9 . _ + -", valid_atsafe)
local function enum(set, desc)
  return pred(desc, function(x) return type(x) == "string" and set[x] == true end)
end
local time = pred("an epoch time (a number >= 0)",
                  function(x) return type(x) == "number" and x >= 0 and x < 2^40 end)

-- A schema is a list of {name, check, required}; nullable = not required.
local function object(schema)
  return function(x, path)
    if type(x) ~= "table" then return "an object" end
    for _, f in ipairs(schema) do
      local v = x[f[1]]
      if v == json.null then v = nil end
      if v == nil then
        if f[3] then return fmt("%s.%s: required", path, f[1]), true end
      else
        local r, full = f[2](v, path .. "." .. f[1])
        if r ~= true then
          if full then return r, true end
          return fmt("%s.%s: must be %s", path, f[1], r), true
        end
      end
    end
    return true
  end
end

local function array_of(check, maxn, desc)
  return function(x)
    if type(x) ~= "table" then return desc end
    local n = #x
    if n > maxn then return fmt("%s (at most %d)", desc, maxn) end
    for k in pairs(x) do
      if math.type(k) ~= "integer" or k < 1 or k > n then return desc end
    end
    for i = 1, n do if check(x[i]) ~= true then return desc end end
    return true
  end
end

local REQ, OPT = true, false
local s64, s128, s256, s1024 = str(64), str(128), str(256), str(1024)

local RESULT = object{
  {"ok", boolean, REQ}, {"outcome", s64, REQ}, {"code", s64, OPT},
  {"message", s1024, OPT}, {"from", s128, OPT}, {"to", s128, OPT},
}

local SELECT = object{
  {"routers", array_of(rid, 1000, "a list of router ids"), OPT},
  {"model", s64, OPT}, {"firmware", s128, OPT}, {"country", s64, OPT}, {"site", s128, OPT},
}

local progress = pred("an integer 0..100",
                      function(x) return is_int(x) and x >= 0 and x <= 100 end)
local fota_state = pred("an integer 0..99",
                        function(x) return is_int(x) and x >= 0 and x <= 99 end)

-- The router's offset from UTC in seconds (an addition to the contract, optional: the
-- controller's windows use the router's local time when it is given, else UTC).
local utc_offset = pred("an integer number of seconds in [-14 h, +14 h]",
                        function(x) return is_int(x) and x >= -50400 and x <= 50400 end)

local CMD_FIELDS = {
  {"id", cmdid, REQ}, {"op", enum(M.OPS, "one of check, download, upgrade, policy, "
                                  .. "cancel, report"), REQ},
  {"to", atsafe, OPT}, {"policy", atsafe, OPT}, {"rollout", rolloutid, OPT},
}

local FLEET_CMD_FIELDS = {table.unpack(CMD_FIELDS)}
FLEET_CMD_FIELDS[#FLEET_CMD_FIELDS + 1] = {"select", SELECT, OPT}

-- Per type: the field schema (after "v" and "type") and the fields written as null
-- when absent (so that other consumers see every field of the contract).
local TYPES = {
  inventory = {
    {"router", rid, REQ}, {"model", s64, REQ}, {"imei", s64, REQ}, {"firmware", s128, REQ},
    {"fota_state", fota_state, REQ}, {"site", s128, OPT}, {"country", s64, OPT},
    {"location", s256, OPT}, {"agent", s64, REQ}, {"time", time, REQ},
    {"utc_offset", utc_offset, OPT},
  },
  status = {
    {"router", rid, REQ}, {"cmd", cmdid, OPT}, {"rollout", rolloutid, OPT},
    {"phase", enum(M.PHASES, "one of idle, busy, checking, downloading, upgrading, done, "
                   .. "failed"), REQ},
    {"progress", progress, OPT}, {"result", RESULT, OPT}, {"time", time, REQ},
  },
  online = {{"online", boolean, REQ}, {"time", time, REQ}},
  reply = {{"id", cmdid, REQ}, {"accepted", boolean, REQ}, {"reason", s256, OPT}},
  cmd = CMD_FIELDS,
  fleet_cmd = FLEET_CMD_FIELDS,
  rollout = {{"id", rolloutid, REQ}},   -- the rest is the controller's own
}

-- The JSON "type" of each kind (the fleet command is a "cmd" with a selector).
local WIRE_TYPE = {inventory = "inventory", status = "status", online = "online",
                   reply = "reply", cmd = "cmd", fleet_cmd = "cmd", rollout = "rollout"}

--- The message kinds: `inventory`, `status`, `online`, `reply`, `cmd`, `fleet_cmd`
-- (a `"cmd"` with `select`, for `hwfota/fleet/cmd`), `rollout`.
M.KINDS = {}
for k in pairs(TYPES) do M.KINDS[k] = true end

local function check_kind(fn, kind)
  if type(kind) ~= "string" or not TYPES[kind] then
    error(fmt("hwfota.fleet.proto.%s: unknown message kind %s", fn, tostring(kind)), 3)
  end
end

--- Check a message table against its kind's schema.
-- @tparam table msg
-- @tparam[opt] string kind expected kind; default from `msg.type` (`"cmd"` with a
--   `select` field is checked as `fleet_cmd`)
-- @return true, or nil, message, `"EPROTO"`
function M.validate(msg, kind)
  if type(msg) ~= "table" then
    error(fmt("hwfota.fleet.proto.validate: msg must be a table, got %s", type(msg)), 2)
  end
  if kind ~= nil then check_kind("validate", kind) end
  if msg.v ~= M.VERSION then
    return nil, fmt("unsupported message version %s (this hwfota speaks %d)",
                    tostring(msg.v), M.VERSION), "EPROTO"
  end
  local t = msg.type
  if type(t) ~= "string" then return nil, "message without a \"type\"", "EPROTO" end
  if kind == nil then
    kind = t
    if t == "cmd" and msg.select ~= nil and msg.select ~= json.null then kind = "fleet_cmd" end
    if t == "fleet_cmd" or not TYPES[kind] then
      return nil, fmt("unknown message type %q", t), "EPROTO"
    end
  elseif WIRE_TYPE[kind] ~= t then
    return nil, fmt("expected a %q message, got %q", WIRE_TYPE[kind], t), "EPROTO"
  end
  local r = object(TYPES[kind])(msg, t)
  if r ~= true then return nil, r, "EPROTO" end
  return true
end

--- Build a message of `kind` from `fields`: adds `v` and `type`, then validates.
-- @tparam string kind see `KINDS`
-- @tparam table fields the message's fields (a copy is made)
-- @treturn table the message, or nil, message, `"EINVAL"` for a bad field
function M.build(kind, fields)
  check_kind("build", kind)
  if type(fields) ~= "table" then
    error(fmt("hwfota.fleet.proto.build: fields must be a table, got %s", type(fields)), 2)
  end
  local m = {}
  for k, v in pairs(fields) do m[k] = v end
  m.v, m.type = M.VERSION, WIRE_TYPE[kind]
  local ok, msg = M.validate(m, kind)
  if not ok then return nil, msg, "EINVAL" end
  return m
end

-- Copy with every absent optional field of the schema as json.null.
local function with_nulls(schema, t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  for _, f in ipairs(schema) do
    if out[f[1]] == nil then out[f[1]] = json.null end
  end
  return out
end

local NULLED = {
  status = true, inventory = true, reply = true, cmd = true, fleet_cmd = true,
}
local RESULT_FIELDS = {{"code"}, {"message"}, {"from"}, {"to"}}
local SELECT_FIELDS = {{"routers"}, {"model"}, {"firmware"}, {"country"}, {"site"}}

--- Validate and encode a message as JSON text (absent optional fields of the contract are
-- written as `null`).
-- @tparam table msg a message (e.g. from `build`)
-- @tparam[opt] string kind expected kind
-- @treturn string payload, or nil, message, code (`"EINVAL"`, `"EMSGSIZE"`, `"ENOJSON"`)
function M.encode(msg, kind)
  if type(msg) ~= "table" then
    error(fmt("hwfota.fleet.proto.encode: msg must be a table, got %s", type(msg)), 2)
  end
  if kind ~= nil then check_kind("encode", kind) end
  local ok, err = M.validate(msg, kind)
  if not ok then return nil, err, "EINVAL" end
  kind = kind or (msg.type == "cmd" and msg.select ~= nil and "fleet_cmd") or msg.type
  local out = msg
  if NULLED[kind] then
    out = with_nulls(TYPES[kind], msg)
    if type(msg.result) == "table" then out.result = with_nulls(RESULT_FIELDS, msg.result) end
    if type(msg.select) == "table" then out.select = with_nulls(SELECT_FIELDS, msg.select) end
  end
  local s, e, code = json.encode(out)
  if not s then return nil, e, code end
  if #s > M.MAX_PAYLOAD then
    return nil, fmt("%s message is %d bytes, over the %d-byte limit", msg.type, #s,
                    M.MAX_PAYLOAD), "EMSGSIZE"
  end
  return s
end

--- Decode and validate a payload.
-- @tparam string payload
-- @tparam[opt] string kind the expected kind (else any kind, from `"type"`)
-- @treturn table the message (JSON null = absent field), or nil, message, code
--   (`"EMSGSIZE"`: over `MAX_PAYLOAD`; `"EPROTO"`: not JSON, not an object, wrong version,
--   unknown type or a bad field; `"ENOJSON"`: no JSON library)
function M.decode(payload, kind)
  if type(payload) ~= "string" then
    error(fmt("hwfota.fleet.proto.decode: payload must be a string, got %s",
              type(payload)), 2)
  end
  if kind ~= nil then check_kind("decode", kind) end
  if #payload > M.MAX_PAYLOAD then
    return nil, fmt("payload of %d bytes is over the %d-byte limit", #payload,
                    M.MAX_PAYLOAD), "EMSGSIZE"
  end
  local m, err, code = json.decode(payload)
  if m == nil and err then return nil, err, code end
  if type(m) ~= "table" then return nil, "payload is not a JSON object", "EPROTO" end
  local ok, verr = M.validate(m, kind)
  if not ok then return nil, verr, "EPROTO" end
  return m
end

--- Does a fleet command's selector match a router's inventory? Every given selector must
-- match; `routers` lists router ids; a missing selector matches everything.
-- @tparam table|nil select the command's `select`
-- @tparam table inv the router's inventory message (or fields with the same names)
-- @treturn boolean
function M.selects(select, inv)
  if type(inv) ~= "table" then
    error(fmt("hwfota.fleet.proto.selects: inv must be a table, got %s", type(inv)), 2)
  end
  if select == nil or select == json.null then return true end
  if type(select) ~= "table" then
    error(fmt("hwfota.fleet.proto.selects: select must be a table, got %s",
              type(select)), 2)
  end
  if type(select.routers) == "table" then
    local found = false
    for _, r in ipairs(select.routers) do
      if r == inv.router then found = true break end
    end
    if not found then return false end
  end
  for _, k in ipairs{"model", "firmware", "country", "site"} do
    local want = select[k]
    if type(want) == "string" and inv[k] ~= want then return false end
  end
  return true
end

return M
