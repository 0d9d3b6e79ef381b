--- hwfota.driver: one port and one C FOTA state machine, as a source of the poll loop.
--
-- A *driver* connects one port to one `hwfota.core` FOTA state machine: it
-- carries out the machine's actions (send a command, arm a timer, wait for the
-- port to come back after the module's reset, write the journal, tell the
-- policy) and feeds it what happens (results, `^FOTASTATE` codes, timers, port
-- lost/back, decisions). The driver holds no protocol logic and no safety rule:
-- those are in C. It is a source of `hwfota.loop`, so many drivers share one
-- `poll()`. Also here: the journal file's checks and the claims that keep one
-- FOTA operation per module in a process. Used by `hwfota.run` and `hwfota.session`.
--
-- @module hwfota.driver

local core = require "hwfota.core"
local identity = require "hwfota.identity"
local loop = require "hwfota.loop"
local pathwatch = require "hwfota.pathwatch"
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

-- The loop asks every driver on every wake: the two answers are tables made once
-- (the loop only reads them), not a new one per call.
local NO_PORTS = {}

function Driver:ports()
  if self.finished or self.port:is_lost() then return NO_PORTS end
  local list = self.port_list
  if not list then
    list = {self.port}
    self.port_list = list
  end
  return list
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
    if self.opts.trace then   -- the text only when somebody reads it
      self:trace("response", table.concat(res.lines, "\n") .. (#res.lines > 0 and "\n" or "") .. "OK")
    end
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
  -- the report keeps every event in order, but a run of download-progress events
  -- (one per AT^FOTADLQ poll: hundreds in a long download, each with its files list)
  -- only as its latest: a run's report stays small however long the download
  local events = self.report.events
  local n = #events
  if ev == "progress" and n > 0 and events[n].event == "progress" then
    events[n] = a
  else
    events[n + 1] = a
  end
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
      if self.policy.on_progress ~= nil then
        local ok, err = call_hook(self.policy, "on_progress", self.opts.hook_errors,
                                  self.last_progress, self:control())
        if not ok then self:trace("error", "on_progress: " .. tostring(err)) end
      end
    end
  elseif ev == "new_version" then
    self.report.version = a.version
    self.report.size = a.size
    self.report.description = a.description
  elseif ev == "info" then
    self.report.model, self.report.imei = a.model, a.imei
    self.report.from = self.report.from or a.revision
    -- the same module may be open under another path (a second port object, a
    -- by-id link to another tty of it): its IMEI is claimed too
    if a.imei and a.imei ~= "" and self.opts.owner then
      local ok, msg, code = claim("imei:" .. a.imei, self.opts.owner)
      if not ok then return self:finish("failed", {code = code, message = msg}) end
    end
  elseif ev == "progress" then
    self.last_progress = {files = a.files, done = a.done, total = a.total, percent = a.percent}
    -- the hook's table and the run's control only when there is a hook to get them
    if self.policy.on_progress ~= nil then
      local ok, err = call_hook(self.policy, "on_progress", self.opts.hook_errors,
                                {files = a.files, done = a.done, total = a.total, percent = a.percent},
                                self:control())
      if not ok then self:trace("error", "on_progress: " .. tostring(err)) end
    end
  elseif ev == "decision_needed" then
    self:decide(a)
  elseif ev == "done" then
    self:finish(a.outcome, a)
  elseif ev == "failed" then
    self:finish("failed", a)
  end
  if ev ~= "progress" and self.policy.on_event ~= nil then
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
      self:trace("event", "port lost: waiting for the module to come back" .. self:watch_return())
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

-- While the port is away, watch where it comes back (its name in its directory,
-- the device its link pointed to, its by-id link: hwfota.pathwatch) and try at
-- once when it may be back, instead of up to a whole back-off wait later (about
-- 1.1 s after the reset). The back-off stays as the fallback: no inotify, the
-- watch refused (`reopen_watch = false`, HWFOTA_NO_INOTIFY), a missed event.
-- Returns what the trace says about it.
function Driver:watch_return()
  self:unwatch_return()
  if self.opts.reopen_watch == false then return " (no path watch: reopen_watch = false)" end
  local targets = pathwatch.port_targets(self.port:path(),
    {real = self.real_path, identity = self.identity})
  local sub, msg = pathwatch.subscribe(targets, function()
    if not self.finished and self.reopen_at then
      self.reopen_at = math.min(self.reopen_at, core.now())
    end
  end)
  if not sub then return (" (no path watch: %s)"):format(tostring(msg)) end
  self.return_watch = sub
  return " (watching " .. sub:describe() .. ")"
end

function Driver:unwatch_return()
  if self.return_watch then
    self.return_watch:cancel()
    self.return_watch = nil
  end
end

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
    self:unwatch_return()
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
  self:unwatch_return()
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
      -- lost again during its setup: watch for its return again
      self.reopen_at = self.backoff:next_at(core.now())
      self:watch_return()
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
  self:unwatch_return()
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
  -- what the port's path (maybe a link) resolves to, to watch for it after a reset
  if not self.port:is_lost() then self.real_path = core.realpath(self.port:path()) or self.real_path end
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
  if self.expect_imei and fopts.read_imei ~= false then
    -- a later attempt of run() on a reopened port: the module must be the one the run
    -- started with (the path may now name another one); the machine confirms it
    local ok, m, c = fsm:expect_imei(self.expect_imei)
    if not ok then return nil, m, c end
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
      self:trace("event", "port lost: waiting for the module to come back" .. self:watch_return())
    else
      self:finish("failed", {code = "EPORTLOST", message = "the port was lost during its setup"})
    end
  end)
  return true
end

--- Make a driver: `new(port, policy, opts, attempt)` (see `new_driver` above).
M.new = new_driver
--- Call a policy hook, noting its error in a list instead of raising:
-- `call_hook(policy, name, errors, ...)`.
M.call_hook = call_hook
--- Refuse a journal path that is not a regular file or a free name in a directory:
-- `check_journal_path(path)` -> true or nil, message, "EJOURNAL".
M.check_journal_path = check_journal_path
--- Remove the journal, a regular file only: `remove_journal(path)` -> true or nil, message.
M.remove_journal = remove_journal
--- Claim a module for one operation in this process: `claim(key, owner)` -> true or
-- nil, message, "EBUSY".
M.claim = claim
--- Release every claim of an owner: `release(owner)`.
M.release = release
--- The claim key of a port (its canonical path): `port_key(port)` -> string.
M.port_key = port_key
--- A one-level copy of a table (nil gives an empty table): `shallow_copy(t)`.
M.shallow_copy = shallow_copy

return M
