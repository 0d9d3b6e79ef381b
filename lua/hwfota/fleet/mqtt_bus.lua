--- hwfota.fleet.mqtt_bus: the fleet Bus (issue 16) over MQTT, on hwfota's own
-- poll loop.
--
-- A Bus is the only way the fleet agent and controller talk (the in-memory
-- `hwfota.fleet.membus` has the same methods). This one rides a broker through
-- the libmosquitto binding `hwfota.mqtt`: the client's socket is watched with
-- `hwfota.watch` (for reading, and for writing only while libmosquitto has
-- something to send) and a `hwfota.timer` calls `loop_misc` every second for the
-- keepalive. No thread, no busy loop: an idle connected bus wakes once a second.
--
-- When the broker goes away (or refuses the connection, or cannot be reached)
-- the bus reconnects by itself after a back-off: the first wait is `backoff.first`
-- seconds (default 1), doubling up to `backoff.max` (default 60), each wait
-- shortened by up to a quarter at random so that a fleet does not come back in
-- one burst; a successful connection resets it. After every (re)connection the
-- subscriptions are sent again before `on_connect` handlers run.
--
-- What survives a broker outage:
--
-- * qos 1 publishes made while offline (before the first connection too) are kept
--   by libmosquitto (in memory, in this process) and sent after the (re)connection;
--   qos 0 publishes while offline fail with `nil, message, "ENOTCONN"` and are lost.
-- * With a `client_id`, the session is persistent (`clean_session = false`): the
--   broker keeps the subscriptions and queues qos 1 messages for this client while
--   it is away, and delivers them when it returns. Retained messages are
--   delivered again on every re-subscription (with `retained = true`).
-- * A broker that is restarted keeps retained messages and queued messages only
--   with its persistence on (and only what it saved before a crash).
-- * Lost: qos 0 traffic while away; anything queued in this process when the
--   process itself dies (a qos 1 publish not yet acknowledged).
--
-- The password is read from `password_file` (first line, without its newline),
-- never from the command line. Handlers must not raise: one that does is
-- reported (to `opts.log`, default stderr) and counted
-- (`bus:stats().handler_errors`), and the bus goes on.
--
-- @module hwfota.fleet.mqtt_bus
-- @usage
-- local mqtt_bus = require "hwfota.fleet.mqtt_bus"
-- local bus = assert(mqtt_bus.new{host = "127.0.0.1", port = 1883, client_id = "r1",
--   username = "r1", password_file = "/etc/hwfota/mqtt.pw",
--   will = {topic = "hwfota/r1/online", payload = '{"v":1,"type":"online","online":false}',
--     retain = true, qos = 1}})
-- bus:on_message(function(topic, payload, retained) print(topic, payload) end)
-- bus:subscribe("hwfota/r1/cmd", {qos = 1})
-- hwfota.loop()

local hwfota = require "hwfota"

local M = {}

local Bus = {}
Bus.__index = Bus

local TICK = 1   -- seconds between two loop_misc calls (keepalive, ping timeouts)

local function check(cond, n, fname, msg)
  if not cond then
    error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
  end
end

local function opt_type(t, k, want, fname)
  local v = t[k]
  if v ~= nil and type(v) ~= want then
    error(("bad option '%s' to '%s' (%s expected, got %s)"):format(k, fname, want, type(v)), 3)
  end
  return v
end

local ERRNO = {[2] = "ENOENT", [13] = "EACCES", [21] = "EISDIR"}

-- The first line of a password file, or nil, message, code.
local function read_password(path)
  local f, err, num = io.open(path, "rb")
  if not f then
    return nil, ("mqtt_bus: cannot read the password file: %s"):format(err), ERRNO[num] or "EIO"
  end
  local data, rerr, rnum = f:read("a")
  f:close()
  if not data then
    return nil, ("mqtt_bus: cannot read the password file %s: %s"):format(path, rerr),
      ERRNO[rnum] or "EIO"
  end
  local pw = data:match("^([^\r\n]*)")
  if pw == "" then
    return nil, ("mqtt_bus: the password file %s is empty"):format(path), "EINVAL"
  end
  return pw
end

-- Call a user handler; one that raises is reported, not raised into the bus.
function Bus:_call(name, fn, ...)
  if not fn then return end
  local ok, err = xpcall(fn, debug.traceback, ...)
  if not ok then
    self._stats.handler_errors = self._stats.handler_errors + 1
    self._log(("hwfota.fleet.mqtt_bus: %s handler failed: %s"):format(name, tostring(err)))
  end
end

-- Watch the client's socket as it is now: "r", plus "w" while libmosquitto has
-- something to send; no watcher while there is no socket. Called after every call
-- into the client (a socket may have been opened or closed under us).
function Bus:_sync(why)
  if self._closed then return end
  local c = self._client
  c:dispatch()
  if self._closed then return end
  local fd = c:socket()
  local events = fd and (c:want_write() and "rw" or "r") or nil
  if fd == self._fd and events == self._events then return end
  if self._watcher then self._watcher:cancel() end
  self._watcher, self._fd, self._events = nil, fd, events
  if fd then
    self._watcher = assert(hwfota.watch(fd, events, function(ready) self:_ready(ready) end))
  end
  if not fd and not self._retry then
    -- the socket closed without a disconnect event (a TLS failure does that)
    self:_lost(why or "the connection closed")
  end
end

-- The watched socket is ready.
function Bus:_ready(ready)
  local c = self._client
  local ok, err = true, nil
  if ready:find("r", 1, true) or ready:find("h", 1, true) then
    ok, err = c:loop_read()
  end
  if ok and not self._closed and ready:find("w", 1, true) and c:socket() then
    ok, err = c:loop_write()
  end
  if not ok then self._last_error = err end
  self:_sync(err)
end

-- The periodic tick: keepalive pings and timeouts.
function Bus:_tick()
  self._ticker = hwfota.timer(TICK, function() self:_tick() end)
  if self._client:socket() then
    local ok, err = self._client:loop_misc()
    if not ok then self._last_error = err end
    self:_sync()
  end
end

-- Schedule the next connection attempt after the back-off.
function Bus:_schedule()
  if self._closed or self._retry then return end
  local wait = math.min(self._backoff.max, self._backoff.first * 2 ^ self._attempts)
  wait = wait * (1 - 0.25 * math.random())
  self._attempts = self._attempts + 1
  self._next_wait = wait
  self._retry = hwfota.timer(wait, function()
    self._retry = nil
    self:_connect()
  end)
end

-- A connection (or an attempt) has ended: tell the handler, try again later.
function Bus:_lost(reason)
  local was = self._connected
  self._connected = false
  if self._closed then return end
  self._stats.disconnects = self._stats.disconnects + (was and 1 or 0)
  self:_schedule()
  self:_call("on_disconnect", self._handlers.disconnect, reason)
end

-- One connection attempt (the first with connect, then reconnect).
function Bus:_connect()
  if self._closed then return end
  local c, o = self._client, self._opts
  local ok, err
  if self._started then
    ok, err = c:reconnect()
  else
    ok, err = c:connect(o.host, o.port, o.keepalive)
    self._started = ok and true or false
  end
  self._stats.attempts = self._stats.attempts + 1
  if not ok then
    self._last_error = err
    self:_lost(err)   -- first: a disconnect event queued meanwhile is the same loss
    self:_sync()
    return
  end
  self:_sync()
end

-- libmosquitto's events (dispatched from the client's loop calls).
function Bus:_on_connack(rc, text)
  if rc ~= 0 then
    self._refused = ("connection refused: %s"):format(text)
    self._last_error = self._refused
    return   -- the broker closes the connection: the disconnect event follows
  end
  self._refused = nil
  self._connected = true
  self._attempts = 0
  if self._retry then self._retry:cancel(); self._retry = nil end   -- connected after all
  self._stats.connects = self._stats.connects + 1
  for _, s in ipairs(self._subs) do
    local mid, err = self._client:subscribe(s.pattern, s.qos)
    if not mid then self._last_error = err end
  end
  self:_call("on_connect", self._handlers.connect)
end

function Bus:_on_disconnect(rc, text)
  if self._closed then return end
  if self._retry then return end   -- already counted (a second event for one loss)
  local reason = self._refused or (rc == 0 and "disconnected" or text)
  self._refused = nil
  self:_lost(reason)
end

--- Publish a message.
-- @tparam string topic
-- @tparam string payload
-- @tparam[opt] table opts `retain` (boolean, default false), `qos` (0 or 1, default 0)
-- @return true, or nil, message, code (`ENOTCONN`: qos 0 while offline)
function Bus:publish(topic, payload, opts)
  check(type(topic) == "string", 1, "publish", "string expected, got " .. type(topic))
  check(type(payload) == "string", 2, "publish", "string expected, got " .. type(payload))
  check(opts == nil or type(opts) == "table", 3, "publish", "table expected, got " .. type(opts))
  opts = opts or {}
  local qos = opts.qos or 0
  check(qos == 0 or qos == 1, 3, "publish", "qos must be 0 or 1")
  if self._closed then return nil, "mqtt_bus: the bus is closed", "ECLOSED" end
  if qos == 0 and not self._connected then
    return nil, "mqtt_bus: not connected to the broker (a qos 0 message is not kept)", "ENOTCONN"
  end
  local mid, err, code = self._client:publish(topic, payload, qos, opts.retain == true)
  self:_sync()
  if not mid and not (qos == 1 and code == "ENOTCONN") then return nil, err, code end
  self._stats.published = self._stats.published + 1
  return true
end

--- Subscribe to a topic pattern (MQTT wildcards `+` and `#`); the bus sends it
-- again after every reconnection. Subscribing while offline only records it.
-- @tparam string pattern
-- @tparam[opt] table opts `qos` (0 or 1, default 0)
-- @return true, or nil, message, code
function Bus:subscribe(pattern, opts)
  check(type(pattern) == "string", 1, "subscribe", "string expected, got " .. type(pattern))
  check(opts == nil or type(opts) == "table", 2, "subscribe", "table expected, got " .. type(opts))
  local qos = opts and opts.qos or 0
  check(qos == 0 or qos == 1, 2, "subscribe", "qos must be 0 or 1")
  if self._closed then return nil, "mqtt_bus: the bus is closed", "ECLOSED" end
  local found = false
  for _, s in ipairs(self._subs) do
    if s.pattern == pattern then s.qos, found = qos, true end
  end
  if not found then self._subs[#self._subs + 1] = {pattern = pattern, qos = qos} end
  if self._connected then
    local mid, err, code = self._client:subscribe(pattern, qos)
    self:_sync()
    if not mid and code ~= "ENOTCONN" then return nil, err, code end
  end
  return true
end

--- Stop a subscription (and forget it for reconnections).
-- @tparam string pattern
-- @return true, or nil, message, code
function Bus:unsubscribe(pattern)
  check(type(pattern) == "string", 1, "unsubscribe", "string expected, got " .. type(pattern))
  if self._closed then return nil, "mqtt_bus: the bus is closed", "ECLOSED" end
  for i, s in ipairs(self._subs) do
    if s.pattern == pattern then table.remove(self._subs, i); break end
  end
  if self._connected then
    local mid, err, code = self._client:unsubscribe(pattern)
    self:_sync()
    if not mid and code ~= "ENOTCONN" then return nil, err, code end
  end
  return true
end

--- Set the message handler (one): `fn(topic, payload, retained)`, `retained` true
-- for a retained message delivered on subscribe.
-- @tparam function fn
function Bus:on_message(fn)
  check(type(fn) == "function", 1, "on_message", "function expected, got " .. type(fn))
  self._handlers.message = fn
end

--- Set the connection handler: `fn()` after every (re)connection, the
-- subscriptions already sent again.
-- @tparam function fn
function Bus:on_connect(fn)
  check(type(fn) == "function", 1, "on_connect", "function expected, got " .. type(fn))
  self._handlers.connect = fn
end

--- Set the disconnection handler: `fn(reason)` when a connection is lost or an
-- attempt fails (refused, unreachable); the bus tries again after its back-off.
-- @tparam function fn
function Bus:on_disconnect(fn)
  check(type(fn) == "function", 1, "on_disconnect", "function expected, got " .. type(fn))
  self._handlers.disconnect = fn
end

--- Is the bus connected to the broker now (CONNACK accepted, not lost since)?
-- @treturn boolean
function Bus:connected()
  return self._connected
end

--- Counters and state, for logs and tests.
-- @treturn table `connects`, `disconnects`, `attempts`, `published`,
--   `handler_errors`, `dropped` (events the binding could not queue),
--   `last_error` (string or nil), `next_wait` (the last back-off, seconds)
function Bus:stats()
  local s = {}
  for k, v in pairs(self._stats) do s[k] = v end
  s.dropped = self._client:dropped()
  s.last_error = self._last_error
  s.next_wait = self._next_wait
  return s
end

--- Disconnect cleanly (no last will: publish your own "offline" first) and stop
-- watching; the bus is unusable afterwards. Idempotent.
function Bus:close()
  if self._closed then return end
  self._closed, self._connected = true, false
  if self._retry then self._retry:cancel(); self._retry = nil end
  if self._ticker then self._ticker:cancel(); self._ticker = nil end
  if self._watcher then self._watcher:cancel(); self._watcher = nil end
  local c = self._client
  if c:socket() then
    c:disconnect()
    if c:socket() and c:want_write() then c:loop_write() end
  end
  c:close()
end
Bus.__close = Bus.close

--- Connect to a broker (non-blocking: the bus connects on the loop, and keeps
-- reconnecting after its back-off while the broker cannot be reached).
-- @tparam table opts `host` (default "127.0.0.1"), `port` (default 1883, 8883 with
--   `tls`), `client_id` (string; without it a random id and a clean session),
--   `clean_session` (default false with a `client_id`), `username`,
--   `password_file` (its first line is the password), `tls` ({cafile=, capath=,
--   certfile=, keyfile=, insecure=false}), `will` ({topic=, payload=, retain=,
--   qos=}), `keepalive` (seconds, default 30), `backoff` ({first=1, max=60}),
--   `log` (function(line) for a handler's error; default: a line on stderr)
-- @return Bus, or nil, message, code (a bad password file, a bad TLS setup, a
--   refused client id, no `hwfota.mqtt`)
function M.new(opts)
  check(type(opts) == "table", 1, "new", "table expected, got " .. type(opts))
  local host = opt_type(opts, "host", "string", "new") or "127.0.0.1"
  local tls = opt_type(opts, "tls", "table", "new")
  local port = opt_type(opts, "port", "number", "new") or (tls and 8883 or 1883)
  local client_id = opt_type(opts, "client_id", "string", "new")
  local clean = opt_type(opts, "clean_session", "boolean", "new")
  local username = opt_type(opts, "username", "string", "new")
  local pwfile = opt_type(opts, "password_file", "string", "new")
  local will = opt_type(opts, "will", "table", "new")
  local keepalive = opt_type(opts, "keepalive", "number", "new") or 30
  local backoff = opt_type(opts, "backoff", "table", "new") or {}
  local log = opt_type(opts, "log", "function", "new") or function(line)
    io.stderr:write(line, "\n")
  end
  check(math.type(port) == "integer" and port > 0 and port < 65536, 1, "new",
    "option 'port' must be an integer 1..65535")
  check(math.type(keepalive) == "integer" and keepalive >= 5, 1, "new",
    "option 'keepalive' must be an integer >= 5")
  local first, max = backoff.first or 1, backoff.max or 60
  check(type(first) == "number" and first > 0 and type(max) == "number" and max >= first, 1,
    "new", "option 'backoff' must be {first > 0, max >= first}")
  if will then
    check(type(will.topic) == "string" and type(will.payload) == "string", 1, "new",
      "option 'will' needs string 'topic' and 'payload'")
  end
  if pwfile and not username then
    check(false, 1, "new", "option 'password_file' needs 'username'")
  end
  local okreq, mqtt = pcall(require, "hwfota.mqtt")
  if not okreq then
    return nil, "mqtt_bus: hwfota.mqtt is not available (hwfota was built without "
      .. "libmosquitto-dev): " .. tostring(mqtt):match("^[^\n]*"), "ENOTSUP"
  end
  local password
  if pwfile then
    local err, code
    password, err, code = read_password(pwfile)
    if not password then return nil, err, code end
  end
  if clean == nil then clean = client_id == nil end
  local client, err, code = mqtt.new{client_id = client_id, clean_session = clean}
  if not client then return nil, err, code end
  local ok
  if will then
    ok, err, code = client:will_set(will.topic, will.payload, will.qos or 0, will.retain == true)
    if not ok then client:close(); return nil, err, code end
  end
  if username then
    ok, err, code = client:username_pw_set(username, password)
    if not ok then client:close(); return nil, err, code end
  end
  if tls then
    ok, err, code = client:tls_set(tls)
    if not ok then client:close(); return nil, err, code end
  end
  local self = setmetatable({
    _client = client, _opts = {host = host, port = port, keepalive = keepalive},
    _backoff = {first = first, max = max}, _attempts = 0,
    _subs = {}, _handlers = {}, _connected = false, _closed = false, _log = log,
    _stats = {connects = 0, disconnects = 0, attempts = 0, published = 0,
              handler_errors = 0},
  }, Bus)
  client:on_connect(function(rc, text) self:_on_connack(rc, text) end)
  client:on_disconnect(function(rc, text) self:_on_disconnect(rc, text) end)
  client:on_message(function(topic, payload, retained)
    if self._closed then return end
    self:_call("on_message", self._handlers.message, topic, payload, retained)
  end)
  self._ticker = hwfota.timer(TICK, function() self:_tick() end)
  -- The first attempt runs on the loop, so the handlers set after `new` see it.
  self._retry = hwfota.timer(0, function()
    self._retry = nil
    self:_connect()
  end)
  return self
end

return M
