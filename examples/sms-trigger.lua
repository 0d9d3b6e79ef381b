#!/usr/bin/env lua5.4
--- sms-trigger.lua — start the FOTA flow when an SMS with a keyword arrives from an
-- authorised number (the seed's step 1).
--
-- usage: lua5.4 examples/sms-trigger.lua PORT --allow NUMBER [--allow NUMBER ...]
--          --keyword TEXT [--once] [--timeout S] [--apn APN] [--user U] [--password P]
--          [--auth none|pap|chap] [--journal FILE] [--reboot-timeout S]
--
-- The port stays open. The module is put in text mode with new-message indications
-- (AT+CMGF=1, AT+CPMS="SM","SM","SM", AT+CNMI=2,1,0,0,0), then:
--   * messages stored while nobody listened are taken first (AT+CMGL="REC UNREAD");
--   * each "+CMTI: "SM",<index>" queues that index (hwfota.trigger.sms inbox: woken on
--     the poll loop by the indication itself);
--   * each message is read (AT+CMGR=<index>) and deleted (AT+CMGD=<index>) before it is
--     judged, whether it is accepted or not: a message is acted on at most once, even if
--     the flow then resets the module or this script dies, and the SIM's storage (20
--     slots or so) never fills up with rejected messages. Use a dedicated SIM: every
--     message that arrives is consumed;
--   * a message is a trigger when its sender, trimmed, equals one of the --allow numbers
--     exactly and its text, trimmed, equals --keyword exactly (case matters);
--   * a trigger runs hwfota.run on the same port (as examples/upgrade.lua does) and prints
--     the outcome; then text mode and indications are set again (a reset clears them)
--     and unread messages that arrived meanwhile are listed.
--
-- Nothing from an SMS is ever put into a command: the only value taken from the module's
-- lines is the storage index, and it must be a plain decimal integer (0..65535) in a
-- well-formed "+CMTI:" / "+CMGL:" line; anything else (e.g. '+CMTI: "SM",1;AT^FWUP') is
-- reported and ignored.
-- Known limit of text mode: a text whose single line reads "OK" or "ERROR" ends the
-- AT+CMGR response early, so the message reads as empty (rejected, deleted).
--
-- Exit status: with --once, the flow's (0 upgraded, 3 no new version, 1 failed);
-- 4 when --timeout expires before a trigger; 2 usage; 1 the port cannot be opened.
--
-- Against the simulator (the SMS arrives 1 model second after start):
--   build/hwfota-sim --time-scale 0.1 --sms "time=1:+8613800000000:FOTA UPGRADE" &
--   lua5.4 examples/sms-trigger.lua /tmp/hwfota-sim/ttyUSB2 --allow +8613800000000 \
--       --keyword "FOTA UPGRADE" --once
local M = require "hwfota.trigger.sms"   -- the parsers and the rule (used below)

if ... == "--as-library" then return M end

-- =================================================================== the script

local hwfota = require "hwfota"
io.stdout:setvbuf("line")

local function usage(msg)
  io.stderr:write((msg and msg .. "\n" or "") ..
    "usage: sms-trigger.lua PORT --allow NUMBER [--allow NUMBER ...] --keyword TEXT [--once]\n" ..
    "         [--timeout S] [--apn APN] [--user U] [--password P] [--auth none|pap|chap]\n" ..
    "         [--journal FILE] [--reboot-timeout S]\n")
  os.exit(2)
end

local port_path
local cfg = {allow = {}, keyword = nil}
local o = {apn = "1234", user = "", password = "", auth = "chap", reboot_timeout = 180}
local once, timeout = false, nil
local i = 1
while i <= #arg do
  local a = arg[i]
  local function val() i = i + 1; return arg[i] or usage("missing value after " .. a) end
  if a == "--allow" then
    for n in val():gmatch("[^,]+") do
      n = M.trim(n)
      if n ~= "" then cfg.allow[n] = true end
    end
  elseif a == "--keyword" then cfg.keyword = M.trim(val())
  elseif a == "--once" then once = true
  elseif a == "--timeout" then timeout = tonumber(val()) or usage("bad number")
  elseif a == "--apn" then o.apn = val()
  elseif a == "--user" then o.user = val()
  elseif a == "--password" then o.password = val()
  elseif a == "--auth" then o.auth = val()
  elseif a == "--journal" then o.journal = val()
  elseif a == "--reboot-timeout" then o.reboot_timeout = tonumber(val()) or usage("bad number")
  elseif a:sub(1, 1) == "-" then usage("unknown option " .. a)
  elseif not port_path then port_path = a
  else usage("too many arguments") end
  i = i + 1
end
if not port_path then usage() end
if not next(cfg.allow) then usage("at least one --allow NUMBER is needed") end
if not cfg.keyword or cfg.keyword == "" then usage("--keyword TEXT is needed") end

local function say(fmt, ...) print("sms-trigger: " .. fmt:format(...)) end
local function warn(fmt, ...) io.stderr:write("sms-trigger: " .. fmt:format(...) .. "\n") end

local port, msg, code = hwfota.open(port_path)
if not port then warn("cannot open %s: %s (%s)", port_path, msg, code); os.exit(1) end

local inbox = M.inbox(port, function(line, why)
  warn("ignored indication %s: %s", M.show(line), why)
end)
local function enqueue(idx) inbox:push(idx) end

-- Text mode, SIM storage, indications on; then what arrived while nobody listened.
local function setup()
  for _, c in ipairs{'AT+CMGF=1', 'AT+CPMS="SM","SM","SM"', 'AT+CNMI=2,1,0,0,0'} do
    local res, m, k = port:command(c, {timeout = 10})
    if not res then return nil, ("%s: %s"):format(c, m), k end
  end
  local res, m, k = port:command('AT+CMGL="REC UNREAD"', {timeout = 20})
  if not res then return nil, "AT+CMGL: " .. tostring(m), k end
  local list, bad = M.parse_cmgl(res.lines)
  for _, l in ipairs(bad) do warn("ignored list line %s", M.show(l)) end
  for _, idx in ipairs(list) do enqueue(idx) end
  return true
end

-- After a reset nobody asked for (power loss, USB glitch): reopen, set up again.
local function reconnect(until_t)
  local delay = 0.2
  while true do
    if until_t and hwfota.now() >= until_t then return false end
    if port:reopen() then
      local ok, m = setup()
      if ok then return true end
      warn("setup after reopen failed: %s", m)
    end
    hwfota.poll({}, delay)   -- a plain wait (no port to watch), backing off to 5 s
    delay = math.min(delay * 2, 5)
  end
end

local exit_for = {upgraded = 0, no_new_version = 3}

local function run_flow()
  local report = hwfota.run(port, {
    on_new_version = function(info)
      say("new version %s (%d bytes)", tostring(info.version), info.size or 0)
      return "download"
    end,
    on_downloaded = function() return "upgrade" end,
  }, {
    apn = o.apn, user = o.user, password = o.password, auth = o.auth,
    mode = {auto_query = false, auto_download = false, auto_upgrade = true, resume = true},
    journal = o.journal, reboot_timeout = o.reboot_timeout,
  })
  if report.status == "upgraded" then
    say("upgraded and verified: %s -> %s", report.from or "?", report.to or "?")
  elseif report.status == "no_new_version" then
    say("no new version for this module")
  else
    say("FOTA %s: %s (%s)", report.status, report.message or "-", report.code or "-")
  end
  return exit_for[report.status] or 1
end

-- Read, delete, judge one message. Returns the flow's exit code when it ran.
local function handle(idx)
  local res, m, k = port:command(("AT+CMGR=%d"):format(idx), {timeout = 10})
  if k == "EPORTLOST" then enqueue(idx); return nil end
  local dres, dm = port:command(("AT+CMGD=%d"):format(idx), {timeout = 10})
  if not dres then warn("AT+CMGD=%d failed: %s", idx, tostring(dm)) end
  if not res then
    if k ~= "ECMS" then warn("AT+CMGR=%d failed: %s (%s)", idx, tostring(m), tostring(k)) end
    return nil   -- +CMS ERROR: 321 is an empty slot (already handled)
  end
  local sms, why = M.parse_cmgr(res.lines)
  if not sms then warn("message %d unreadable: %s", idx, why); return nil end
  local ok, reason = M.check(sms, cfg)
  if not ok then
    say("message %d from %s ignored (%s), deleted", idx, M.show(sms.from), reason)
    return nil
  end
  say("trigger from %s (message %d, deleted): starting FOTA", M.trim(sms.from), idx)
  return run_flow()
end

local ok, m = setup()
if not ok then warn("setup failed: %s", m); os.exit(1) end
say("waiting on %s for %s from %d authorised number(s)", port_path, M.show(cfg.keyword),
    (function() local n = 0; for _ in pairs(cfg.allow) do n = n + 1 end; return n end)())

local deadline = timeout and hwfota.now() + timeout
local last
while true do
  for idx in function() return inbox:pop() end do
    local rc = handle(idx)
    if rc then
      last = rc
      if once then port:close(); os.exit(rc) end
      if port:is_lost() then reconnect(nil) end
      local sok, sm = setup()
      if not sok then warn("setup after the flow failed: %s", sm) end
    end
  end
  local wait
  if deadline then
    wait = deadline - hwfota.now()
    if wait <= 0 then break end
  end
  local n, pm = inbox:wait(wait)
  if n == nil then
    warn("port lost (%s); reopening", tostring(pm))
    if not reconnect(deadline) then break end
  end
end
say("timeout: %s", last and "done" or "no trigger")
port:close()
os.exit(last or 4)
