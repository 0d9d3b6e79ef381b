--- hwfota.session: the FOTA flow on one module, driven by the C state machine.
--
-- A *driver* connects one port to one `hwfota.core` FOTA state machine: it
-- carries out the machine's actions (send a command, arm a timer, wait for the
-- port to come back after the module's reset, write the journal, tell the
-- policy) and feeds it what happens (results, `^FOTASTATE` codes, timers, port
-- lost/back, decisions). The driver holds no protocol logic and no safety rule:
-- those are in C. It is a source of `hwfota.loop`, so many drivers share one
-- `poll()`.
--
-- Public entry points are `hwfota.session` and `hwfota.run` (re-exported by
-- `hwfota`); see their documentation in lua/hwfota/init.lua.
--
-- @module hwfota.session

local core = require "hwfota.core"
local identity = require "hwfota.identity"
local loop = require "hwfota.loop"
local reconnect = require "hwfota.reconnect"

local M = {}

--- A FOTA command of the C command table (`core.fota_command`) as a port request.
-- @tparam string name the table's name for it ("state", "fotacfg", "dl_stop" ...)
-- @tparam[opt] table params for "fotacfg" and "fotamode"
-- @tparam[opt] number timeout seconds, instead of the table's (nil: the port's default)
-- @return text, options for `port:command`/`port:send`; or nil, message, "EINVAL" when a
--   parameter breaks the state machine's rule
function M.fota_request(name, params, timeout)
  local c, msg, code = core.fota_command(name, params)
  if not c then return nil, msg, code end
  local opts = {timeout = timeout or c.timeout}
  if c.expect == "none" then opts.expect = "none"
  elseif c.expect == "prefix" then opts.prefix = c.prefix end
  return c.text, opts
end

local JOURNAL_MAX = 4096                     -- bytes read from a journal file

-- Final kinds of the port layer -> finals of the state machine.
local status_final = {
  ETIMEDOUT = "TIMEOUT", EPORTLOST = "PORTLOST", ECLOSED = "PORTLOST",
  ECANCELED = "CANCELLED", EOVERFLOW = "OVERFLOW",
}

local function shallow_copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- == Journal file (an untrusted file: bounded read, parsed strictly in C) ==

-- Read in C: O_NONBLOCK|O_NOFOLLOW and a regular file only, so a FIFO, a device or
-- a symbolic link put where the journal belongs neither blocks nor is read.
-- Returns the text ("" when there is no journal) or nil, message.
local function read_journal(path)
  local data, msg, code = core.read_file(path, JOURNAL_MAX + 1)
  if not data then
    if code == "ENOENT" then return "" end
    return nil, ("journal %s cannot be read: %s"):format(path, msg)
  end
  if #data > JOURNAL_MAX then
    return nil, ("journal %s is larger than %d bytes: not a hwfota journal"):format(path, JOURNAL_MAX)
  end
  return data
end

-- Remove the journal: a regular file only (lstat in C); what else sits at the path
-- (a device, a symbolic link) is refused and left alone. Returns true or nil, message.
local function remove_journal(path)
  local ok, msg = core.remove_file(path)
  if not ok then return nil, ("cannot remove the journal %s: %s"):format(path, msg) end
  return true
end

-- A journal path is a regular file or a name not yet taken in a directory;
-- anything else is refused before the first command (nil, message, "EJOURNAL").
local function check_journal_path(path)
  if not path then return true end
  local ok, msg = core.check_file_path(path)
  if not ok then
    return nil, ("journal %s cannot be used: %s"):format(path, msg), "EJOURNAL"
  end
  return true
end

-- == One FOTA operation per module in this process ==
--
-- Two operations on one module (two tasks running hwfota.run on one port, two
-- sessions, ports opened twice on one path) would each send AT^FWUP. A module is
-- claimed by the canonical path of its port (realpath) for the whole run or
-- session, and by its IMEI once the probe read it; a second claim is EBUSY, as a
-- second process meets the port's lock. Released when the run ends or the
-- session is closed (or collected).

local claims = {}    -- "path:<real path>" | "imei:<imei>" -> owner {what = ...}

local function port_key(port)
  local p = port:path()
  return "path:" .. (core.realpath(p) or p)
end

local function busy_message(key, holder)
  local what = key:match("^imei:(.*)") and ("the module with IMEI " .. key:sub(6))
               or ("the module at " .. key:sub(6))
  return ("%s is already being driven by %s in this process: one FOTA operation per "
          .. "module at a time; wait for it to end (or close that session)")
         :format(what, holder.what)
end

local function release(owner)
  for k, o in pairs(claims) do
    if o == owner then claims[k] = nil end
  end
end

local function claim(key, owner)
  local holder = claims[key]
  if holder and holder ~= owner and holder.port then
    -- a session whose port was closed (but not the session) drives nothing any more
    local _, _, code = holder.port:fileno()
    if code == "ECLOSED" then
      release(holder)
      holder = nil
    end
  end
  if holder and holder ~= owner then return nil, busy_message(key, holder), "EBUSY" end
  claims[key] = owner
  return true
end

-- == Driver ==

local Driver = {}
Driver.__index = Driver

--- Make a driver. `opts` are the state machine's options plus `journal`,
-- `trace` (function(direction, text)) and `setup` (commands sent after every
-- (re)open, default ATE0 and AT+CMEE=2).
local function new_driver(port, policy, opts, attempt)
  local self = setmetatable({
    port = port, policy = policy or {}, opts = opts, attempt = attempt or 1,
    queue = {}, pumping = false, finished = false, cond = loop.condition(), inflight = 0,
    report = {status = nil, events = {}}, handlers = {},
  }, Driver)
  return self
end

--- The run's control: pause/resume/cancel the flow while it runs (from a hook
-- or another task). Each returns true, or nil, message, code when the phase
-- does not allow it (the request never reaches the wire then).
function Driver:control()
  if self.ctl then return self.ctl end
  local d = self
  local function phase() return d.fsm and d.fsm:phase() or "idle" end
  local function request(kind, allowed, what)
    if d.finished then return nil, "the FOTA run is over", "ESTATE" end
    local ph = phase()
    if allowed and not allowed[ph] then
      return nil, ("cannot %s in phase %s"):format(what, ph), "ESTATE"
    end
    d:post{kind = kind}
    return true
  end
  self.ctl = {
    phase = phase,
    pause = function() return request("pause", {download = true}, "pause") end,
    resume = function() return request("resume", {paused = true}, "resume") end,
    cancel = function() return request("cancel", nil, "cancel") end,
    -- the machine's state as journal text (what Session steps carry to the next step)
    snapshot = function() return d.fsm and d.fsm:snapshot() or nil end,
  }
  return self.ctl
end

function Driver:trace(dir, text)
  if self.opts.trace then self.opts.trace(dir, text) end
end

-- loop source interface ---------------------------------------------------

function Driver:ports()
  if self.finished or self.port:is_lost() then return {} end
  return {self.port}
end

-- Every wait has a deadline: a running machine always waits for a command in
-- flight (the port's timeout bounds it), a timer or the port's return. One that
-- waits for none of them, but in phase paused (the caller resumes it), would wait
-- for good: after idle_limit() it is stopped as an internal error (a bug in the
-- machine or the driver, not the module's). (The policy's decisions are answered
-- synchronously, in the same step: hooks run in the loop, not in a task.)
local WAITS_FOR_CALLER = {paused = true}

function Driver:idle_limit()
  return math.max(5, 2 * (self.opts.command_timeout or 30))
end

function Driver:idle()
  return not self.finished and not self.timer_at and not self.reopen_at and self.inflight == 0
         and self.fsm ~= nil and not self.pumping and not WAITS_FOR_CALLER[self.fsm:phase()]
end

function Driver:deadline()
  if self.finished then return nil end
  local d = self.timer_at
  if self.reopen_at and (not d or self.reopen_at < d) then d = self.reopen_at end
  if self:idle() then
    self.idle_since = self.idle_since or core.now()
    return self.idle_since + self:idle_limit()
  end
  self.idle_since = nil
  return d
end

function Driver:fire(now)
  if self.idle_since and self:idle() and now >= self.idle_since + self:idle_limit() then
    return self:finish("failed", {code = "EINTERNAL", phase = self.fsm:phase(), message =
      ("hwfota internal error: in phase %s the state machine waited %g s with no command "
       .. "in flight, no timer and no port to wait for; stopped (the module is left as it "
       .. "is)"):format(self.fsm:phase(), self:idle_limit())})
  end
  if self.reopen_at and now >= self.reopen_at then
    self.reopen_at = nil
    self:try_reopen(now)
  end
  if self.timer_at and now >= self.timer_at then
    self.timer_at = nil
    self:post{kind = "timer"}
  end
end

-- events in ----------------------------------------------------------------

--- Queue an event for the state machine and process it (not re-entrant:
-- an event posted while actions run is processed after them).
function Driver:post(ev)
  if self.finished then return end
  self.queue[#self.queue + 1] = ev
  if self.pumping then return end
  self.pumping = true
  local ok, err = pcall(function()
    while #self.queue > 0 and not self.finished do
      local e = table.remove(self.queue, 1)
      e.now = e.now or core.now()
      self:run_actions(self.fsm:feed(e))
    end
  end)
  self.pumping = false
  if not ok then
    -- a bug, not a module fault: stop driving rather than leave the run hanging
    self.queue = {}
    self:finish("failed", {code = "EINTERNAL", message = "hwfota internal error: " .. tostring(err)})
  end
end

function Driver:on_result(id, command, res, msg, code, detail)
  local ev = {kind = "result", id = id, command = command}
  if res then
    ev.final, ev.lines = "OK", res.lines
    self:trace("response", table.concat(res.lines, "\n") .. (#res.lines > 0 and "\n" or "") .. "OK")
  else
    ev.final = status_final[code] or (detail and detail.kind) or "ERROR"
    if ev.final == "NONE" then ev.final = "ERROR" end
    if detail then
      -- the module's words: the CME text, else the final line (COMMAND NOT SUPPORT)
      local final_line = detail.final ~= "" and detail.final or nil
      ev.lines, ev.code, ev.text = detail.lines, detail.code, detail.text or final_line
    end
    self:trace("response", tostring(msg))
  end
  self:post(ev)
end

-- actions out ----------------------------------------------------------------

function Driver:send(a)
  local opts = {}
  if a.expect == "none" then opts.expect = "none"
  elseif a.expect == "prefix" and a.prefix then opts.prefix = a.prefix end
  if self.opts.command_timeout then opts.timeout = self.opts.command_timeout end
  self:trace("run", a.command)
  local id, cmd = a.id, a.command
  local ok, msg, code = self.port:send(cmd, opts, function(res, m, c, d)
    self.inflight = self.inflight - 1
    self:on_result(id, cmd, res, m, c, d)
  end)
  if ok then self.inflight = self.inflight + 1 end
  if not ok then
    -- refused before the wire (port lost meanwhile, queue full): the machine
    -- hears it as a result, so it never waits for an answer that cannot come
    self:post{kind = "result", id = id, command = cmd,
              final = status_final[code] or "ERROR", text = msg}
  end
end

function Driver:write_journal(a)
  local path = self.opts.journal
  if not path then return true end
  local ok, msg = core.write_file_atomic(path, a.data)
  if not ok then
    return nil, ("cannot write the journal %s: %s"):format(path, msg), "EJOURNAL"
  end
  return true
end

-- A hook that raised: recorded for the report's hook_errors (the first
-- HOOK_ERRORS_MAX of the run; a hook raising on every progress line stays bounded).
local HOOK_ERRORS_MAX = 32
local function note_hook_error(list, name, err)
  if list and #list < HOOK_ERRORS_MAX then
    list[#list + 1] = ("%s: %s"):format(name, tostring(err))
  end
end

-- Call a policy hook protected; returns ok, values... A hook that raises is
-- recorded in `errs` (the run's hook_errors list).
local function call_hook(policy, name, errs, ...)
  local fn = policy[name]
  if fn == nil then return true end
  local res = table.pack(pcall(fn, ...))
  if not res[1] then note_hook_error(errs, name, res[2]) end
  return table.unpack(res, 1, res.n)
end

function Driver:offer_info(a)
  local info = self.fsm:info()
  return {
    from = info.from or info.revision, version = a.version or info.version,
    size = a.size or info.size, description = a.description or info.description,
    imei = info.imei, model = info.model, attempt = self.attempt,
  }
end

-- The answers each decision hook may give (nil: the default, the first one).
local ANSWERS = {
  download = {"download", "defer", "reject"},
  -- keep_until_reboot: the image stays in 40 and the module applies it at its next
  -- reboot; defer and reject discard it (AT^FOTADL=0)
  upgrade = {"upgrade", "defer", "reject", "keep_until_reboot"},
}

function Driver:decide(a)
  local info = self:offer_info(a)
  local hook = a.decision == "upgrade" and "on_downloaded" or "on_new_version"
  local ok, choice, retry_after, reason = call_hook(self.policy, hook, self.opts.hook_errors, info)
  local answers = ANSWERS[a.decision] or ANSWERS.download
  local allowed = {}
  for _, v in ipairs(answers) do allowed[v] = true end
  -- A policy that fails (raises, or answers what is not an answer) must not leave the
  -- module holding an offer (12) or an image (40): the machine discards it ("reject")
  -- and the run reports EPOLICY with the hook's error.
  if not ok then
    self.policy_error = ("policy %s failed: %s"):format(hook, tostring(choice))
    choice = "reject"
  elseif choice == nil then
    choice = answers[1]
  elseif not allowed[choice] then
    self.policy_error = ("policy %s answered %s; expected one of %s (or nil for %s)"):format(
      hook, type(choice) == "string" and ("%q"):format(choice) or tostring(choice),
      table.concat(answers, ", "), answers[1])
    choice = "reject"
  end
  if self.policy_error then retry_after, reason = nil, nil end
  if choice == "defer" or choice == "keep_until_reboot" then
    self.report.retry_after, self.report.reason = retry_after, reason
  elseif choice == "reject" then
    self.report.reason = reason
  end
  self:post{kind = "decision", value = choice}
end

function Driver:emit(a)
  local ev = a.event
  self.report.events[#self.report.events + 1] = a
  if ev == "state" then
    self:trace("state", ("^FOTASTATE: %d (%s)"):format(a.code, a.name))
    local lp = self.last_progress
    local size = self.report.size
    if a.code == 40 and not (lp and lp.percent >= 100) and
       ((lp and lp.total > 0) or (not lp and math.type(size) == "integer" and size > 0)) then
      -- 40: the whole delta is in and verified, but the last AT^FOTADLQ poll came
      -- before the end (or none came: a small delta). on_progress sees the download
      -- finish (100 %), as it happened; the sizes are the module's (or the offer's).
      local files = {}
      for i, f in ipairs(lp and lp.files or {}) do
        files[i] = {index = f.index, name = f.name, done = f.total, total = f.total}
      end
      local total = lp and lp.total or size
      self.last_progress = {files = files, done = total, total = total, percent = 100}
      local ok, err = call_hook(self.policy, "on_progress", self.opts.hook_errors, self.last_progress,
                                self:control())
      if not ok then self:trace("error", "on_progress: " .. tostring(err)) end
    end
  elseif ev == "new_version" then
    self.report.version = a.version
    self.report.size = a.size
    self.report.description = a.description
  elseif ev == "info" then
    self.report.model, self.report.imei = a.model, a.imei
    self.report.from = self.report.from or a.revision
    -- a later attempt of run() on a reopened port: the module must be the one the run
    -- started with (the path may now name another one); nothing more is sent to it
    if self.expect_imei and a.imei and a.imei ~= "" and a.imei ~= self.expect_imei then
      return self:finish("failed", {code = "EIDENTITY", phase = self.fsm:phase(), message =
        ("a different module answered (IMEI %s, expected %s, the module this run started "
         .. "with): nothing more is sent to it; check which module is on the port")
        :format(a.imei, self.expect_imei)})
    end
    -- the same module may be open under another path (a second port object, a
    -- by-id link to another tty of it): its IMEI is claimed too
    if a.imei and a.imei ~= "" and self.opts.owner then
      local ok, msg, code = claim("imei:" .. a.imei, self.opts.owner)
      if not ok then return self:finish("failed", {code = code, message = msg}) end
    end
  elseif ev == "progress" then
    self.last_progress = {files = a.files, done = a.done, total = a.total, percent = a.percent}
    local ok, err = call_hook(self.policy, "on_progress", self.opts.hook_errors,
                              {files = a.files, done = a.done, total = a.total, percent = a.percent},
                              self:control())
    if not ok then self:trace("error", "on_progress: " .. tostring(err)) end
  elseif ev == "decision_needed" then
    self:decide(a)
  elseif ev == "done" then
    self:finish(a.outcome, a)
  elseif ev == "failed" then
    self:finish("failed", a)
  end
  if ev ~= "progress" then
    local ok, err = call_hook(self.policy, "on_event", self.opts.hook_errors, a, self:control())
    if not ok then self:trace("error", "on_event: " .. tostring(err)) end
  end
end

function Driver:run_actions(actions)
  for i = 1, #actions do
    if self.finished then return end
    local a = actions[i]
    if a.kind == "send" then
      self:send(a)
    elseif a.kind == "timer" then
      self.timer_at = a.at
    elseif a.kind == "reopen" then
      self.backoff = reconnect.backoff(nil, {deadline = a.deadline})
      self.reopen_at = self.backoff:next_at(core.now())
      self:trace("event", "port lost: waiting for the module to come back")
    elseif a.kind == "journal" then
      local ok, msg, code = self:write_journal(a)
      if not ok then
        -- without a durable journal a crash could repeat a step: stop here, before
        -- the command this journal entry protects (the rest of these actions) and
        -- without asking the machine (a cancel would be refused once it counts
        -- AT^FWUP as sent, with nothing left to wake the run). The module stays
        -- as it is; the journal file, if any, still holds the previous record.
        self.journal_error = {code = code or "EJOURNAL", message = msg}
        self:finish("failed", {code = "EJOURNAL", message = msg, phase = a.phase})
        return
      end
      -- what a host killed now would restart from (a retry writes it back during
      -- its wait: the file is removed when the attempt fails)
      if a.phase ~= "done" and a.phase ~= "failed" then self.last_journal = a.data end
    elseif a.kind == "emit" then
      self:emit(a)
    end
  end
end

-- reopen after the module's reset ----------------------------------------

-- A setup command's answer may be lost (a dropped byte): that costs its timeout,
-- 5 s, or command_timeout when shorter, so that after a reopen the setup ends
-- within the machine's reboot_timeout and the same machine carries on (port_back)
-- instead of failing ETIMEDOUT with the port back. A timeout is not a failure of
-- the setup (the next command goes on); a lost port is. A finished driver sends
-- no more of it (the next attempt's commands would queue behind it).
local SETUP_TIMEOUT = 5

function Driver:setup_port(done)
  local cmds = self.opts.setup or core.setup_commands()
  local timeout = math.min(SETUP_TIMEOUT, self.opts.command_timeout or SETUP_TIMEOUT)
  local i = 0
  local function next_cmd(res, msg, code)
    if i > 0 then self.inflight = self.inflight - 1 end
    if self.finished then return end
    if code == "EPORTLOST" or code == "ECLOSED" then return done(false) end
    i = i + 1
    if i > #cmds then return done(true) end
    self:trace("run", cmds[i])
    local ok, m, c = self.port:send(cmds[i], {timeout = timeout}, next_cmd)
    if not ok then return done(false, m, c) end
    self.inflight = self.inflight + 1
  end
  next_cmd(true)
end

function Driver:try_reopen(now)
  if self.finished then return end
  if self.backoff:expired(now) then
    self.backoff = nil
    if self.starting then       -- the machine has not started: fail here
      return self:finish("failed", {code = "ETIMEDOUT", message =
        ("the port went away while resuming from the journal and did not come back within "
         .. "%g s; the module may still be upgrading: do not power it off, check USB and "
         .. "run again"):format(self.opts.fsm.reboot_timeout or 180)})
    end
    self:post{kind = "timer"}   -- the machine fails the wait with its reason
    return
  end
  -- the module may have come back under another ttyUSB number, and its old name
  -- may be another of its ttys: find its AT port by USB identity (the machine
  -- then confirms the IMEI)
  local before = self.port:path()
  local ok = identity.reopen(self.port, self.identity)
  if ok and ok ~= before then
    self:trace("event", "module found again by USB identity at " .. ok)
  end
  if not ok then
    self.reopen_at = self.backoff:next_at(now)
    return
  end
  self:trace("event", "port back: " .. self.port:path())
  self:setup_port(function(fine)
    if fine and self.starting then
      self.starting, self.backoff = false, nil
      if self.carried then
        -- the port came back since the carried machine held it: not trusted to be
        -- the same module until its IMEI says so (restore again, as reopened)
        local okr, mr, cr = self.fsm:restore(self.carried, true, true)
        if not okr then return self:finish("failed", {code = cr, message = mr}) end
      end
      self:run_actions(self.fsm:start(core.now()))
    elseif fine then
      self.backoff = nil
      self:post{kind = "port_back"}
    elseif self.backoff then
      self.reopen_at = self.backoff:next_at(core.now())
    end
  end)
end

-- start and finish -----------------------------------------------------------

-- When the run is over the journal has done its job: remove it, so the next
-- run starts afresh. Keep it only when AT^FWUP was sent and the result was not
-- seen (the next run must wait for that reboot's result, never re-send).
function Driver:settle_journal(r)
  local path = self.opts.journal
  if not path or self.journal_error then return end
  local info = self.fsm and self.fsm:info() or {}
  if r.status == "failed" and r.code == "EIDENTITY" then
    -- another module is on the port: the journal is our module's (it names its IMEI
    -- and what it was doing), not this one's: leave it as it is, and say so
    if core.read_file(path, 1) then   -- (never io.open: a FIFO put there would block)
      r.message = ("%s; the journal %s was left untouched: it belongs to the module it "
                   .. "names (IMEI %s), delete it only once that module is idle")
                  :format(tostring(r.message), path, (info.imei and info.imei ~= "") and info.imei or "not recorded")
    end
    return
  end
  -- after AT^FWUP keep it until that reboot's result is seen (EUPGRADE is that result)
  if r.status == "failed" and info.fwup_sent and r.code ~= "EUPGRADE" then return end
  if r.status == "deferred" then
    -- keep what this run learnt (the announced version, a verified image) for the
    -- next run: the module's AT^FOTASTATE? does not repeat the version
    local ok, msg = core.write_file_atomic(path, self.fsm:snapshot())
    if not ok then r.journal_error = msg end
    return
  end
  local ok, err = remove_journal(path)
  if not ok then r.journal_error = err end
end

function Driver:finish(status, a)
  if self.finished then return end
  local r = self.report
  r.status = status
  if status == "failed" then
    r.code, r.message, r.module_code, r.phase = a.code, a.message, a.module_code, a.phase
  else
    r.from = a.from or r.from
    r.to = a.to
  end
  if self.journal_error then
    r.status, r.code, r.message = "failed", self.journal_error.code, self.journal_error.message
  elseif self.policy_error then
    r.status, r.code, r.message = "failed", "EPOLICY", self.policy_error
  end
  r.attempts = self.attempt
  self:settle_journal(r)
  self.finished = true
  self.timer_at, self.reopen_at = nil, nil
  for _, id in ipairs(self.handlers) do self.port:off(id) end
  self.port:on_event(nil)
  loop.signal(self.cond, r)
end

--- Start the machine (restoring the journal when there is one).
function Driver:start(previous)
  local fopts = self.opts.fsm
  if fopts.auto_upgrade_ok and self.policy.on_downloaded ~= nil then
    -- a policy decides after the download: the module must not apply the image by
    -- itself before it is asked (AT^FOTAMODE=0,0,0,1, then AT^FWUP on "upgrade")
    fopts = shallow_copy(fopts)
    fopts.auto_upgrade_ok = false
  end
  local fsm, msg, code = core.fota_new(fopts)
  if not fsm then return nil, msg, code end
  self.fsm = fsm
  -- USB identity of a serial port, to find it again after the module's reset
  if not self.port:is_lost() and self.port:kind() == "serial" then
    self.identity = identity.of(self.port:path()) or self.identity
  end
  local snap = previous
  if not snap and self.opts.journal then
    local data, err = read_journal(self.opts.journal)
    if not data then return nil, err, "EJOURNAL" end
    snap = data
  end
  if snap and snap ~= "" then
    -- a snapshot carried from this process's previous step or attempt: no unwatched
    -- gap (the port stayed open; URCs meanwhile wait in its buffer), so a finished
    -- machine's target still holds; a journal file's may not (see fota_fsm.md)
    -- (reopened: the port was reopened since that machine held it, as between two
    -- attempts of a run: the module is then confirmed again before anything changes it)
    local ok, m, c = fsm:restore(snap, previous ~= nil, self.reopened == true)
    if not ok then
      return nil, ("journal %s cannot be used: %s (inspect it; delete it only if the module is idle)")
                  :format(self.opts.journal or "(previous attempt)", m), c or "EJOURNAL"
    end
  end
  self.handlers[#self.handlers + 1] = self.port:on("^FOTASTATE:", function(line)
    self:trace("urc", line)
    self:post{kind = "urc", line = line}
  end)
  self.port:on_event(function(e)
    if e.event == "port_lost" then
      self:trace("event", "port lost: " .. tostring(e.detail))
      self:post{kind = "port_lost"}
    elseif e.event == "callback_error" then
      self:trace("error", e.detail)
    elseif e.event == "stale_exclusive" or e.event == "resync_fallback" or
           e.event == "resync_refused" or e.event == "overflow" then
      -- worth a line in the trace: a killed host's flag taken over, a firmware
      -- without the resync queries, an over-long line dropped (its length)
      self:trace("event", e.event .. ": " .. tostring(e.detail))
    end
  end)
  if self.policy.on_start then
    local okh, err = call_hook(self.policy, "on_start", self.opts.hook_errors, self:control())
    if not okh then self:trace("error", "on_start: " .. tostring(err)) end
  end
  local resumed = snap ~= nil and snap ~= ""
  if previous ~= nil and previous ~= "" then self.carried = previous end
  self:setup_port(function(fine)
    if self.finished then return end
    if fine then
      self:run_actions(fsm:start(core.now()))
    elseif resumed and self.port:is_lost() then
      -- resuming from a journal: the module may be resetting under us (power loss,
      -- or the upgrade's reset when the previous host died after AT^FWUP); wait
      -- for it as the machine would, bounded by reboot_timeout
      self.starting = true
      self.backoff = reconnect.backoff(self.opts.fsm.reboot_timeout or 180)
      self.reopen_at = self.backoff:next_at(core.now())
      self:trace("event", "port lost: waiting for the module to come back")
    else
      self:finish("failed", {code = "EPORTLOST", message = "the port was lost during its setup"})
    end
  end)
  return true
end

-- == Options ==

-- Keys of run/session options that are not the state machine's.
local own_keys = {journal = true, trace = true, setup = true, command_timeout = true,
                  baudrate = true, flow = true, timeout = true}

--- Every option name `hwfota.run` and `hwfota.session` accept (the session's own and
-- the state machine's), sorted: what the README's options table documents.
-- @treturn {string,...}
function M.option_names()
  local names = {}
  for k in pairs(own_keys) do names[#names + 1] = k end
  for _, k in ipairs(core.fota_options) do
    if not own_keys[k] then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

local function bad_option(name, what, level)
  error(("bad option '%s' (%s)"):format(name, what), level + 1)
end

--- Check one `setup` command: sent after every (re)open, outside the state machine,
-- it must not change what the module does (FOTA commands, resets, factory defaults,
-- functionality changes). The rule is the C core's (`csrc/fota_cmds.h`,
-- `hf_fota_check_setup_command`): an allow-list of forms, so that nothing slips
-- through by spelling.
-- @tparam string c the command
-- @return true, or false and why
function M.check_setup_command(c)
  return core.check_setup_command(c)
end

-- Check the options that are the session's own, and the state machine's (by
-- building one: it raises on unknown options and wrong types), before any port
-- is opened or command sent. Raises on misuse; returns nil, msg, "EINVAL" for
-- a value out of range.
local function check_opts(opts, level)
  level = level + 1
  if opts == nil then return true end
  local j = opts.journal
  if j ~= nil and (type(j) ~= "string" or j == "" or #j > 3000 or j:find("%z")) then
    bad_option("journal", "a non-empty file path expected", level)
  end
  if opts.trace ~= nil and type(opts.trace) ~= "function" then
    bad_option("trace", "function expected", level)
  end
  if opts.setup ~= nil then
    if type(opts.setup) ~= "table" then bad_option("setup", "array of commands expected", level) end
    for i, c in ipairs(opts.setup) do
      if type(c) ~= "string" then bad_option("setup", ("command %d is not a string"):format(i), level) end
      local ok, why = M.check_setup_command(c)
      if not ok then
        return nil, ("setup command %d %q refused: %s"):format(i, c:sub(1, 40), why), "EINVAL"
      end
    end
  end
  local ct = opts.command_timeout
  if ct ~= nil and (type(ct) ~= "number" or not (ct > 0 and ct <= 3600)) then
    bad_option("command_timeout", "seconds in (0, 3600] expected", level)
  end
  local b = opts.baudrate
  if b ~= nil and (math.type(b) ~= "integer" or b < 50 or b > 4000000) then
    bad_option("baudrate", "integer 50..4000000 expected", level)
  end
  if opts.flow ~= nil and opts.flow ~= "none" and opts.flow ~= "rtscts" then
    bad_option("flow", '"none" or "rtscts" expected', level)
  end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or not (t > 0 and t <= 3600)) then
    bad_option("timeout", "seconds in (0, 3600] expected", level)
  end
  local fsm_opts = {}
  for k, v in pairs(opts) do
    if not own_keys[k] then fsm_opts[k] = v end
  end
  local okc, fsm, msg, code = pcall(core.fota_new, fsm_opts)
  if not okc then error(tostring(fsm):gsub("^[^:]*:%d+: ", ""), level) end
  if not fsm then return nil, msg, code end
  fsm:close()
  return true
end

local function split_opts(opts)
  local o = {fsm = {}}
  for k, v in pairs(opts or {}) do
    if own_keys[k] then o[k] = v else o.fsm[k] = v end
  end
  return o
end

local function ensure_port(port_or_path, opts)
  if type(port_or_path) == "string" then
    local hwfota_open = core.open
    local port, msg, code = hwfota_open(port_or_path, opts.baudrate, opts.flow, opts.timeout)
    if not port then return nil, msg, code end
    return port, nil, nil, true
  end
  if type(port_or_path) ~= "userdata" then
    error(("bad argument #1 (port or path expected, got %s)"):format(type(port_or_path)), 3)
  end
  return port_or_path
end

-- A journal left by a run that did not finish means the module may be in the
-- middle of a reset (the host died during the download or after AT^FWUP): its
-- port can be absent for a while. Wait for it (bounded by reboot_timeout)
-- instead of failing at once. Yields inside tasks (loop.sleep).
local function journal_pending(o)
  local path = o.journal
  if not path then return false end
  local head = core.read_file(path, 16)
  return head ~= nil and head ~= ""
end

local function wait_for_port(path, o, msg, code)
  local timeout = o.fsm.reboot_timeout or 180
  local port, owned
  port, msg, code, owned = reconnect.retry(function() return ensure_port(path, o) end, {
    timeout = timeout, tried = table.pack(nil, msg, code),
    stop = function(_, _, why) return why ~= "ENOENT" end,
  })
  if port then return port, nil, nil, owned end
  if code ~= "ENOENT" then return nil, msg, code end
  return nil, ("%s did not come back within %g s; the journal %s says a FOTA run was in "
               .. "progress (the module may still be upgrading: do not power it off; "
               .. "check USB, then run again): %s"):format(path, timeout, o.journal, msg),
         "ETIMEDOUT"
end

-- == One attempt, and run() with retries ==

-- Module states in which the module holds (part of) the image of the offer the
-- machine saw announced: downloading, download pending, downloaded, upgrading.
local HOLDS_IMAGE = {[30] = true, [31] = true, [40] = true, [50] = true}

--- True when the module, in FOTA state `code`, holds (part of) an image: an update
-- is under way (downloading 30, download pending 31, downloaded 40, upgrading 50).
-- @tparam integer|nil code a `^FOTASTATE` code
-- @treturn boolean
function M.holds_image(code)
  return HOLDS_IMAGE[code] == true
end

-- What the next attempt of run() restores (nil: it starts afresh). A retry must keep
-- what the module does not tell again: that AT^FWUP was sent, and the version of an
-- image the module holds (AT^FOTASTATE? answers 30/31/40 without the 12's version: a
-- new machine would resume the download, then refuse to apply an image of unknown
-- version, ENOTARGET, and leave the module in 40). The retry then carries on as a
-- host restarted on the journal does. An attempt restored from `previous` that failed
-- before reading any module state learnt nothing new: `previous` still holds.
-- Nothing is carried when the module was last seen without the image (idle,
-- querying, a bare offer): the next attempt decides on a fresh query.
local function carry_over(d, previous, carry)
  if not (d and d.fsm) then return previous end
  local info = d.fsm:info()
  if info.fwup_sent or carry or (info.version and HOLDS_IMAGE[info.state]) then
    return d.fsm:snapshot()
  end
  if previous and info.state == nil then return previous end
  return nil
end

-- AT^FOTACFG? (the guide: after a failed detection, check these parameters first):
-- {apn =, user =, password_set =, auth =} or nil, message, code. The password is
-- never returned or printed, only whether one is set.
local AUTH_NAMES = {[0] = "none", [1] = "PAP", [2] = "CHAP"}
local function read_fotacfg(port, trace)
  local text, opts = M.fota_request("fotacfg_read")
  if trace then trace("run", text) end
  local res, msg, code = port:command(text, opts)
  if trace then trace("response", res and "^FOTACFG: (not traced: it holds the password)  OK"
                                        or tostring(msg)) end
  if not res then return nil, msg, code end
  local a, pmsg, pcode = core.fota_parse("fotacfg_read", res.lines)
  if not a then return nil, pmsg, pcode end
  return a.fotacfg
end
--- Read the module's FOTA server settings (AT^FOTACFG?), for the command's status.
-- @tparam Port port an open port
-- @tparam[opt] function trace function(dir, text)
-- @return `{apn =, user =, password_set =, auth =}` (never the password), or
--   `nil, message, code`
M.read_fotacfg = read_fotacfg

local function fotacfg_text(c)
  local function q(v) return '"' .. v:gsub("[%c\127-\255]", "?") .. '"' end
  return ("APN %s, user %s, %s, auth %d (%s)"):format(q(c.apn), q(c.user),
    c.password_set and "password set" or "no password", c.auth, AUTH_NAMES[c.auth] or "unknown")
end
--- The settings of `read_fotacfg` as one line for people:
-- `APN "x", user "", no password, auth 2 (CHAP)`.
-- @tparam table c what `read_fotacfg` returned
-- @treturn string
M.fotacfg_text = fotacfg_text

local function one_attempt(port, policy, o, attempt, previous, ident, reopened, expect_imei)
  local d = new_driver(port, policy, o, attempt)
  d.expect_imei = expect_imei   -- the IMEI an earlier attempt of this run read
  d.identity = ident   -- known from an earlier attempt, while the port is away now
  d.reopened = reopened
  local ok, msg, code = d:start(previous)
  if not ok then
    return {status = "failed", code = code, message = msg, attempts = attempt}, d
  end
  local report = loop.wait(d.cond, {d})
  if report.code == "EDETECT" and not port:is_lost() then
    -- what the module will connect with: shown with the failure, as the guide advises
    local c, cmsg = read_fotacfg(port, o.trace)
    report.fotacfg = c
    report.message = tostring(report.message) .. "; the module's AT^FOTACFG? says: " ..
                     (c and fotacfg_text(c) or ("unreadable (" .. tostring(cmsg) .. ")"))
  end
  return report, d
end

local run_attempts   -- the attempts of one run (below)

--- See `hwfota.run` (lua/hwfota/init.lua). `carry` (internal, for Session
-- steps): a snapshot of the previous step's machine, restored like a journal.
function M.run(port_or_path, policy, opts, carry, owner)
  if policy ~= nil and type(policy) ~= "table" then
    error(("bad argument #2 to 'run' (table expected, got %s)"):format(type(policy)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #3 to 'run' (table expected, got %s)"):format(type(opts)), 2)
  end
  policy = policy or {}
  local valid, vmsg, vcode = check_opts(opts, 2)
  if not valid then return {status = "failed", code = vcode, message = vmsg, attempts = 0} end
  local o = split_opts(opts)
  local jok, jmsg, jcode = check_journal_path(o.journal)
  if not jok then return {status = "failed", code = jcode, message = jmsg, attempts = 0} end
  local port, msg, code, owned = ensure_port(port_or_path, o)
  if not port and code == "ENOENT" and journal_pending(o) then
    port, msg, code, owned = wait_for_port(port_or_path, o, msg, code)
  end
  if not port then
    return {status = "failed", code = code, message = msg, attempts = 0}
  end
  local own = owner == nil
  owner = owner or {what = "another hwfota.run"}
  local okc, cmsg, ccode = claim(port_key(port), owner)
  if not okc then
    if owned then port:close() end
    return {status = "failed", code = ccode, message = cmsg, attempts = 0}
  end
  o.owner = owner
  local report = run_attempts(port, policy, o, carry)
  if own then release(owner) end
  if owned then port:close() end
  return report
end

run_attempts = function(port, policy, o, carry)
  local attempt, previous, report = 0, carry, nil
  local hook_errors = {}   -- hooks that raised, this run (all attempts)
  o.hook_errors = hook_errors
  local held = false   -- the journal file was written for a retry not run yet
  local ident          -- the port's USB identity, to find it again between attempts
  local run_imei       -- the module's IMEI as the first attempt that read it saw it
  local reopened = false   -- the port was reopened since the carried machine held it
  local resume_text    -- the journal a host killed before the retry restarts from
  while true do
    attempt = attempt + 1
    local ctx = {port = port, attempt = attempt}
    local entered, gmsg = true, nil
    if policy.before_detect then
      local okc, r1, r2 = call_hook(policy, "before_detect", hook_errors, ctx)
      entered = okc and r1
      gmsg = okc and r2 or r1
    end
    local d
    if entered then
      report, d = one_attempt(port, policy, o, attempt, previous, ident, reopened, run_imei)
      reopened = false
      ident = d.identity or ident
      local seen = d.fsm and d.fsm:info().imei
      if not run_imei and seen and seen ~= "" then run_imei = seen end
      if d.finished then held = false end   -- its driver settled the journal
      ctx.outcome = report.status
      if policy.after then
        local okc, r1, r2 = call_hook(policy, "after", hook_errors, ctx)
        if not (okc and r1) then report.guard_error = tostring(okc and r2 or r1) end
      end
      local carried = carry_over(d, previous, carry)
      if carried == nil then
        resume_text = nil
      elseif carried ~= previous then
        resume_text = d.last_journal
      end
      previous = carried
    else
      report = {status = "failed", code = "EGUARD", attempts = attempt,
                message = "data-connection guard failed: " .. tostring(gmsg)}
    end
    if report.status ~= "failed" then break end
    -- another module on the port: the run stops, nothing more is sent to it (a retry's
    -- fresh machine would take it for the module to update)
    if report.code == "EIDENTITY" then break end
    local okf, wait = call_hook(policy, "on_failure", hook_errors,
                                {code = report.code, message = report.message,
                                 module_code = report.module_code}, attempt)
    if not okf or type(wait) ~= "number" or wait < 0 then break end
    -- the failed attempt removed its journal (no AT^FWUP sent), but the retry carries
    -- on with its machine: put back the attempt's last journal before its failure, so
    -- that a host killed while it waits restarts as the retry would (with the
    -- announced target), not afresh. Not the failed machine's own snapshot: a
    -- journal file of a finished machine names a target a restart does not trust.
    if resume_text and o.journal and not journal_pending(o) then
      local okw, wmsg = core.write_file_atomic(o.journal, resume_text)
      if okw then
        held = true
      elseif o.trace then
        o.trace("error", "cannot write the journal for the retry: " .. tostring(wmsg))
      end
    end
    loop.sleep(wait)
    -- the module may still be away (reset, port gone): reopen after the wait, with
    -- back-off, up to reboot_timeout, the last try at the deadline itself; the next
    -- attempt reports what is still wrong
    if port:is_lost() then
      reopened = true   -- whatever comes back is confirmed again
      reconnect.retry(function() return identity.reopen(port, ident) end, {
        timeout = o.fsm.reboot_timeout or 180,
        stop = function(_, _, why) return why == "ECLOSED" end,
      })
    end
  end
  -- no attempt ran after the journal was written for it (a guard refused the retry):
  -- a failed run leaves no journal unless AT^FWUP was sent
  if held then
    local okr, rmsg = remove_journal(o.journal)
    if not okr then report.journal_error = rmsg end
  end
  report.attempts = attempt
  if #hook_errors > 0 then report.hook_errors = hook_errors end
  return report
end

-- == Session: the step-by-step API ==

local Session = {}
Session.__index = Session

--- See `hwfota.session` (lua/hwfota/init.lua).
function M.session(port_or_path, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'session' (table expected, got %s)"):format(type(opts)), 2)
  end
  local valid, vmsg, vcode = check_opts(opts, 2)
  if not valid then return nil, vmsg, vcode end
  local o = split_opts(opts)
  local jok, jmsg, jcode = check_journal_path(o.journal)
  if not jok then return nil, jmsg, jcode end
  local port, msg, code, owned = ensure_port(port_or_path, o)
  if not port then return nil, msg, code end
  local owner = {what = "a hwfota.session", port = port}
  local okc, cmsg, ccode = claim(port_key(port), owner)
  if not okc then
    if owned then port:close() end
    return nil, cmsg, ccode
  end
  -- The FOTA layer's own unsolicited code: routed as such by the AT engine for
  -- the session's whole life (a ^FOTASTATE: inside ATI's answer is no response
  -- line); the engine itself knows no FOTA code.
  local fota_urc = port:on("^FOTASTATE:", function() end)
  return setmetatable({port = port, opts = shallow_copy(opts), owned = owned, owner = owner,
                       fota_urc = fota_urc}, Session)
end

local function command(self, cmd, opts)
  if self.opts.trace then self.opts.trace("run", cmd) end
  local res, msg, code, detail = self.port:command(cmd, opts)
  if self.opts.trace then
    self.opts.trace("response", res and (table.concat(res.lines, "\n") .. (#res.lines > 0 and "\n" or "") .. "OK") or tostring(msg))
  end
  return res, msg, code, detail
end

-- One command of the C command table (its text and how its answer is waited for),
-- traced like every other.
local function fota(self, name, params, timeout)
  local text, opts, code = M.fota_request(name, params, timeout)
  if not text then return nil, opts, code end
  return command(self, text, opts)
end

--- Module identity from ATI and AT+CGSN.
function Session:info()
  local res, msg, code = fota(self, "ati")
  if not res then return nil, msg, code end
  local a = core.fota_parse("ati", res.lines, true)
  local info = {manufacturer = a.manufacturer, model = a.model, revision = a.revision,
                imei = a.imei}
  if not info.revision then
    local gmr = fota(self, "gmr")
    info.revision = gmr and core.fota_parse("gmr", gmr.lines, true).revision
  end
  if not info.imei then
    local sn = fota(self, "cgsn")
    info.imei = sn and core.fota_parse("cgsn", sn.lines, true).imei
  end
  return info
end

--- The module's FOTA state from AT^FOTASTATE?.
function Session:state()
  local res, msg, code = fota(self, "state")
  if not res then return nil, msg, code end
  local a, pmsg, pcode = core.fota_parse("state", res.lines)
  if not a then return nil, pmsg, pcode end
  return {code = a.state.state, name = a.state.name}
end

--- The module's FOTA server connection settings from AT^FOTACFG?: `{apn =, user =,
-- password_set =, auth = 0|1|2}` (the password itself is never returned), or
-- `nil, message, code` (a firmware without the read form answers an error).
function Session:fota_config()
  return read_fotacfg(self.port, self.opts.trace)
end

local auth_codes = {none = 0, pap = 1, chap = 2, [0] = 0, [1] = 1, [2] = 2}

-- Called from Session:configure: level 3 blames configure's caller.
local function check_param(name, v)
  if v == nil then v = "" end
  if type(v) ~= "string" then
    error(("bad option '%s' (string expected, got %s)"):format(name, type(v)), 3)
  end
  -- the state machine's own rule (C), as hwfota.run and the command apply it
  local ok, msg, code = core.check_at_param(name, v)
  if not ok then return nil, msg, code end
  return v
end

--- Set the FOTA server connection parameters (AT^FOTACFG).
local function check_keys(p, allowed)
  for k in pairs(p) do
    if not allowed[k] then bad_option(tostring(k), "unknown option", 3) end
  end
end

function Session:configure(p)
  if type(p) ~= "table" then error("bad argument #1 to 'configure' (table expected)", 2) end
  check_keys(p, {apn = true, user = true, password = true, auth = true})
  if p.auth ~= nil and type(p.auth) ~= "string" and type(p.auth) ~= "number" then
    bad_option("auth", '"none", "pap", "chap" or 0..2 expected', 2)
  end
  local vals = {}
  for _, k in ipairs{"apn", "user", "password"} do
    local v, msg, code = check_param(k, p[k])
    if not v then return nil, msg, code end
    vals[k] = v
  end
  local auth = auth_codes[p.auth == nil and "none" or p.auth]
  if not auth then return nil, "auth must be \"none\", \"pap\" or \"chap\"", "EINVAL" end
  local res, msg, code = fota(self, "fotacfg", {apn = vals.apn, user = vals.user,
                                                password = vals.password, auth = auth})
  if not res then return nil, msg, code end
  return true
end

--- Set what the module does by itself (AT^FOTAMODE).
function Session:mode(p)
  if type(p) ~= "table" then error("bad argument #1 to 'mode' (table expected)", 2) end
  check_keys(p, {auto_query = true, auto_download = true, auto_upgrade = true, resume = true,
                 period = true})
  if p.period ~= nil and type(p.period) ~= "number" then
    bad_option("period", "a number of days expected", 2)
  end
  local function b(k, dflt)
    local v = p[k]
    if v == nil then v = dflt end
    if type(v) ~= "boolean" then error(("bad option '%s' (boolean expected)"):format(k), 3) end
    return v and 1 or 0
  end
  local flags = {auto_query = b("auto_query", false) == 1,
                 auto_download = b("auto_download", false) == 1,
                 auto_upgrade = b("auto_upgrade", false) == 1, resume = b("resume", true) == 1}
  -- period: 1..365 days, the state machine's rule (a zero-day cycle means nothing and
  -- the module's AT^FOTAMODE=? says (1-365))
  local res, msg, code = fota(self, "fotamode", {auto_query = flags.auto_query,
    auto_download = flags.auto_download, auto_upgrade = flags.auto_upgrade,
    resume = flags.resume, period = p.period})
  if not res then return nil, msg, code end
  self.mode_set = {auto_query = flags.auto_query, auto_download = flags.auto_download,
                   auto_upgrade = flags.auto_upgrade, period = p.period}
  return true
end

-- Run the state machine with a fixed internal policy (the safety rules stay in C).
-- Each step is a run of its own; `carry` restores the previous step's machine so
-- what it learnt (the announced version, the verified image, AT^FWUP sent) holds
-- in the next step: the module's AT^FOTASTATE? answer does not repeat the version.
function Session:drive(policy, carry)
  local _, cmsg, ccode = self.port:fileno()
  if ccode == "ECLOSED" then
    return {status = "failed", code = "ECLOSED", message = "session is closed: " .. tostring(cmsg)}
  end
  local o = shallow_copy(self.opts)
  self.active = true
  local ctl
  policy.on_start = function(c) ctl = c; self.control = c end
  if self.closed then
    return {status = "failed", code = "ECLOSED", message = "session is closed"}
  end
  local report = M.run(self.port, policy, o, carry and self.snapshot or nil, self.owner)
  self.active, self.control = false, nil
  self.snapshot = ctl and ctl.snapshot() or self.snapshot
  return report
end

local function failed(report)
  return nil, report.message or report.code, report.code
end

--- Look for a new version (AT^FOTADET).
function Session:detect()
  local offer
  local report = self:drive{on_new_version = function(info) offer = info; return "defer" end}
  if report.status == "no_new_version" then return false end
  if offer then
    return {version = offer.version, size = offer.size, description = offer.description}
  end
  if report.status == "failed" then return failed(report) end
  return nil, "no new version was announced (" .. tostring(report.status) .. ")", "ESTATE"
end

--- Download the announced version (AT^FOTADL=1) until the module verified it (40).
-- The image is kept on the module for `Session:upgrade` (the policy answer
-- `"keep_until_reboot"`): if it is not applied with `s:upgrade()` (or discarded with
-- `s:cancel()`), **the module applies it at its next reboot** (guide 2.3.3).
function Session:download(p)
  if p ~= nil and type(p) ~= "table" then error("bad argument #1 to 'download' (table expected)", 2) end
  p = p or {}
  check_keys(p, {progress = true})
  if p.progress ~= nil and type(p.progress) ~= "function" then
    bad_option("progress", "function expected", 2)
  end
  local got
  local report = self:drive({
    on_new_version = function() return "download" end,
    on_downloaded = function(info) got = info; return "keep_until_reboot" end,
    on_progress = p.progress,
  }, true)
  if got then return {version = got.version, size = got.size} end
  if report.status == "failed" then return failed(report) end
  if report.status == "no_new_version" then return nil, "no new version to download", "ENOVERSION" end
  return nil, "download did not complete (" .. tostring(report.status) .. ")", "ESTATE"
end

--- Apply a downloaded, verified image (AT^FWUP), wait for the reset, verify.
function Session:upgrade()
  local report = self:drive({
    on_new_version = function() return "defer" end,
    on_downloaded = function() return "upgrade" end,
  }, true)
  if report.status == "upgraded" then return {from = report.from, to = report.to} end
  if report.status == "failed" then return failed(report) end
  return nil, "no verified image to apply: download it first (" .. tostring(report.status) .. ")",
         "ENOTREADY"
end

local function direct(self, name, what, params)
  local res, msg, code = fota(self, name, params)
  if not res then return nil, what .. ": " .. tostring(msg), code end
  return true
end

-- While a step runs (s:download in another task), pause/resume/cancel go
-- through the state machine (it sends the command when no other is in flight);
-- between steps they are direct commands.

--- Pause the download (AT^FOTADL=2; needs resume mode on).
function Session:pause()
  if self.control then return self.control.pause() end
  return direct(self, "dl_pause", "pause")
end
--- Resume a pending download (AT^FOTADL=1 from state 31). Between steps the mode
-- goes first, resume on (the last `s:mode`, else the session's `mode` option, else
-- 0,0,0,1): after a boot the module continues only after AT^FOTAMODE (guide 2.3.3).
function Session:resume()
  if self.control then return self.control.resume() end
  local m = self.mode_set
  if not m and type(self.opts.mode) == "table" then
    local o = self.opts.mode
    m = {auto_query = o.auto_query == true, auto_download = o.auto_download == true,
         auto_upgrade = o.auto_upgrade == true, period = o.period}
  end
  m = m or {}
  local ok, msg, code = direct(self, "fotamode", "resume", {auto_query = m.auto_query,
    auto_download = m.auto_download, auto_upgrade = m.auto_upgrade, resume = true,
    period = math.type(m.period) == "integer" and m.period or nil})
  if not ok then return nil, msg, code end
  return direct(self, "dl_start", "resume")
end
--- Abandon the update and bring the module back to idle (AT^FOTADL=0).
-- The module may answer `OK` before it is idle: between steps this waits until
-- `AT^FOTASTATE?` says 10 (or 11, an automatic query that began), asking every
-- `poll_interval` s (session option, default 3) up to `discard_timeout` s (default 30).
-- @return true, or nil, message, code (`EMODULE` with the state when the module is
--   still not idle at the deadline)
function Session:cancel()
  if self.control then return self.control.cancel() end
  local ok, msg, code = direct(self, "dl_stop", "cancel")
  if not ok then return nil, msg, code end
  local every = self.opts.poll_interval or 3
  local limit = self.opts.discard_timeout or 30
  local deadline = core.now() + limit
  while true do
    local st, m, c = self:state()
    if not st then return nil, "cancel: " .. tostring(m), c end
    if st.code == 10 or st.code == 11 then return true end
    local left = deadline - core.now()
    if left <= 0 then
      return nil, ("cancel: AT^FOTADL=0 did not bring the module back to idle within %g s: "
                   .. "it is still in state %d (%s)"):format(limit, st.code, st.name), "EMODULE"
    end
    loop.sleep(math.min(every, left))
  end
end

--- The session's port.
function Session:port_object() return self.port end

--- Close the session (and its port when the session opened it).
function Session:close()
  self.closed = true
  if self.fota_urc then self.port:off(self.fota_urc); self.fota_urc = nil end
  if self.owner then release(self.owner) end   -- the module is free for another operation
  if self.owned then self.port:close() end
  return true
end
Session.__close = Session.close
-- a session dropped without close frees its claim on the module when collected
-- (its port, when owned, is closed by the port's own __gc)
Session.__gc = function(self) if self.owner then release(self.owner) end end

return M
