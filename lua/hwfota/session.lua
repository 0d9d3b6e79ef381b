--- hwfota.session: the step-by-step API on one module (`hwfota.session`).
--
-- Each step (info, state, configure, mode, detect, download, upgrade, pause, resume,
-- cancel) sends the C command table's commands (`core.fota_command`) and reads them
-- with its parsers; the flow steps drive the state machine through `hwfota.run`.
-- Public entry point: `hwfota.session` (documented in lua/hwfota/init.lua).
--
-- @module hwfota.session

local core = require "hwfota.core"
local loop = require "hwfota.loop"
local driver = require "hwfota.driver"
local options = require "hwfota.options"
local run = require "hwfota.run"

local M = {}

local check_journal_path = driver.check_journal_path
local claim, release, port_key, shallow_copy = driver.claim, driver.release, driver.port_key,
                                               driver.shallow_copy
local bad_option, check_opts = options.bad_option, options.check
local split_opts, ensure_port = options.split, options.ensure_port
local read_fotacfg = run.read_fotacfg

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
  local text, opts, code = driver.fota_request(name, params, timeout)
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
  local report = run.run(self.port, policy, o, carry and self.snapshot or nil, self.owner)
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
