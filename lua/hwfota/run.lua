--- hwfota.run: the whole FOTA flow on one module, with retries.
--
-- One attempt is one driver (`hwfota.driver`) from probe to result; `run` repeats
-- attempts under the retry policy, carries over what the module will not tell again,
-- waits for a port that went away, and settles the journal. Public entry point:
-- `hwfota.run` (documented in lua/hwfota/init.lua).
--
-- @module hwfota.run

local core = require "hwfota.core"
local identity = require "hwfota.identity"
local loop = require "hwfota.loop"
local reconnect = require "hwfota.reconnect"
local pathwatch = require "hwfota.pathwatch"
local driver = require "hwfota.driver"
local options = require "hwfota.options"

local M = {}

local new_driver, call_hook = driver.new, driver.call_hook
local check_journal_path, remove_journal = driver.check_journal_path, driver.remove_journal
local claim, release, port_key = driver.claim, driver.release, driver.port_key
local check_opts, split_opts, ensure_port = options.check, options.split, options.ensure_port

-- A journal left by a run that did not finish means the module may be in the
-- middle of a reset (the host died during the download or after AT^FWUP): its
-- port can be absent for a while. Wait for it (bounded by reboot_timeout)
-- instead of failing at once. Yields inside tasks (loop.sleep). Absent is ENOENT, or
-- EPORTLOST when the port vanished while it was being opened (the module's reset tore
-- the pty or USB port down between the open and its TIOCEXCL: EIO).
local AWAY = {ENOENT = true, EPORTLOST = true}
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
    stop = function(_, _, why) return not AWAY[why] end,
  })
  if port then return port, nil, nil, owned end
  if not AWAY[code] then return nil, msg, code end
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
  local text, opts = driver.fota_request("fotacfg_read")
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
  if not port and AWAY[code] and journal_pending(o) then
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
        -- try as soon as its path may be back (the back-off stays the fallback)
        watch = o.reopen_watch ~= false and pathwatch.port_targets(port:path(), {identity = ident}) or nil,
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

return M
