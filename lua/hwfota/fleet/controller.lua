--- The fleet rollout controller: staged waves of `upgrade` commands to the routers of a
-- fleet, halted when the failure rate crosses a limit. Pure logic: the bus (see
-- `hwfota.fleet.membus`, `hwfota.fleet.mqtt_bus`), the clock and the state store are
-- injected; it does no I/O of its own.
--
-- What it knows comes from the agents' retained messages: `hwfota/<rid>/inventory`
-- (model, IMEI, firmware, optional `utc_offset`), `online` and `status`.
--
-- Rules of a rollout `{id, to, waves, max_failure_rate, window, concurrency, select}`:
--
-- * A router's wave: its place in [0, 100) (`position`: the policy kit's cohort hash of
--   the router id and the salt, by default the rollout id) against the cumulative percentages `waves` (default
--   `{1, 10, 50, 100}`): wave k holds the routers with `waves[k-1] <= place < waves[k]`.
--   Stable: the same router is in the same wave on every run and every controller.
-- * A wave's routers get `upgrade` commands `{"to": to, "rollout": id}` with ids
--   `<rollout>:<rid>:<n>` (n = 1, 2 ... only when a failed router is retried), at most
--   `concurrency` in flight at once over the whole rollout, only while a router's local
--   time is inside `window` (`"HH:MM-HH:MM"`, may span midnight; local time = UTC plus the
--   inventory's `utc_offset` seconds, UTC when the inventory has none).
-- * A router already on `to` (inventory `firmware`) counts as done without a command; a
--   result `ok = true` (outcome `upgraded` or `nothing`) is done; `ok = false` is a failure
--   with its code; no status for a command within `result_timeout` seconds (default
--   7200) of sending it, while the router is online, is a failure `ETIMEDOUT`; a command
--   the agent refuses (reply `accepted = false`, other than a duplicate) is sent again
--   with the next id after `retry_delay` seconds, at most `max_refusals` times, then is a
--   failure `EREFUSED`.
-- * Offline routers (retained `online = false`, e.g. their will) are counted apart, never
--   as failures, and are commanded when they come back (while the controller runs); a
--   router in flight that goes offline stops holding its wave; its late result counts.
-- * A wave ends when every router of it that is online has a result. Then its failure
--   rate (failures / results) is compared with `max_failure_rate`: over it, the rollout
--   halts, the state says why and lists the failing routers with their codes; else the
--   next wave starts. While a wave runs, the rollout halts at once when its failures
--   already exceed `max_failure_rate` times the wave's size (the final rate can only be
--   higher). A late failure in an earlier wave is checked the same way.
-- * `resume` continues a halted rollout (the failures seen so far are accepted; failed
--   routers are not retried unless `retry_failed`); `halt` stops sending commands (those
--   in flight run on and their results still count).
--
-- State: published retained (compact, under 8 KiB) on `hwfota/fleet/rollout/<id>` and,
-- when a store is given, saved in full (every router's state and command number) with
-- `store.save(text)`, so a restarted controller resumes without sending a command again.
-- Without a store the router states come back from the agents' retained statuses (their
-- `cmd` names the command): a command in flight whose status never said so is sent
-- again with the same id, which the agent's ledger refuses as a duplicate.
-- @module hwfota.fleet.controller
-- @usage
-- local ctl = controller.new{bus = bus, clock = {now = hwfota.now, timer = hwfota.timer}}
-- ctl:start()
-- ctl:rollout{id = "fw0105", to = "12.815.01.05.00", waves = {1, 10, 50, 100},
--             max_failure_rate = 0.02, window = "01:00-05:00", concurrency = 50}
local proto = require "hwfota.fleet.proto"
local json = require "hwfota.json"
local policy = require "hwfota.policy"

local fmt = string.format
local floor = math.floor
local M = {}

-- Defaults of the tunables (`waves` in cumulative percent; times in seconds).
M.DEFAULTS = {
  waves = {1, 10, 50, 100}, max_failure_rate = 0.02, result_timeout = 7200,
  retry_delay = 300, max_refusals = 3, settle = 3, tick = 60, publish_interval = 5,
}

--- The topic the controller takes `halt`/`resume` requests on (`hwfota/fleet/control/<id>`,
-- not retained: `{"v":1,"type":"control","op":"halt"|"resume","reason":s,"retry_failed":b}`);
-- under `hwfota/fleet/`, which only the controller's broker user may write.
-- @tparam string id rollout id
-- @treturn string topic
function M.control_topic(id) return "hwfota/fleet/control/" .. id end

local MAX_LISTED = 40     -- failing routers listed in the retained state

-- Keys in order: pairs() order changes from run to run (string hashes are seeded), and
-- the order commands go out in must not (a simulation's seed reproduces its run).
local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

local function argerr(msg) error("hwfota.fleet.controller: " .. msg, 3) end

--- Parse a window `"HH:MM-HH:MM"` into minutes of the day.
-- @tparam string s
-- @treturn table `{from = minutes, to = minutes, text = s}`, or nil, message, `"EINVAL"`
function M.parse_window(s)
  if type(s) ~= "string" then return nil, "window must be a string HH:MM-HH:MM", "EINVAL" end
  local h1, m1, h2, m2 = s:match("^(%d%d?):(%d%d)%-(%d%d?):(%d%d)$")
  h1, m1, h2, m2 = tonumber(h1), tonumber(m1), tonumber(h2), tonumber(m2)
  if not h1 or h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 > 0) then
    return nil, fmt("window %q is not HH:MM-HH:MM (00:00..24:00)", s), "EINVAL"
  end
  local a, b = h1 * 60 + m1, h2 * 60 + m2
  if a == b then return nil, fmt("window %q is empty", s), "EINVAL" end
  return {from = a, to = b, text = s}
end

local function in_window(w, now, offset)
  if not w then return true end
  local m = floor(((now + (offset or 0)) % 86400) / 60)
  if w.from < w.to then return m >= w.from and m < w.to end
  return m >= w.from or m < w.to
end

--- Check and complete a rollout spec.
-- @tparam table spec `{id, to, waves, max_failure_rate, window, concurrency, select,
--   salt, retry_failed}`
-- @treturn table the spec with defaults, or nil, message, `"EINVAL"`
function M.check_spec(spec)
  if type(spec) ~= "table" then argerr("rollout spec must be a table") end
  local s = {}
  local function bad(m) return nil, "rollout: " .. m, "EINVAL" end
  s.id = spec.id
  if not proto.valid_rollout_id(s.id) then
    return bad(fmt("id %s: 1..32 of A-Z a-z 0-9 _ . -", tostring(s.id)))
  end
  if not proto.valid_version(spec.to) then
    return bad(fmt("to %s: a firmware version, 1..63 of A-Z a-z 0-9 . _ + -",
                   tostring(spec.to)))
  end
  s.to = spec.to
  local waves = spec.waves or M.DEFAULTS.waves
  if type(waves) ~= "table" or #waves == 0 or #waves > 20 then
    return bad("waves must be a list of 1..20 cumulative percentages")
  end
  s.waves = {}
  local prev = 0
  for i, w in ipairs(waves) do
    if type(w) ~= "number" or w <= prev or w > 100 then
      return bad(fmt("waves: %s is not above the previous wave (%s) and at most 100",
                     tostring(w), tostring(prev)))
    end
    s.waves[i], prev = w, w
  end
  local r = spec.max_failure_rate == nil and M.DEFAULTS.max_failure_rate
            or spec.max_failure_rate
  if type(r) ~= "number" or r < 0 or r >= 1 then
    return bad("max_failure_rate must be a number in [0, 1)")
  end
  s.max_failure_rate = r
  if spec.window ~= nil and spec.window ~= json.null then
    local w, msg = M.parse_window(spec.window)
    if not w then return bad(msg) end
    s.window = spec.window
  end
  if spec.concurrency ~= nil and spec.concurrency ~= json.null then
    if math.type(spec.concurrency) ~= "integer" and not (type(spec.concurrency) == "number"
       and spec.concurrency == floor(spec.concurrency)) or spec.concurrency < 1 then
      return bad("concurrency must be an integer >= 1")
    end
    s.concurrency = floor(spec.concurrency)
  end
  if spec.select ~= nil and spec.select ~= json.null then
    if type(spec.select) ~= "table" then return bad("select must be a table") end
    s.select = spec.select
  end
  s.salt = spec.salt or s.id
  if type(s.salt) ~= "string" then return bad("salt must be a string") end
  s.retry_failed = spec.retry_failed == true
  return s
end

--- A router's place in [0, 100) for a rollout's salt: the policy kit's
-- `cohort_position` of the router id followed by `":" .. salt .. ":fleet"`. The router id
-- comes first because FNV-1a carries a byte into the high bits (the place) only through
-- the bytes after it: with the salt first, routers named r001, r002 ... would crowd
-- into a few places; this way they spread evenly.
-- @tparam string rid
-- @tparam string salt
-- @treturn number
function M.position(rid, salt)
  return policy.cohort_position(":" .. salt .. ":fleet", rid)
end

--- The wave (1..#waves) of a router, or nil when its place is above the last wave.
-- @tparam string rid
-- @tparam table spec a checked spec (`waves`, `salt`)
-- @treturn integer|nil
function M.wave_of(rid, spec)
  local p = M.position(rid, spec.salt)
  for k, w in ipairs(spec.waves) do
    if p < w then return k end
  end
  return nil
end

local Controller = {}
Controller.__index = Controller

--- A new controller.
-- @tparam table opts
-- @tparam table opts.bus a Bus (contract of issue 16)
-- @tparam table opts.clock `{now = fn, timer = fn(seconds, cb) -> handle}`
-- @tparam[opt] table opts.store `{load = fn(id) -> text|nil, save = fn(id, text) -> true|nil,msg}`
-- @tparam[opt] function opts.log `fn(level, message)`
-- @tparam[opt] function opts.on_event `fn(event, rollout_state)`: `"wave"`, `"halt"`,
--   `"done"`, `"resume"`, `"publish"`
-- @tparam[opt] number opts.result_timeout, opts.retry_delay, opts.max_refusals,
--   opts.settle (seconds to wait for retained messages after connecting), opts.tick,
--   opts.publish_interval see `DEFAULTS`
-- @treturn table controller
function M.new(opts)
  if type(opts) ~= "table" then argerr("new: opts must be a table") end
  local bus, clock = opts.bus, opts.clock
  if type(bus) ~= "table" or type(bus.publish) ~= "function" then
    argerr("new: opts.bus must be a Bus")
  end
  if type(clock) ~= "table" or type(clock.now) ~= "function"
     or type(clock.timer) ~= "function" then
    argerr("new: opts.clock must be {now = fn, timer = fn}")
  end
  local self = setmetatable({
    bus = bus, clock = clock, store = opts.store,
    log = opts.log or function() end, on_event = opts.on_event or function() end,
    routers = {},          -- rid -> {inv=, online=, status=}
    nrouters = 0,
    rollouts = {},         -- id -> rollout
    ready = false,         -- retained messages settled
    adopted = {},          -- rollout id -> retained state seen on the bus
    waiting = {},          -- functions to run once ready
  }, Controller)
  for k, v in pairs(M.DEFAULTS) do
    local x = opts[k]
    if x ~= nil then
      if k ~= "waves" and (type(x) ~= "number" or x < 0) then
        argerr(fmt("new: %s must be a number >= 0", k))
      end
      self[k] = x
    else
      self[k] = v
    end
  end
  return self
end

--- Subscribe and start: handlers set, the retained inventory, online, status and rollout
-- states read (for `settle` seconds after the first connection) before any rollout acts.
-- @treturn boolean true, or nil, message, code
function Controller:start()
  local bus = self.bus
  bus:on_message(function(topic, payload, retained) self:message(topic, payload, retained) end)
  bus:on_connect(function() self:connected() end)
  bus:on_disconnect(function(reason) self.log("warn", "broker connection lost: "
                                               .. tostring(reason)) end)
  for _, p in ipairs{"hwfota/+/inventory", "hwfota/+/online", "hwfota/+/status",
                     "hwfota/+/reply", "hwfota/fleet/rollout/+", "hwfota/fleet/control/+"} do
    local ok, msg, code = bus:subscribe(p, {qos = 1})
    if not ok then return nil, msg, code end
  end
  self.settle_pending = true
  if bus:connected() then self:connected() end
  self:schedule_tick()
  return true
end

-- The retained messages come after the (first) connection: wait `settle` seconds for
-- them, then act.
function Controller:settle_then_ready()
  self.settle_pending = false
  self.clock.timer(self.settle, function()
    self.ready = true
    for _, ro in pairs(self.rollouts) do self:kick(ro) end
    local w = self.waiting
    self.waiting = {}
    for _, fn in ipairs(w) do fn() end
  end)
end

--- Run `fn()` once the retained messages have settled (at once when they have).
-- @tparam function fn
function Controller:when_ready(fn)
  if type(fn) ~= "function" then argerr("when_ready: fn must be a function") end
  if self.ready then return fn() end
  self.waiting[#self.waiting + 1] = fn
end

function Controller:schedule_tick()
  self.ticker = self.clock.timer(self.tick, function()
    for _, ro in pairs(self.rollouts) do
      if ro.state == "running" or ro.state == "done" then self:dispatch(ro) end
    end
    self:schedule_tick()
  end)
end

function Controller:connected()
  self.log("info", "connected to the broker")
  if self.settle_pending then self:settle_then_ready() end
  for _, ro in pairs(self.rollouts) do ro.dirty = true; self:publish_later(ro, 0) end
end

--- Stop: cancel the timers (the bus stays the caller's).
function Controller:stop()
  if self.ticker then self.ticker:cancel() end
  for _, ro in pairs(self.rollouts) do
    ro.stopped = true
    for _, r in pairs(ro.recs) do if r.timer then r.timer:cancel() end end
  end
end

-- The router table of `rid`, created on first sight.
function Controller:router(rid)
  local r = self.routers[rid]
  if not r then
    r = {rid = rid}
    self.routers[rid] = r
    self.nrouters = self.nrouters + 1
  end
  return r
end

local function is_online(r) return r.online ~= false end

function Controller:message(topic, payload, retained)
  if topic:find("^hwfota/fleet/control/") then
    if not retained then self:control(topic, payload) end
    return
  end
  local t = proto.parse_topic(topic)
  if not t then return end
  if t.kind == "rollout" then
    if self.rollouts[t.rollout] then return end   -- our own state coming back
    local st = proto.decode(payload, "rollout")
    if st then self.adopted[t.rollout] = st end
    return
  end
  if t.kind == "fleet_cmd" or t.kind == "cmd" then return end
  local msg, err = proto.decode(payload, t.kind)
  if not msg then
    self.log("warn", fmt("%s: dropped: %s", topic, err))
    return
  end
  if t.kind ~= "reply" and msg.router and msg.router ~= t.router then
    self.log("warn", fmt("%s: dropped: the message names router %s", topic, msg.router))
    return
  end
  local r = self:router(t.router)
  if t.kind == "inventory" then
    r.inv = msg
    for _, ro in pairs(self.rollouts) do self:on_inventory(ro, r) end
  elseif t.kind == "online" then
    local was = is_online(r)
    r.online = msg.online
    for _, ro in pairs(self.rollouts) do self:on_online(ro, r, was) end
  elseif t.kind == "status" then
    r.status = msg
    for _, ro in pairs(self.rollouts) do self:on_status(ro, r, msg) end
  elseif t.kind == "reply" then
    for _, ro in pairs(self.rollouts) do self:on_reply(ro, r, msg) end
  end
end

-- Control requests (halt/resume) from `hwfota fleet halt|resume` in another process.
function Controller:control(topic, payload)
  local id = topic:match("^hwfota/fleet/control/([^/]+)$")
  local ro = id and self.rollouts[id]
  if not ro or #payload > proto.MAX_PAYLOAD then return end
  local m = json.decode(payload)
  if type(m) ~= "table" or m.v ~= 1 or m.type ~= "control" then return end
  if m.op == "halt" then
    self:halt(id, type(m.reason) == "string" and m.reason:sub(1, 200) or "halted by operator")
  elseif m.op == "resume" then
    self:resume(id, {retry_failed = m.retry_failed == true})
  end
end

---------------------------------------------------------------------------------------
-- Rollout bookkeeping. Each router of the rollout has a record
--   {r = router, w = wave, st = "pending"|"sent"|"done"|"failed", n = command number,
--    code =, msg =, refusals =, timer =, sent_at =}
-- and each wave counters n, done, failed, open_on (unresolved and online),
-- open_off (unresolved and offline), ack (failures accepted by a resume).

local function new_wave() return {n = 0, done = 0, failed = 0, open_on = 0, open_off = 0, ack = 0} end

local function unresolved(st) return st == "pending" or st == "sent" end

-- Move a record to state `st` (and/or a new online flag) keeping the wave counters.
function Controller:set(ro, rec, st, online)
  local w = ro.wave_stats[rec.w]
  local old_st, old_on = rec.st, rec.on
  if old_st then
    if old_st == "done" then w.done = w.done - 1
    elseif old_st == "failed" then w.failed = w.failed - 1
    elseif old_on then w.open_on = w.open_on - 1
    else w.open_off = w.open_off - 1 end
  else
    w.n = w.n + 1
  end
  rec.st = st or old_st
  if online ~= nil then rec.on = online end
  if rec.st == "done" then w.done = w.done + 1
  elseif rec.st == "failed" then w.failed = w.failed + 1
  elseif rec.on then w.open_on = w.open_on + 1
  else w.open_off = w.open_off + 1 end
  if rec.st == "sent" and old_st ~= "sent" then ro.inflight = ro.inflight + 1
  elseif old_st == "sent" and rec.st ~= "sent" then ro.inflight = ro.inflight - 1 end
  ro.dirty = true
end

-- Is the router part of this rollout (selected, in a wave)? Adds its record.
function Controller:enrol(ro, r)
  local rec = ro.recs[r.rid]
  if rec then return rec end
  if not r.inv then return nil end
  if ro.spec.select and not proto.selects(ro.spec.select, r.inv) then return nil end
  local w = M.wave_of(r.rid, ro.spec)
  if not w then return nil end
  local saved = ro.saved and ro.saved[r.rid]
  rec = {r = r, w = w, n = 0, refusals = 0}
  ro.recs[r.rid] = rec
  ro.nrecs = ro.nrecs + 1
  local st = "pending"
  if saved then
    st, rec.n, rec.code = saved[1], saved[2] or 0, saved[3]
    if st == "sent" then rec.sent_at = self.clock.now() end
  end
  self:set(ro, rec, st, is_online(r))
  if st == "sent" then self:arm_timeout(ro, rec) end
  if st == "failed" then ro.failures[r.rid] = rec end
  -- what the router's retained status says of this rollout wins over the state file
  if r.status then self:on_status(ro, r, r.status) end
  if rec.st == "pending" and r.inv.firmware == ro.spec.to then
    self:set(ro, rec, "done")
  end
  if w <= ro.wave and unresolved(rec.st) and rec.on then self:queue(ro, rec) end
  return rec
end

function Controller:on_inventory(ro, r)
  local rec = self:enrol(ro, r)
  if rec and rec.st == "pending" and r.inv.firmware == ro.spec.to then
    self:set(ro, rec, "done")
    self:progress(ro)
  end
end

function Controller:on_online(ro, r, was)
  local rec = ro.recs[r.rid] or self:enrol(ro, r)
  if not rec then return end
  local now = is_online(r)
  if now == rec.on then return end
  self:set(ro, rec, nil, now)
  if now and not was then
    if rec.st == "sent" then
      -- it may have missed the command while away: the same id again (the agent's
      -- ledger refuses a duplicate), and a fresh deadline
      local st = r.status
      if not (st and st.cmd == self:cmd_id(ro, rec)) then self:send(ro, rec, true) end
      self:arm_timeout(ro, rec)
    elseif rec.st == "pending" and rec.w <= ro.wave then
      self:queue(ro, rec)
    end
  end
  self:progress(ro)
end

--- The id of command number `n` of a rollout to a router: `<rollout>:<rid>:<n>`, or
-- `<rollout>:h<fnv1a32(rid) in hex>:<n>` when that would be over 64 characters.
-- @tparam string ro_id rollout id
-- @tparam string rid router id
-- @tparam integer n
-- @treturn string
function M.cmd_id(ro_id, rid, n)
  local id = fmt("%s:%s:%d", ro_id, rid, n)
  if #id > 64 then   -- a long router id: its hash keeps the id unique and under 64
    id = fmt("%s:h%08x:%d", ro_id, policy.fnv1a32(rid), n)
  end
  return id
end

function Controller:cmd_id(ro, rec) return M.cmd_id(ro.spec.id, rec.r.rid, rec.n) end

function Controller:on_status(ro, r, st)
  local rec = ro.recs[r.rid]
  if not rec or st.rollout ~= ro.spec.id then return end
  local ro_id, _, n = proto.parse_rollout_cmd_id(st.cmd)
  if ro_id ~= ro.spec.id or not n or st.cmd ~= M.cmd_id(ro_id, r.rid, n) then return end
  if n < rec.n then return end       -- an older attempt's status
  if n > rec.n then rec.n = n end    -- known from the agent (no state file)
  local res = st.result
  if res and (st.phase == "done" or st.phase == "failed") then
    if rec.timer then rec.timer:cancel(); rec.timer = nil end
    if rec.st == "done" then return end
    if rec.st == "failed" then
      -- a late result after the deadline corrects ETIMEDOUT (a halt it caused stays)
      if not (rec.code == "ETIMEDOUT" and n == rec.n) then return end
      ro.failures[r.rid] = nil
    end
    if res.ok then
      self:set(ro, rec, "done")
    else
      rec.code = res.code or res.outcome or "EFAIL"
      rec.msg = res.message
      self:set(ro, rec, "failed")
      ro.failures[r.rid] = rec
      self:check_halt(ro, rec.w, false)
    end
    self:progress(ro)
  elseif unresolved(rec.st) then
    if rec.st ~= "sent" then self:set(ro, rec, "sent"); rec.sent_at = self.clock.now() end
    self:arm_timeout(ro, rec)   -- any news of the command restarts its deadline
  end
end

function Controller:on_reply(ro, r, m)
  local rec = ro.recs[r.rid]
  if not rec or rec.st ~= "sent" or m.id ~= self:cmd_id(ro, rec) or m.accepted then return end
  if m.reason and m.reason:find("duplicate") then return end
  rec.refusals = rec.refusals + 1
  if rec.timer then rec.timer:cancel(); rec.timer = nil end
  if rec.refusals >= self.max_refusals then
    rec.code, rec.msg = "EREFUSED", m.reason
    self:set(ro, rec, "failed")
    ro.failures[r.rid] = rec
    self:check_halt(ro, rec.w, false)
    self:progress(ro)
    return
  end
  self:set(ro, rec, "pending")
  rec.retry_at = self.clock.now() + self.retry_delay
  self.clock.timer(self.retry_delay, function()
    if rec.st == "pending" and rec.on and not ro.stopped then self:queue(ro, rec); self:dispatch(ro) end
  end)
  self:dispatch(ro)
end

function Controller:arm_timeout(ro, rec)
  if rec.timer then rec.timer:cancel() end
  rec.timer = self.clock.timer(self.result_timeout, function()
    rec.timer = nil
    if rec.st ~= "sent" or ro.stopped then return end
    if not rec.on then return end     -- offline: counted apart, re-armed on return
    rec.code = "ETIMEDOUT"
    rec.msg = fmt("no result within %d s of the command", self.result_timeout)
    self:set(ro, rec, "failed")
    ro.failures[rec.r.rid] = rec
    self:check_halt(ro, rec.w, false)
    self:progress(ro)
  end)
end

-- Routers to command go into one queue per UTC offset (one window state each).
function Controller:queue(ro, rec)
  if rec.queued then return end
  rec.queued = true
  local off = rec.r.inv and rec.r.inv.utc_offset or 0
  local q = ro.queues[off]
  if not q then
    q = {head = 1, tail = 0, off = off}
    ro.queues[off] = q
    ro.qlist[#ro.qlist + 1] = q
  end
  q.tail = q.tail + 1
  q[q.tail] = rec
end

function Controller:send(ro, rec, again)
  if not again then
    rec.n = rec.n + 1
    rec.sent_at = self.clock.now()
    self:set(ro, rec, "sent")
    self:arm_timeout(ro, rec)
  end
  local m = assert(proto.build("cmd", {id = self:cmd_id(ro, rec), op = "upgrade",
                                       to = ro.spec.to, rollout = ro.spec.id}))
  local payload = assert(proto.encode(m))
  local ok, err = self.bus:publish(proto.topic(rec.r.rid, "cmd"), payload, {qos = 1})
  ro.sent = ro.sent + 1
  if not ok then
    -- the bus is away: the command is kept as sent; it goes again when the router
    -- comes back online or the deadline passes
    self.log("warn", fmt("%s: command not sent: %s", rec.r.rid, tostring(err)))
  end
  ro.peak = math.max(ro.peak, ro.inflight)
end

-- Send commands to queued routers while the rollout runs and capacity allows.
function Controller:dispatch(ro)
  if ro.state ~= "running" and ro.state ~= "done" or not self.ready or ro.stopped then return end
  local cap = ro.spec.concurrency
  local now = self.clock.now()
  local w = ro.window
  for _, q in ipairs(ro.qlist) do
    if q.head <= q.tail and in_window(w, now, q.off) then
      while q.head <= q.tail do
        if cap and ro.inflight >= cap then return end
        local rec = q[q.head]
        q[q.head] = nil
        q.head = q.head + 1
        rec.queued = false
        if rec.st == "pending" and rec.on and rec.w <= ro.wave
           and not (rec.retry_at and rec.retry_at > now) then
          self:send(ro, rec)
        end
      end
    end
  end
end

-- Failures a wave may have: the halting rule.
function Controller:check_halt(ro, k, at_end)
  if ro.state ~= "running" and ro.state ~= "done" then return end
  local w = ro.wave_stats[k]
  local failed = w.failed - w.ack
  local limit = ro.spec.max_failure_rate
  local over, rate
  if at_end then
    local results = w.done + w.failed - w.ack
    rate = results > 0 and failed / results or 0
    over = rate > limit
  else
    over = failed > limit * w.n and failed > 0
    rate = w.n > 0 and failed / w.n or 0
  end
  if over then
    local why = fmt("wave %d: %d of %d routers failed (%.2f%% %s, limit %.2f%%)", k, failed,
                    at_end and (w.done + w.failed - w.ack) or w.n, rate * 100,
                    at_end and "of the results" or "of the wave already", limit * 100)
    self:halt(ro.spec.id, why, k)
  end
end

-- After a change: end the wave when it is complete, start the next, publish.
function Controller:progress(ro)
  if ro.state == "running" and self.ready then
    while true do
      local w = ro.wave_stats[ro.wave]
      if w.open_on > 0 then break end
      self:check_halt(ro, ro.wave, true)
      if ro.state ~= "running" then break end
      ro.ended[ro.wave] = ro.ended[ro.wave] or self.clock.now()
      self.log("info", fmt("rollout %s: wave %d ended: %d done, %d failed, %d offline",
                           ro.spec.id, ro.wave, w.done, w.failed, w.open_off))
      if ro.wave >= #ro.spec.waves then
        ro.state = "done"
        ro.reason = fmt("all %d waves passed", #ro.spec.waves)
        ro.finished = self.clock.now()
        self.on_event("done", self:state(ro.spec.id))
        break
      end
      self:start_wave(ro, ro.wave + 1)
    end
  end
  self:dispatch(ro)
  self:publish_later(ro)
end

function Controller:start_wave(ro, k)
  ro.wave = k
  ro.started_at[k] = ro.started_at[k] or self.clock.now()
  for _, rid in ipairs(sorted_keys(ro.recs)) do
    local rec = ro.recs[rid]
    if rec.w == k and rec.st == "pending" and rec.on then self:queue(ro, rec) end
  end
  self.log("info", fmt("rollout %s: wave %d (%s%%) starts: %d routers", ro.spec.id, k,
                       tostring(ro.spec.waves[k]), ro.wave_stats[k].n))
  self.on_event("wave", self:state(ro.spec.id))
end

-- (Re)start a rollout's activity: enrol the known routers, start its wave.
function Controller:kick(ro)
  if not self.ready or ro.stopped then return end
  for _, rid in ipairs(sorted_keys(self.routers)) do self:enrol(ro, self.routers[rid]) end
  if not ro.started_at[ro.wave] and ro.state == "running" then
    ro.started_at[ro.wave] = self.clock.now()
    self.log("info", fmt("rollout %s: wave %d (%s%%) starts: %d routers", ro.spec.id, ro.wave,
                         tostring(ro.spec.waves[ro.wave]), ro.wave_stats[ro.wave].n))
    self.on_event("wave", self:state(ro.spec.id))
  end
  if ro.state == "running" then
    for _, rid in ipairs(sorted_keys(ro.recs)) do
      local rec = ro.recs[rid]
      if rec.w <= ro.wave and rec.st == "pending" and rec.on then self:queue(ro, rec) end
    end
    for k = 1, ro.wave do self:check_halt(ro, k, false) end
  end
  self:progress(ro)
end

local function new_rollout(spec)
  local ro = {spec = spec, state = "running", wave = 1, recs = {}, nrecs = 0,
              wave_stats = {}, failures = {}, inflight = 0, queues = {}, qlist = {},
              started_at = {}, ended = {}, sent = 0, peak = 0, rev = 0}
  for k = 1, #spec.waves do ro.wave_stats[k] = new_wave() end
  ro.window = spec.window and assert(M.parse_window(spec.window)) or nil
  return ro
end

--- Start a rollout, or take up the one with the same id from its saved or retained
-- state (then `spec` may hold only `id`; a different `to` is an error).
-- @tparam table spec see the module doc
-- @treturn table the rollout's state (`state`), or nil, message, code
function Controller:rollout(spec)
  if type(spec) ~= "table" then argerr("rollout: spec must be a table") end
  local id = spec.id
  if self.rollouts[id] then return nil, fmt("rollout %s is already running here", id), "EEXIST" end
  local prev
  if self.store and proto.valid_rollout_id(id) then
    local text = self.store.load(id)
    if text then
      local st, msg = json.decode(text)
      if type(st) ~= "table" or st.type ~= "rollout" or st.id ~= id then
        return nil, fmt("rollout %s: the state file is unreadable: %s", id,
                        tostring(msg or "not a rollout state")), "EPROTO"
      end
      prev = st
    end
  end
  prev = prev or self.adopted[id]
  local s = spec
  if prev then
    if spec.to and spec.to ~= prev.to then
      return nil, fmt("rollout %s exists with to=%s (asked: %s): choose another --id", id,
                      tostring(prev.to), spec.to), "EEXIST"
    end
    s = {id = id, to = prev.to, waves = prev.waves, max_failure_rate = prev.max_failure_rate,
         window = prev.window, concurrency = prev.concurrency, select = prev.select,
         salt = prev.salt}
  end
  local checked, msg, code = M.check_spec(s)
  if not checked then return nil, msg, code end
  local ro = new_rollout(checked)
  if prev then
    ro.state = prev.state == "done" and "running" or prev.state or "running"
    ro.reason = prev.reason
    ro.wave = math.min(math.max(1, math.tointeger(prev.wave) or 1), #checked.waves)
    ro.rev = prev.rev or 0
    ro.saved = type(prev.routers) == "table" and prev.routers or nil
    for k, w in ipairs(type(prev.waves_stats) == "table" and prev.waves_stats or {}) do
      if ro.wave_stats[k] and type(w.ack) == "number" then ro.wave_stats[k].ack = w.ack end
      if type(w.started) == "number" then ro.started_at[k] = w.started end
      if type(w.ended) == "number" then ro.ended[k] = w.ended end
    end
    ro.created = prev.created
    self.log("info", fmt("rollout %s: taken up at wave %d, %s", id, ro.wave, ro.state))
  end
  ro.created = ro.created or self.clock.now()
  self.rollouts[id] = ro
  self:kick(ro)
  ro.dirty = true
  self:publish_later(ro, 0)
  return self:state(id)
end

--- Halt a rollout: no more commands until `resume`.
-- @tparam string id
-- @tparam[opt] string reason
-- @tparam[opt] integer wave the wave that caused it (default the current one)
-- @return true, or nil, message, `"ENOENT"`
function Controller:halt(id, reason, wave)
  local ro = self.rollouts[id]
  if not ro then return nil, fmt("no rollout %s here", tostring(id)), "ENOENT" end
  if ro.state == "halted" then return true end
  ro.state = "halted"
  ro.reason = reason or "halted by operator"
  ro.halted_wave = wave or ro.wave
  ro.halted_at = self.clock.now()
  self.log("notice", fmt("rollout %s halted: %s", id, ro.reason))
  ro.dirty = true
  self:publish_later(ro, 0)
  self.on_event("halt", self:state(id))
  return true
end

--- Resume a halted rollout. The failures so far are accepted (they no longer count
-- against the limit); with `retry_failed` the failed routers get a new command.
-- @tparam string id
-- @tparam[opt] table opts `{retry_failed = bool}`
-- @return true, or nil, message, code
function Controller:resume(id, opts)
  local ro = self.rollouts[id]
  if not ro then return nil, fmt("no rollout %s here", tostring(id)), "ENOENT" end
  if ro.state ~= "halted" then
    return nil, fmt("rollout %s is %s, not halted", id, ro.state), "EINVAL"
  end
  local retry = opts and opts.retry_failed
  for _, rid in ipairs(sorted_keys(ro.failures)) do
    local rec = ro.failures[rid]
    if retry and rec.st == "failed" then
      rec.code, rec.msg, rec.refusals = nil, nil, 0
      self:set(ro, rec, "pending")
      ro.failures[rid] = nil
      if rec.w <= ro.wave and rec.on then self:queue(ro, rec) end
    end
  end
  for _, w in ipairs(ro.wave_stats) do w.ack = w.failed end
  ro.state = "running"
  ro.reason = nil
  self.log("info", fmt("rollout %s resumed", id))
  self.on_event("resume", self:state(id))
  self:progress(ro)
  return true
end

--- A rollout's state as a table (what is published, plus `routers` when `full`).
-- @tparam string id
-- @tparam[opt] boolean full include every router's `{state, n, code}` (the state file)
-- @treturn table|nil
function Controller:state(id, full)
  local ro = self.rollouts[id]
  if not ro then return nil end
  local s = ro.spec
  local st = {v = 1, type = "rollout", id = s.id, to = s.to, waves = s.waves,
              max_failure_rate = s.max_failure_rate, window = s.window,
              concurrency = s.concurrency, select = s.select, salt = s.salt,
              state = ro.state, reason = ro.reason, wave = ro.wave, rev = ro.rev,
              created = ro.created, updated = self.clock.now(), finished = ro.finished,
              inflight = ro.inflight, peak_inflight = ro.peak, commands = ro.sent,
              routers_total = ro.nrecs, waves_stats = {}}
  local tot = {done = 0, failed = 0, offline = 0, open = 0}
  for k, w in ipairs(ro.wave_stats) do
    st.waves_stats[k] = {percent = s.waves[k], routers = w.n, done = w.done,
                         failed = w.failed, offline = w.open_off, open = w.open_on,
                         ack = w.ack, started = ro.started_at[k], ended = ro.ended[k]}
    tot.done, tot.failed = tot.done + w.done, tot.failed + w.failed
    tot.offline, tot.open = tot.offline + w.open_off, tot.open + w.open_on
  end
  st.totals = tot
  local fl, n = {}, 0
  for _, rid in ipairs(sorted_keys(ro.failures)) do
    local rec = ro.failures[rid]
    if rec.st == "failed" then
      n = n + 1
      if full or n <= MAX_LISTED then
        fl[#fl + 1] = {router = rid, wave = rec.w, code = rec.code, message = rec.msg}
      end
    end
  end
  st.failures, st.failures_total = fl, n
  if full then
    local rs = {}
    for rid, rec in pairs(ro.recs) do
      if rec.st ~= "pending" or rec.n > 0 then rs[rid] = {rec.st, rec.n, rec.code} end
    end
    st.routers = rs
  end
  return st
end

--- Every rollout this controller runs.
-- @treturn table list of states
function Controller:states()
  local out = {}
  for _, id in ipairs(sorted_keys(self.rollouts)) do out[#out + 1] = self:state(id) end
  return out
end

--- The routers' inventories (the IMEI list), sorted by router id.
-- @treturn table list of `{router, model, imei, firmware, country, location, site, online}`
function Controller:inventory()
  local out = {}
  for _, rid in ipairs(sorted_keys(self.routers)) do
    local r = self.routers[rid]
    if r.inv then
      local i = r.inv
      out[#out + 1] = {router = rid, model = i.model, imei = i.imei, firmware = i.firmware,
                       country = i.country, location = i.location, site = i.site,
                       online = is_online(r), fota_state = i.fota_state,
                       phase = r.status and r.status.phase or nil}
    end
  end
  return out
end

-- Publish (retained) and save the state, at most every publish_interval seconds.
function Controller:publish_later(ro, delay)
  if ro.pub_timer or ro.stopped then return end
  ro.pub_timer = self.clock.timer(delay or self.publish_interval, function()
    ro.pub_timer = nil
    if ro.dirty then self:publish_now(ro) end
  end)
end

--- Publish a rollout's state now (retained) and save it to the store.
-- @tparam string|table ro the rollout id (or the rollout)
-- @return true, or nil, message, code
function Controller:publish_now(ro)
  if type(ro) == "string" then ro = self.rollouts[ro] end
  if not ro then return nil, "no such rollout", "ENOENT" end
  ro.dirty = false
  ro.rev = ro.rev + 1
  local st = self:state(ro.spec.id)
  local payload, msg, code = json.encode(st)
  while payload and #payload > proto.MAX_PAYLOAD and #st.failures > 0 do
    st.failures[#st.failures] = nil
    payload, msg, code = json.encode(st)
  end
  if not payload then return nil, msg, code end
  local ok, err, ecode = self.bus:publish(proto.rollout_topic(ro.spec.id), payload,
                                          {retain = true, qos = 1})
  if not ok then
    ro.dirty = true
    self.log("warn", fmt("rollout %s: state not published: %s", ro.spec.id, tostring(err)))
  end
  if self.store then
    local full = self:state(ro.spec.id, true)
    full.rev = ro.rev
    local text = assert(json.encode(full))
    local sok, serr = self.store.save(ro.spec.id, text)
    if not sok then
      self.log("err", fmt("rollout %s: state file not written: %s", ro.spec.id, tostring(serr)))
      return nil, serr, "EIO"
    end
  end
  self.on_event("publish", st)
  if not ok then return nil, err, ecode end
  return true
end

return M
