#!/usr/bin/env lua5.4
--- rollout.lua — the nightly rollout a router runs (from cron or the hwfota service).
--
-- usage: lua5.4 examples/rollout.lua PORT [--percent N] [--salt S]
--            [--window HH:MM-HH:MM] [--days mon,tue,...] [--target VERSION]
--            [--from PATTERN] [--wan IFACE] [--really] [--at "DAY HH:MM"]
--            [--journal FILE] [--allow-model MODEL=VERSION]
--
-- One policy composed from the kit (require "hwfota.policy"), in the order it asks:
--   window    only between 01:00 and 05:00 local time (--window, --days);
--   cohort    only the devices whose IMEI hash falls in the first N % of the fleet
--             (--percent, default 10; raise it night after night: 1 -> 10 -> 100);
--   gate      only from the versions the campaign targets (--from, default
--             12.815.03.01.*), only to the pinned --target when given, never a
--             downgrade or the same version;
--   wan_guard the WAN interface down around detection and download (the module
--             refuses FOTA while the host holds a data session), always back up after;
--   retry     4 attempts, backoff from 60 s to 1 h with jitter; never retries an
--             unsupported module or a changed identity.
-- The WAN commands are *stubs* by default: they print what they would run
-- ("[stub] ifdown wan"); --really runs them (OpenWrt's netifd ifdown/ifup).
-- --at "tue 02:30" pretends the local time (a dry run of the window, and the specs).
--
-- Exit codes as the hwfota command's: 0 upgraded, 1 failed, 2 usage, 3 no new version,
-- 5 deferred or rejected (outside the window or the cohort, refused by the gate).
local hwfota = require "hwfota"
local policy = require "hwfota.policy"
local argv = require "hwfota.argv"

local function usage(msg)
  io.stderr:write((msg and ("rollout.lua: " .. msg .. "\n") or "") ..
    "usage: rollout.lua PORT [--percent N] [--salt S] [--window HH:MM-HH:MM] [--days mon,...]\n" ..
    "                  [--target V] [--from PATTERN] [--wan IFACE] [--really] [--at \"DAY HH:MM\"]\n" ..
    "                  [--journal FILE] [--allow-model MODEL=VERSION]\n")
  os.exit(2)
end

local o = {percent = 10, salt = "campaign-2026-11", window = "01:00-05:00",
           from = "12.815.03.01.*", wan = "wan"}
argv.parse(arg, {"port",
  ["--percent"] = argv.number("percent", "--percent needs a number"),
  ["--salt"] = argv.value("salt"),
  ["--window"] = argv.value("window"),
  ["--days"] = argv.value("days"),
  ["--target"] = argv.value("target"),
  ["--from"] = argv.value("from"),
  ["--wan"] = argv.value("wan"),
  ["--really"] = argv.flag("really"),
  ["--at"] = argv.value("at"),
  ["--journal"] = argv.value("journal"),
  ["--allow-model"] = argv.model_row("models"),   -- repeatable
}, usage, o)
if not o.port then usage() end

local function log(fmt, ...) print(os.date("%H:%M:%S ") .. fmt:format(...)) end

-- The clock the window reads: the real local time, or the --at pretence.
local clock
if o.at then
  local DAYS = {sun = 1, mon = 2, tue = 3, wed = 4, thu = 5, fri = 6, sat = 7}
  local d, h, m = o.at:match("^(%a%a%a)%a*%s+(%d%d?):(%d%d)$")
  local wday = d and DAYS[d:lower()]
  if not wday then usage('--at needs "DAY HH:MM", e.g. "tue 02:30"') end
  clock = function() return {wday = wday, hour = tonumber(h), min = tonumber(m), sec = 0} end
end

local ws, we = o.window:match("^(%d%d?:%d%d)%-(%d%d?:%d%d)$")
if not ws then usage("--window needs HH:MM-HH:MM") end
local days
if o.days then
  days = {}
  for d in o.days:gmatch("[^,%s]+") do days[#days + 1] = d end
end
if not o.wan:match("^[%w_%-%.]+$") then usage("bad interface name " .. o.wan) end

-- WAN commands: run for real with --really, else only shown.
local function execute(cmd)
  if o.really then return os.execute(cmd) end
  log("[stub] %s", cmd)
  return true, "exit", 0
end

-- (the blocks raise on invalid options: build them all under pcall)
local ok, p = pcall(function() return policy.all{
  policy.window{ranges = {{ws, we}}, days = days, clock = clock},
  policy.cohort{percent = o.percent, salt = o.salt},
  policy.gate{from = {o.from}, to = o.target},
  policy.wan_guard{down = "ifdown " .. o.wan, up = "ifup " .. o.wan, execute = execute},
  policy.retry{attempts = 4, base = 60, max = 3600, jitter = 0.2,
               fatal = {"EUNSUPPORTED", "EIDENTITY", "EMODULE", "ENOTNEWER"}},
} end)
if not ok then usage(tostring(p)) end

-- Progress and events for the log (a cron mail or logread).
local last = -1
p.on_event = (function(inner)
  return function(e)
    if inner then inner(e) end
    if e.event == "new_version" then
      log("offer: %s (%s bytes)", tostring(e.version), tostring(e.size))
    elseif e.event == "state" then
      log("state %d (%s)", e.code, e.name)
    end
  end
end)(p.on_event)
p.on_progress = (function(inner)
  return function(pr)
    if inner then inner(pr) end
    if pr.percent // 25 ~= last then
      last = pr.percent // 25
      log("download %d%% (%d/%d bytes)", pr.percent, pr.done, pr.total)
    end
  end
end)(p.on_progress)

-- A module left in state 12 by an earlier deferred night holds an offer whose version
-- it does not repeat (AT^FOTASTATE? says only "12"): drop it, so that detection runs
-- again and the gate sees the version (hwfota run does the same).
do
  local s = hwfota.session(o.port)
  local st = s and s:state()
  if st and st.code == 12 then s:cancel() end
  if s then s:close() end
end

log("rollout on %s: window %s, cohort %s %% (salt %s), from %s%s", o.port, o.window,
    tostring(o.percent), o.salt, o.from, o.target and (", target " .. o.target) or "")
local report = hwfota.run(o.port, p, {
  journal = o.journal, models = o.models,
  -- hwfota decides everything: no automatic query, download or upgrade on the module
  mode = {auto_query = false, auto_download = false, auto_upgrade = false, resume = true},
})

local rc
if report.status == "upgraded" then
  log("upgraded and verified: %s -> %s", tostring(report.from), tostring(report.to))
  rc = 0
elseif report.status == "no_new_version" or report.status == "not_newer" then
  log("nothing to do: %s", report.status)
  rc = 3
elseif report.status == "failed" then
  log("failed after %d attempt(s): %s (%s)", report.attempts or 0, tostring(report.message),
      tostring(report.code))
  rc = 1
else
  log("%s: %s%s", report.status, tostring(report.reason or "-"),
      report.retry_after and (", ask again in %d s"):format(math.floor(report.retry_after)) or "")
  rc = 5
end
os.exit(rc)
