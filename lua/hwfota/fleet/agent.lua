--- hwfota.fleet.agent: the agent on the router (issue 16).
--
-- One agent drives one module for the fleet: it publishes the module's
-- `inventory`, its `status` and `online` flag (retained) under `hwfota/<rid>/`,
-- takes commands from `hwfota/<rid>/cmd` and from `hwfota/fleet/cmd` (with a
-- selector), and runs them with the library's own flow (`hwfota.run`, under the
-- journal): check, download, upgrade [to], a named policy, cancel, report.
--
-- It talks only through a Bus (`hwfota.fleet.mqtt_bus` in the field,
-- `hwfota.fleet.membus` in the specs) and the poll loop: each accepted command
-- is one `hwfota.spawn` task, everything else runs in the bus callbacks. A
-- command while a run is busy is refused ("busy"), never queued; a command id
-- seen before is refused ("duplicate") and never run again: the ids (the last
-- 64, with their outcome) are kept in the command ledger `<journal>.agent`,
-- part of the journal (written atomically like it, read with a strict parser).
-- The run goes on while the broker is away; the last status is published again
-- (retained) on every reconnection, so the final result is never lost.
--
-- @module hwfota.fleet.agent

local proto = require "hwfota.fleet.proto"

local M = {}

--- Most command ids the ledger keeps (the oldest are forgotten first).
M.LEDGER_MAX = 64

--- Seconds between two progress-only status messages (at least).
M.PROGRESS_EVERY = 5

local OPS = {check = true, download = true, upgrade = true, policy = true, cancel = true,
             report = true}
-- The operations that run a FOTA flow (the others act on the agent itself).
local FLOW_OPS = {check = true, download = true, upgrade = true, policy = true}

-- The flow's phases (csrc/fota_fsm.h) as the status message's phases.
local PHASES = {probe = "checking", prepare = "checking", configure = "checking",
                detect = "checking", decide_download = "checking",
                download = "downloading", paused = "downloading", recover = "downloading",
                downloaded = "downloading", decide_upgrade = "downloading",
                upgrade = "upgrading", reboot = "upgrading", verify = "upgrading",
                discard = "upgrading"}

local ID_PATTERN = "^[A-Za-z0-9_.:%-]+$"
local NAME_PATTERN = "^[A-Za-z0-9_%-]+$"

local function valid_id(s)
  return type(s) == "string" and #s >= 1 and #s <= 64 and s:match(ID_PATTERN) ~= nil
end

local function valid_arg(s)
  return type(s) == "string" and #s >= 1 and #s <= 64 and s:match("^[0-9A-Za-z._+%-]+$") ~= nil
end

-- == The command ledger (<journal>.agent) ==
--
-- Text, one header line and one line per command id, oldest first:
--   hwfota-agent-ledger 1
--   <id> <op> <outcome> <arg|-> <rollout|->
-- id and rollout as command ids, op one of OPS, outcome [a-z_]{1,24}, arg the
-- command's `to` (upgrade) or `policy` (policy), [0-9A-Za-z._+-]{1,64}. It is a file on flash: anything else
-- (a longer file, more than LEDGER_MAX lines, a byte out of place) is refused as
-- a whole, never half-read.

local LEDGER_HEADER = "hwfota-agent-ledger 1"
local LEDGER_MAX_BYTES = #LEDGER_HEADER + 1 + 64 * (64 + 1 + 8 + 1 + 24 + 1 + 64 + 1 + 64 + 1)

--- Parse a ledger's text (strict).
-- @tparam string text
-- @treturn table array of `{id=, op=, outcome=, arg=, rollout=}`, oldest first
-- @return or `nil, message`
function M.parse_ledger(text)
  if type(text) ~= "string" then
    error(("bad argument #1 to 'parse_ledger' (string expected, got %s)"):format(type(text)), 2)
  end
  if #text > LEDGER_MAX_BYTES then
    return nil, ("the ledger is %d bytes (at most %d)"):format(#text, LEDGER_MAX_BYTES)
  end
  if text:sub(-1) ~= "\n" then return nil, "the ledger does not end with a line end" end
  local entries, n = {}, 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    if n == 1 then
      if line ~= LEDGER_HEADER then return nil, "the ledger's first line is not " .. LEDGER_HEADER end
    else
      local id, op, outcome, arg, rollout = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+)$")
      if not id or not valid_id(id) or not OPS[op] or not outcome:match("^[a-z_]+$")
         or #outcome > 24 or not (arg == "-" or valid_arg(arg))
         or not (rollout == "-" or valid_id(rollout)) then
        return nil, ("the ledger's line %d is malformed"):format(n)
      end
      if #entries >= M.LEDGER_MAX then
        return nil, ("the ledger has more than %d entries"):format(M.LEDGER_MAX)
      end
      entries[#entries + 1] = {id = id, op = op, outcome = outcome,
                               arg = arg ~= "-" and arg or nil,
                               rollout = rollout ~= "-" and rollout or nil}
    end
  end
  if n == 0 then return nil, "the ledger is empty" end
  return entries
end

--- The text of a ledger (`parse_ledger` reads it back).
-- @tparam table entries as `parse_ledger` returns (the last `LEDGER_MAX` are kept)
-- @treturn string
function M.format_ledger(entries)
  local out = {LEDGER_HEADER}
  for i = math.max(1, #entries - M.LEDGER_MAX + 1), #entries do
    local e = entries[i]
    out[#out + 1] = ("%s %s %s %s %s"):format(e.id, e.op, e.outcome, e.arg or "-", e.rollout or "-")
  end
  return table.concat(out, "\n") .. "\n"
end

-- == The agent ==

local Agent = {}
Agent.__index = Agent

local function default_log(level, msg)
  io.stderr:write(("hwfota agent: %s: %s\n"):format(level, msg))
end

--- Create an agent (not started: see `Agent:start`).
-- @tparam table cfg `bus` (a Bus, required), `router` (router id, required:
--   `[A-Za-z0-9_-]{1,64}`), `port` (the module's AT port path, required),
--   `options` (the `hwfota.run`/`hwfota.session` options; `journal` is required:
--   the command ledger is `<journal>.agent`), `clock` (`{now=, timer=}`, default
--   `hwfota.now`/`hwfota.timer`), `wall` (epoch seconds for the messages' `time`,
--   default `os.time`), `site`, `country`, `location` (strings or nil),
--   `policies` (directory of named policies `<NAME>.lua`; without it the op
--   `policy` is refused), `allow` (set of allowed ops, default all),
--   `hwfota` (the library, default `require "hwfota"`), `log(level, message)`
-- @treturn Agent or `nil, message, code`: `"EINVAL"` (a bad router id, no
--   journal, an unknown op in `allow`), `"EJOURNAL"` (the ledger's path is a
--   device, FIFO, directory or symbolic link)
function M.new(cfg)
  if type(cfg) ~= "table" then
    error(("bad argument #1 to 'new' (table expected, got %s)"):format(type(cfg)), 2)
  end
  if type(cfg.bus) ~= "table" then error("agent.new: cfg.bus must be a Bus", 2) end
  if type(cfg.port) ~= "string" then error("agent.new: cfg.port must be the module's port path", 2) end
  if type(cfg.router) ~= "string" or not proto.valid_router_id(cfg.router) then
    return nil, ("the router id %q is not 1-64 of A-Z a-z 0-9 _ -"):format(tostring(cfg.router)), "EINVAL"
  end
  local opts = cfg.options or {}
  if type(opts.journal) ~= "string" or opts.journal == "" then
    return nil, "the agent needs a journal (its command ledger is kept next to it, as <journal>.agent)", "EINVAL"
  end
  for _, k in ipairs{"site", "country", "location", "policies"} do
    if cfg[k] ~= nil and type(cfg[k]) ~= "string" then
      error(("agent.new: cfg.%s must be a string (got %s)"):format(k, type(cfg[k])), 2)
    end
  end
  local hw = cfg.hwfota or require "hwfota"
  local clock = cfg.clock or {now = hw.now, timer = hw.timer}
  local allow = {}
  for op in pairs(OPS) do allow[op] = true end
  if cfg.allow then
    allow = {}
    for _, op in ipairs(cfg.allow) do
      if not OPS[op] then return nil, ("unknown op %q in allow (ops: check, download, upgrade, policy, cancel, report)"):format(tostring(op)), "EINVAL" end
      allow[op] = true
    end
  end
  local self = setmetatable({
    bus = cfg.bus, hw = hw, clock = clock, wall = cfg.wall or os.time,
    router = cfg.router, port = cfg.port, opts = opts,
    site = cfg.site, country = cfg.country, location = cfg.location,
    policies = cfg.policies, allow = allow, log = cfg.log or default_log,
    ledger_path = opts.journal .. ".agent", ledger = {}, seen = {},
    topics = {cmd = proto.topic(cfg.router, "cmd"), fleet = proto.FLEET_CMD},
    status = {phase = "idle"}, running = nil,
  }, Agent)
  local lok, lmsg = self:load_ledger()
  if not lok then return nil, lmsg, "EJOURNAL" end
  return self
end

-- Read the ledger at start. A missing file is an empty ledger; an unreadable or
-- malformed one is logged and replaced by an empty one at the next command (the
-- FOTA journal still keeps AT^FWUP from going out twice). Commands the ledger
-- says were running when the agent stopped are marked "interrupted".
function Agent:load_ledger()
  local ok, why = self.hw.core.check_file_path(self.ledger_path)
  if not ok then
    return nil, ("the command ledger %s cannot be used: %s"):format(self.ledger_path, why)
  end
  local text = self.hw.core.read_file(self.ledger_path, LEDGER_MAX_BYTES + 1)
  if text == nil then return true end
  local entries, msg = M.parse_ledger(text)
  if not entries then
    self.log("warning", ("ignoring the command ledger %s: %s"):format(self.ledger_path, msg))
    return true
  end
  for _, e in ipairs(entries) do
    if e.outcome == "running" then
      e.outcome = "interrupted"
      if FLOW_OPS[e.op] then self.resume_entry = e end
    end
    self.seen[e.id] = e
  end
  self.ledger = entries
  return true
end

function Agent:save_ledger()
  while #self.ledger > M.LEDGER_MAX do
    local old = table.remove(self.ledger, 1)
    if self.seen[old.id] == old then self.seen[old.id] = nil end
  end
  local ok, msg = self.hw.core.write_file_atomic(self.ledger_path, M.format_ledger(self.ledger))
  if not ok then
    self.log("error", ("cannot write the command ledger %s: %s"):format(self.ledger_path, tostring(msg)))
  end
  return ok, msg
end

-- Record a command id (outcome "running", "refused" ...) before anything is done.
function Agent:record(cmd, outcome)
  local arg = cmd.op == "policy" and cmd.policy or cmd.to
  local e = {id = cmd.id, op = cmd.op, outcome = outcome, arg = valid_arg(arg) and arg or nil,
             rollout = cmd.rollout}
  self.ledger[#self.ledger + 1] = e
  self.seen[e.id] = e
  return e, self:save_ledger()
end

function Agent:publish(kind, fields, retain)
  local msg, bmsg = proto.build(kind, fields)
  local payload, emsg = msg and proto.encode(msg)
  if not payload then
    self.log("error", ("cannot encode the %s message: %s"):format(kind, tostring(bmsg or emsg)))
    return nil, bmsg or emsg
  end
  if not self.bus:connected() then return nil, "not connected" end
  local ok, pmsg = self.bus:publish(proto.topic(self.router, kind), payload,
                                    {retain = retain, qos = 1})
  if not ok then self.log("warning", ("publish %s: %s"):format(kind, tostring(pmsg))) end
  return ok, pmsg
end

function Agent:publish_online(online)
  return self:publish("online", {online = online, time = self.wall()}, true)
end

-- Seconds east of UTC of this router's local time (the controller's windows).
local function utc_offset(t)
  local l, u = os.date("*t", t), os.date("!*t", t)
  u.isdst = l.isdst
  local off = math.tointeger(os.difftime(os.time(l), os.time(u)))
  if off and off >= -14 * 3600 and off <= 14 * 3600 then return off end
  return nil
end

function Agent:publish_inventory()
  local inv = self.inventory
  if not inv then return nil, "inventory not read yet" end
  return self:publish("inventory", {router = self.router, model = inv.model, imei = inv.imei,
    firmware = inv.firmware, fota_state = inv.fota_state, site = self.site,
    country = self.country, location = self.location, agent = self.hw._VERSION,
    utc_offset = utc_offset(self.wall()), time = self.wall()}, true)
end

function Agent:publish_status()
  local s = self.status
  return self:publish("status", {router = self.router, cmd = s.cmd, rollout = s.rollout,
    phase = s.phase, progress = s.progress, result = s.result, time = self.wall()}, true)
end

function Agent:reply(id, accepted, reason)
  return self:publish("reply", {id = id, accepted = accepted, reason = reason}, false)
end

-- Read the module's identity and state (ATI, AT+CGSN, AT^FOTASTATE?: queries
-- only) through a session. In a task. A module whose IMEI differs from the one
-- read before is logged: another module at this port (its journal then refuses
-- a run, EIDENTITY).
function Agent:read_inventory()
  local s, msg, code = self.hw.session(self.port, self.opts)
  if not s then return nil, msg, code end
  local info, imsg, icode = s:info()
  local st, smsg, scode
  if info then st, smsg, scode = s:state() end
  s:close()
  if not info then return nil, imsg, icode end
  if not st then return nil, smsg, scode end
  if not info.imei or not info.revision then
    return nil, "the module did not tell its IMEI and firmware", "EMODULE"
  end
  if self.inventory and self.inventory.imei ~= info.imei then
    self.log("warning", ("the module at %s changed: IMEI %s, was %s"):format(
      self.port, info.imei, self.inventory.imei))
  end
  self.inventory = {model = info.model or "", imei = info.imei, firmware = info.revision,
                    fota_state = st.code}
  return self.inventory
end

-- Does a fleet command's selector name this router? (Before the module was
-- read, a selector on model or firmware cannot match.)
function Agent:selected(sel)
  local inv = self.inventory or {}
  return proto.selects(sel, {router = self.router, model = inv.model, firmware = inv.firmware,
                             country = self.country, site = self.site})
end

--- Start: install the bus handlers, subscribe to the command topics, read the
-- module (in a task) and publish online, inventory and status.
-- @treturn Agent self
function Agent:start()
  local bus = self.bus
  bus:on_message(function(topic, payload, retained)
    local ok, err = pcall(self.on_message, self, topic, payload, retained)
    if not ok then self.log("error", "command handler failed: " .. tostring(err)) end
  end)
  bus:on_connect(function()
    local ok, err = pcall(self.on_connect, self)
    if not ok then self.log("error", "connect handler failed: " .. tostring(err)) end
  end)
  bus:on_disconnect(function(reason)
    self.log("info", "broker connection lost: " .. tostring(reason))
  end)
  bus:subscribe(self.topics.cmd, {qos = 1})
  bus:subscribe(self.topics.fleet, {qos = 1})
  self.starting = true
  self.hw.spawn(function()
    local inv, msg = self:read_inventory()
    self.starting = false
    if not inv then
      self.module_error = msg
      self.log("error", ("cannot read the module at %s: %s"):format(self.port, tostring(msg)))
    end
    self:publish_inventory()
    self:publish_status()
    if inv then self:resume_interrupted() end
  end)
  if bus:connected() then self:on_connect() end
  return self
end

-- A flow command that was running when the agent stopped (killed, rebooted),
-- while the FOTA journal says an update is under way: run it again under the
-- same id, so the flow resumes from the journal (which never sends AT^FWUP
-- twice) and its result is published. Without a journal record it stays
-- "interrupted" (nothing was under way on the module).
function Agent:resume_interrupted()
  local e = self.resume_entry
  self.resume_entry = nil
  if not e or self.running then return end
  local head = self.hw.core.read_file(self.opts.journal, 16)
  if not head or head == "" then return end
  local cmd = {id = e.id, op = e.op, rollout = e.rollout}
  if e.op == "policy" then cmd.policy = e.arg else cmd.to = e.arg end
  self.log("info", ("resuming command %s (%s): the journal %s says an update is under way")
    :format(e.id, e.op, self.opts.journal))
  e.outcome = "running"
  self:save_ledger()
  self:run(cmd, e)
end

function Agent:on_connect()
  self:publish_online(true)
  self:publish_inventory()
  if not self.starting then self:publish_status() end
end

--- Stop: publish online=false (the clean counterpart of the will) and close the bus.
-- A run still going on is left to finish (its journal keeps it safe).
function Agent:stop()
  if self.bus:connected() then self:publish_online(false) end
  self.bus:close()
end

--- True while a command runs.
-- @treturn boolean
function Agent:busy()
  return self.running ~= nil
end

function Agent:on_message(topic, payload, _retained)
  local fleet
  if topic == self.topics.fleet then fleet = true
  elseif topic ~= self.topics.cmd then return end
  local cmd, msg = proto.decode(payload)
  if not cmd then
    self.log("warning", ("dropped a message on %s: %s"):format(topic, tostring(msg)))
    return
  end
  if cmd.type ~= "cmd" then
    self.log("warning", ("dropped a %s message on %s"):format(tostring(cmd.type), topic))
    return
  end
  if fleet and not self:selected(cmd.select) then return end
  self:command(cmd)
end

-- One decoded command: refuse it (reply accepted=false, reason) or run it.
function Agent:command(cmd)
  local id = cmd.id
  if self.seen[id] then
    self.log("info", ("command %s refused: duplicate (%s)"):format(id, self.seen[id].outcome))
    return self:reply(id, false, "duplicate")
  end
  local why
  if not self.allow[cmd.op] then why = "op not allowed"
  elseif cmd.op == "cancel" then why = not self.running and "idle" or nil
  elseif cmd.op == "report" then why = nil
  elseif self.running or self.starting then why = "busy"
  elseif self.module_error and not self.inventory then why = "module unavailable: " .. self.module_error
  elseif cmd.op == "policy" then why = self:policy_error(cmd.policy)
  end
  if why then
    self:record(cmd, "refused")
    self.log("info", ("command %s (%s) refused: %s"):format(id, cmd.op, why))
    return self:reply(id, false, why)
  end
  if cmd.op == "cancel" then
    self:record(cmd, "done")
    self:reply(id, true)
    local ok, cmsg = self.running.control and self.running.control.cancel()
    if not ok then self.log("warning", "cancel: " .. tostring(cmsg or "the run has not started")) end
    self.running.cancelled = true
    return
  end
  if cmd.op == "report" then
    self:record(cmd, "done")
    self:reply(id, true)
    if self.running then
      self:publish_inventory()
      self:publish_status()
    else
      self.running = {cmd = cmd}
      self.hw.spawn(function()
        local ok, err = pcall(function()
          local inv, msg = self:read_inventory()
          if not inv then self.log("warning", "report: " .. tostring(msg)) end
          self:publish_inventory()
          self:publish_status()
        end)
        self.running = nil
        if not ok then self.log("error", "report failed: " .. tostring(err)) end
      end)
    end
    return
  end
  -- recorded before it runs: a ledger that cannot be written would let a
  -- redelivery after a crash run it again, so the command is refused
  local entry, saved, smsg = self:record(cmd, "running")
  if not saved then
    entry.outcome = "refused"
    return self:reply(id, false, ("cannot record the command: %s"):format(tostring(smsg)):sub(1, 200))
  end
  self:reply(id, true)
  self:run(cmd, entry)
end

-- Why a policy name cannot be used (nil: it can). Only a file of the configured
-- directory, named by [A-Za-z0-9_-]{1,64}: never a path from the message.
function Agent:policy_error(name)
  if not self.policies then return "no policies directory configured" end
  if type(name) ~= "string" or #name > 64 or not name:match(NAME_PATTERN) then
    return "bad policy name (1-64 of A-Z a-z 0-9 _ -)"
  end
  return nil
end

function Agent:load_policy(name)
  local path = self.policies .. "/" .. name .. ".lua"
  local chunk, err = loadfile(path, "t")
  if not chunk then return nil, "cannot load the policy " .. name .. ": " .. tostring(err) end
  local ok, policy = pcall(chunk)
  if not ok or type(policy) ~= "table" then
    return nil, ("the policy %s %s"):format(name, ok and ("returned a " .. type(policy)) or ("failed: " .. tostring(policy)))
  end
  return policy
end

function Agent:set_status(fields, force)
  local s = self.status
  for k, v in pairs(fields) do s[k] = v end
  if fields.phase ~= nil or force then
    self.last_status_at = self.clock.now()
    return self:publish_status()
  end
  local now = self.clock.now()
  if self.last_status_at and now - self.last_status_at < M.PROGRESS_EVERY then return end
  self.last_status_at = now
  return self:publish_status()
end

-- The policy a command runs under, and how its report becomes a result.
local function flow_policy(self, cmd, run_state)
  if cmd.op == "check" then
    return {on_new_version = function(info)
      run_state.offer = info
      return "reject", nil, "check only looks"
    end}
  elseif cmd.op == "download" then
    return {on_new_version = function() return "download" end,
            on_downloaded = function() return "keep_until_reboot" end}
  elseif cmd.op == "upgrade" then
    return {on_new_version = function(info)
      if cmd.to and info.version ~= cmd.to then
        run_state.wrong_offer = info.version
        return "reject", nil, ("the offer %s is not %s"):format(tostring(info.version), cmd.to)
      end
      return "download"
    end, on_downloaded = function() return "upgrade" end}
  end
  return run_state.policy
end

local function result_of(cmd, r, run_state)
  local res = {ok = false, outcome = r.status, code = r.code, message = r.message,
               from = r.from, to = r.to or r.version}
  if cmd.op == "check" then
    if run_state.offer and r.status == "rejected" then
      res.ok, res.outcome, res.code, res.message = true, "new_version", nil, nil
      res.to = run_state.offer.version
    elseif r.status == "no_new_version" or r.status == "not_newer" then
      res.ok = true
    end
  elseif cmd.op == "download" then
    res.ok = r.status == "deferred" or r.status == "no_new_version" or r.status == "not_newer"
    if r.status == "deferred" then res.outcome = "downloaded" end
  elseif cmd.op == "upgrade" then
    if r.status == "upgraded" then
      res.ok = cmd.to == nil or r.to == cmd.to
    elseif run_state.wrong_offer then
      res.outcome, res.code = "deferred", "EOFFER"
      res.message = ("the server offered %s, not %s"):format(tostring(run_state.wrong_offer), cmd.to)
      res.to = run_state.wrong_offer
    elseif r.status == "no_new_version" or r.status == "not_newer" then
      res.ok = cmd.to == nil
    end
  else
    res.ok = r.status ~= "failed"
  end
  if run_state.cancelled and not res.ok then res.outcome, res.code = "cancelled", res.code or "ECANCELED" end
  return res
end

-- Run a flow command in its own task.
function Agent:run(cmd, entry)
  local run_state = {cmd = cmd}
  self.running = run_state
  self.status = {cmd = cmd.id, rollout = cmd.rollout}
  self:set_status({phase = "busy"})
  self.hw.spawn(function()
    local ok, res = pcall(self.flow, self, cmd, run_state)
    if not ok then
      self.log("error", ("command %s failed: %s"):format(cmd.id, tostring(res)))
      res = {ok = false, outcome = "failed", code = "EINTERNAL", message = tostring(res)}
    end
    entry.outcome = res.outcome:gsub("[^a-z_]", "_"):sub(1, 24)
    self:save_ledger()
    -- the module after the run, for the inventory (its firmware may be new)
    local inv = self:read_inventory()
    if not inv then self.log("warning", "cannot read the module after the run") end
    self.running = nil
    local result = {ok = res.ok, outcome = res.outcome}
    for _, k in ipairs{"code", "message", "from", "to"} do result[k] = res[k] end
    if result.message then result.message = result.message:sub(1, 1024) end
    self:publish_inventory()
    self.status.progress = nil
    self:set_status({phase = res.ok and "done" or "failed", result = result})
    self.log("info", ("command %s (%s): %s%s"):format(cmd.id, cmd.op, res.outcome,
      res.code and (" " .. res.code) or ""))
  end)
end

function Agent:flow(cmd, run_state)
  if cmd.op == "upgrade" and cmd.to and self.inventory and self.inventory.firmware == cmd.to then
    return {ok = true, outcome = "nothing", from = cmd.to, to = cmd.to,
            message = "the module already runs " .. cmd.to}
  end
  if cmd.op == "policy" then
    local policy, msg = self:load_policy(cmd.policy)
    if not policy then return {ok = false, outcome = "failed", code = "EPOLICY", message = msg} end
    run_state.policy = policy
  end
  local policy = flow_policy(self, cmd, run_state)
  local hooks = {}
  for k, v in pairs(policy) do hooks[k] = v end
  hooks.on_start = function(control)
    run_state.control = control
    if run_state.cancelled then control.cancel() end
    if policy.on_start then return policy.on_start(control) end
  end
  hooks.on_event = function(e, control)
    if e.event == "phase" and PHASES[e.phase] and PHASES[e.phase] ~= self.status.phase then
      self:set_status({phase = PHASES[e.phase]})
    end
    if policy.on_event then return policy.on_event(e, control) end
  end
  hooks.on_progress = function(p, control)
    if p.percent then self:set_status({progress = math.floor(p.percent)}) end
    if policy.on_progress then return policy.on_progress(p, control) end
  end
  for _, k in ipairs{"on_new_version", "on_downloaded"} do
    local f = policy[k]
    if f then
      hooks[k] = function(...)
        if run_state.cancelled then return "reject", nil, "cancelled" end
        return f(...)
      end
    end
  end
  local r = self.hw.run(self.port, hooks, self.opts)
  return result_of(cmd, r, run_state)
end

M.Agent = Agent
return M
