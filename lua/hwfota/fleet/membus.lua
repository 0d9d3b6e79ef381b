--- An MQTT broker in memory, for the fleet simulation and the unit specs: the same Bus
-- interface as `hwfota.fleet.mqtt_bus` (issue 16's contract) with MQTT's semantics —
-- topic wildcards `+` and `#` (not matching `$` topics at the first level), retained
-- messages (an empty retained payload clears one; delivered with `retained = true` on
-- subscribe), a last will published when a client dies or loses its connection (not on a
-- clean `close`), subscriptions re-sent on every reconnection, messages to a
-- disconnected client lost (a clean session: only retained state survives), a broker that
-- can stop and start again with its retained messages (persistence).
--
-- Nothing is synchronous: connections, deliveries and disconnection notices go through
-- a queue that the injected clock's timer drains `latency` seconds later, so a handler
-- never runs inside `publish` and never re-enters itself. The clock is
-- `{now = fn, timer = fn(seconds, cb) -> handle}` (`hwfota.fleet.vclock` in simulations).
--
-- A handler that raises propagates out of the clock's step (a bug to see, not to hide).
-- @module hwfota.fleet.membus
-- @usage
-- local clock = require("hwfota.fleet.vclock").new()
-- local broker = require("hwfota.fleet.membus").new{clock = clock}
-- local a = broker:client{client_id = "a", will = {topic = "t/a", payload = "gone", retain = true}}
-- a:on_message(function(topic, payload, retained) print(topic, payload) end)
-- a:subscribe("t/#")
-- clock.run()
local fmt = string.format
local M = {}

local function split(topic)
  local levels, n, i = {}, 0, 1
  while true do
    local j = topic:find("/", i, true)
    n = n + 1
    if not j then levels[n] = topic:sub(i); return levels, n end
    levels[n] = topic:sub(i, j - 1)
    i = j + 1
  end
end

local function valid_topic(t)
  return type(t) == "string" and #t >= 1 and #t <= 65535 and not t:find("[+#%z]")
end

local function valid_pattern(p)
  if type(p) ~= "string" or #p < 1 or #p > 65535 or p:find("%z") then return false end
  local levels, n = split(p)
  for i = 1, n do
    local l = levels[i]
    if l:find("#", 1, true) and (l ~= "#" or i ~= n) then return false end
    if l:find("+", 1, true) and l ~= "+" then return false end
  end
  return true
end

--- Does an MQTT subscription pattern match a topic?
-- @tparam string pattern with `+` (one level) and `#` (the rest, last level only)
-- @tparam string topic
-- @treturn boolean
function M.matches(pattern, topic)
  if type(pattern) ~= "string" or type(topic) ~= "string" then
    error("hwfota.fleet.membus.matches: pattern and topic must be strings", 2)
  end
  local p, pn = split(pattern)
  local t, tn = split(topic)
  local dollar = topic:sub(1, 1) == "$"
  for i = 1, pn do
    local l = p[i]
    if l == "#" then return not (i == 1 and dollar) end
    if i > tn then return false end
    if l == "+" then
      if i == 1 and dollar then return false end
    elseif l ~= t[i] then
      return false
    end
  end
  return pn == tn
end

-- The clients of a set in the order they were made (pairs() order is not stable
-- from run to run: a simulation's seed must reproduce its run).
local function by_seq(set)
  local list = {}
  for c in pairs(set) do list[#list + 1] = c end
  table.sort(list, function(a, b) return a.seq < b.seq end)
  return list
end

local Broker = {}
Broker.__index = Broker

local Client = {}
Client.__index = Client

--- A new broker.
-- @tparam table opts
-- @tparam table opts.clock `{now = fn, timer = fn}`
-- @tparam[opt=0] number opts.latency seconds between a publish and its delivery
-- @treturn table broker
function M.new(opts)
  if type(opts) ~= "table" or type(opts.clock) ~= "table"
     or type(opts.clock.timer) ~= "function" or type(opts.clock.now) ~= "function" then
    error("hwfota.fleet.membus.new: opts.clock = {now = fn, timer = fn} is required", 2)
  end
  local latency = opts.latency or 0
  if type(latency) ~= "number" or latency < 0 then
    error("hwfota.fleet.membus.new: latency must be a number >= 0", 2)
  end
  return setmetatable({
    clock = opts.clock, latency = latency, up = true,
    clients = {},          -- client_id -> the current client with that id
    all = {},              -- every client made, for start()
    nclients = 0,
    retained = {},         -- topic -> payload
    nretained = 0,
    trie = {c = {}, subs = {}},
    queue = {}, qhead = 1, qtail = 0, scheduled = false,
    stats = {published = 0, delivered = 0, dropped = 0},
  }, Broker)
end

-- The trie node of a pattern (created on demand).
function Broker:node(pattern)
  local levels, n = split(pattern)
  local node = self.trie
  for i = 1, n do
    local l = levels[i]
    local key = (l == "+" and "plus") or (l == "#" and "hash") or nil
    local nxt
    if key then
      nxt = node[key]
      if not nxt then nxt = {c = {}, subs = {}}; node[key] = nxt end
    else
      nxt = node.c[l]
      if not nxt then nxt = {c = {}, subs = {}}; node.c[l] = nxt end
    end
    node = nxt
  end
  return node
end

local function collect(node, levels, n, i, dollar, out)
  if i > n then
    for c in pairs(node.subs) do out[c] = true end
    if node.hash then for c in pairs(node.hash.subs) do out[c] = true end end
    return
  end
  local first_dollar = (i == 1 and dollar)
  if node.hash and not first_dollar then
    for c in pairs(node.hash.subs) do out[c] = true end
  end
  local child = node.c[levels[i]]
  if child then collect(child, levels, n, i + 1, dollar, out) end
  if node.plus and not first_dollar then collect(node.plus, levels, n, i + 1, dollar, out) end
end

function Broker:enqueue(item)
  self.qtail = self.qtail + 1
  self.queue[self.qtail] = item
  if not self.scheduled then
    self.scheduled = true
    self.clock.timer(self.latency, function() self:drain() end)
  end
end

-- Run what was queued before this step; what the handlers queue runs in a later step.
function Broker:drain()
  self.scheduled = false
  local last = self.qtail
  while self.qhead <= last do
    local it = self.queue[self.qhead]
    self.queue[self.qhead] = nil
    self.qhead = self.qhead + 1
    local c = it.client
    if it.kind == "msg" then
      if c.conn and c.epoch == it.epoch and c.handler then
        self.stats.delivered = self.stats.delivered + 1
        c.handler(it.topic, it.payload, it.retained)
      else
        self.stats.dropped = self.stats.dropped + 1
      end
    elseif it.kind == "connect" then
      if c.epoch == it.epoch and c.conn and c.connect_handler then c.connect_handler() end
    elseif it.kind == "disconnect" then
      if c.disconnect_handler then c.disconnect_handler(it.reason) end
    end
  end
  if self.qhead > self.qtail then self.qhead, self.qtail = 1, 0 end
end

-- Route a message to every connected subscriber (and keep it when retained).
function Broker:route(topic, payload, retain)
  self.stats.published = self.stats.published + 1
  if retain then
    local had = self.retained[topic] ~= nil
    if payload == "" then
      if had then self.nretained = self.nretained - 1 end
      self.retained[topic] = nil
    else
      if not had then self.nretained = self.nretained + 1 end
      self.retained[topic] = payload
    end
  end
  local levels, n = split(topic)
  local out = {}
  collect(self.trie, levels, n, 1, topic:sub(1, 1) == "$", out)
  local first = next(out)
  if first and next(out, first) == nil then
    self:enqueue{kind = "msg", client = first, epoch = first.epoch, topic = topic,
                 payload = payload, retained = false}
    return
  end
  for _, c in ipairs(by_seq(out)) do   -- in the order the clients were made
    self:enqueue{kind = "msg", client = c, epoch = c.epoch, topic = topic,
                 payload = payload, retained = false}
  end
end

-- Send a subscription to the broker: index it, queue the retained messages it matches.
function Broker:add_sub(c, pattern)
  self:node(pattern).subs[c] = true
  local wild = pattern:find("[+#]")
  if not wild then
    local p = self.retained[pattern]
    if p then
      self:enqueue{kind = "msg", client = c, epoch = c.epoch, topic = pattern, payload = p,
                   retained = true}
    end
    return
  end
  local topics = {}
  for t in pairs(self.retained) do
    if M.matches(pattern, t) then topics[#topics + 1] = t end
  end
  table.sort(topics)
  for _, t in ipairs(topics) do
    self:enqueue{kind = "msg", client = c, epoch = c.epoch, topic = t,
                 payload = self.retained[t], retained = true}
  end
end

function Broker:connect(c)
  if c.conn or c.dead or not c.online or not self.up then return end
  local old = self.clients[c.client_id]
  if old and old ~= c and old.conn then
    self:drop(old, "session taken over by a new connection", false)
    old.dead = true
  end
  self.clients[c.client_id] = c
  c.conn = true
  c.epoch = c.epoch + 1
  for _, pattern in ipairs(c.sub_order) do self:add_sub(c, pattern) end
  self:enqueue{kind = "connect", client = c, epoch = c.epoch}
end

-- Take a client off the broker; `will`: publish its last will.
function Broker:drop(c, reason, will)
  if not c.conn then return end
  c.conn = false
  for _, pattern in ipairs(c.sub_order) do self:node(pattern).subs[c] = nil end
  if will and c.will then
    self:route(c.will.topic, c.will.payload, c.will.retain)
  end
  self:enqueue{kind = "disconnect", client = c, reason = reason}
end

--- A new client; it connects on the next step of the clock (its `on_connect` handler
-- runs then).
-- @tparam table opts
-- @tparam string opts.client_id
-- @tparam[opt] table opts.will `{topic=, payload=, retain=, qos=}`
-- @treturn table bus (the contract's Bus interface)
function Broker:client(opts)
  if type(opts) ~= "table" or type(opts.client_id) ~= "string" or opts.client_id == "" then
    error("hwfota.fleet.membus: client{client_id = string} is required", 2)
  end
  local will = opts.will
  if will ~= nil then
    if type(will) ~= "table" or not valid_topic(will.topic)
       or type(will.payload) ~= "string" then
      error("hwfota.fleet.membus: will must be {topic = string, payload = string, ...}", 2)
    end
    will = {topic = will.topic, payload = will.payload, retain = will.retain == true}
  end
  local c = setmetatable({broker = self, client_id = opts.client_id, will = will,
                          subs = {}, sub_order = {}, conn = false, online = true,
                          dead = false, epoch = 0, seq = self.nclients + 1}, Client)
  self.nclients = self.nclients + 1
  self.all[c] = true
  self.clock.timer(self.latency, function() self:connect(c) end)
  return c
end

--- Stop the broker (a crash): every client loses its connection, no will is sent, the
-- retained messages are kept.
function Broker:stop()
  self.up = false
  local set = {}
  for _, c in pairs(self.clients) do set[c] = true end
  for _, c in ipairs(by_seq(set)) do
    if c.conn then self:drop(c, "broker went away", false) end
  end
end

--- Start a stopped broker: every client that is neither closed, killed nor offline
-- reconnects.
function Broker:start()
  if self.up then return end
  self.up = true
  for _, c in ipairs(by_seq(self.all)) do
    if not c.dead then self.clock.timer(self.latency, function() self:connect(c) end) end
  end
end

--- Kill a client (its process died): the will is published, it never reconnects.
-- @tparam table c a client of this broker
function M.kill(c)
  c.dead = true
  c.broker:drop(c, "killed", true)
  c.broker.all[c] = nil
end

--- Take a client's network down (`false`: the broker publishes its will, its
-- `on_disconnect` runs) or up again (`true`: it reconnects, re-sends its subscriptions,
-- its `on_connect` runs).
-- @tparam table c a client
-- @tparam boolean online
function M.set_online(c, online)
  if online then
    if c.online then return end
    c.online = true
    c.broker.clock.timer(c.broker.latency, function() c.broker:connect(c) end)
  else
    c.online = false
    c.broker:drop(c, "connection lost", true)
  end
end

Broker.kill = function(_, c) return M.kill(c) end
Broker.set_online = function(_, c, online) return M.set_online(c, online) end

--- Publish a message.
-- @tparam string topic no wildcards
-- @tparam string payload
-- @tparam[opt] table opts `{retain = bool, qos = 0|1}`
-- @return true, or nil, message, code (`"ENOTCONN"` while disconnected, `"EINVAL"`)
function Client:publish(topic, payload, opts)
  if type(payload) ~= "string" then
    error(fmt("bus:publish: payload must be a string, got %s", type(payload)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(fmt("bus:publish: opts must be a table, got %s", type(opts)), 2)
  end
  if not valid_topic(topic) then
    return nil, fmt("invalid topic %s for publish", tostring(topic)), "EINVAL"
  end
  if not self.conn then
    return nil, fmt("client %s is not connected", self.client_id), "ENOTCONN"
  end
  self.broker:route(topic, payload, opts and opts.retain == true)
  return true
end

--- Subscribe (kept and re-sent on every reconnection).
-- @tparam string pattern
-- @tparam[opt] table opts `{qos = 0|1}`
-- @return true, or nil, message, `"EINVAL"`
function Client:subscribe(pattern, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(fmt("bus:subscribe: opts must be a table, got %s", type(opts)), 2)
  end
  if not valid_pattern(pattern) then
    return nil, fmt("invalid subscription pattern %s", tostring(pattern)), "EINVAL"
  end
  if self.dead then return nil, "client is closed", "ENOTCONN" end
  if not self.subs[pattern] then
    self.subs[pattern] = true
    self.sub_order[#self.sub_order + 1] = pattern
  end
  if self.conn then self.broker:add_sub(self, pattern) end
  return true
end

local function setter(field, name)
  return function(self, fn)
    if type(fn) ~= "function" then
      error(fmt("bus:%s: handler must be a function, got %s", name, type(fn)), 2)
    end
    self[field] = fn
  end
end

--- Set the message handler `fn(topic, payload, retained)`.
Client.on_message = setter("handler", "on_message")
--- Set the handler run after every (re)connection, subscriptions already re-sent.
Client.on_connect = setter("connect_handler", "on_connect")
--- Set the handler `fn(reason)` run when the connection is lost.
Client.on_disconnect = setter("disconnect_handler", "on_disconnect")

--- Is the client connected?
-- @treturn boolean
function Client:connected() return self.conn end

--- Disconnect cleanly (no will) for good.
function Client:close()
  self.dead = true
  if self.conn then
    self.conn = false
    for _, pattern in ipairs(self.sub_order) do self.broker:node(pattern).subs[self] = nil end
  end
  if self.broker.clients[self.client_id] == self then self.broker.clients[self.client_id] = nil end
  self.broker.all[self] = nil
end

return M
