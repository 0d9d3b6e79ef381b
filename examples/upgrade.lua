#!/usr/bin/env lua5.4
--- upgrade.lua — the seed's FOTA flow on one module, step by step.
--
-- usage: lua5.4 examples/upgrade.lua PORT [--apn APN] [--user U] [--password P]
--                 [--auth none|pap|chap] [--journal FILE] [--reboot-timeout S] [--quiet]
--
-- Prints the AT exchange as the FOTA application guide's test log does
-- ("Run:" / "Response:"), a progress bar while downloading, and ends with the
-- verified new version (exit 0), nothing to do (exit 3: no new version, or one not
-- newer than the running firmware), or the reason of the failure (exit 1).
-- Against the simulator: `make demo`.
local hwfota = require "hwfota"
local argv = require "hwfota.argv"

local function usage(msg)
  io.stderr:write((msg and msg .. "\n" or "") ..
    "usage: upgrade.lua PORT [--apn APN] [--user U] [--password P] [--auth none|pap|chap]\n" ..
    "                   [--journal FILE] [--reboot-timeout S] [--quiet]\n")
  os.exit(2)
end

local o = argv.parse(arg, argv.with(argv.FLOW, {"port", ["--quiet"] = argv.flag("quiet")}), usage,
  {apn = "1234", user = "", password = "", auth = "chap", reboot_timeout = 180})
if not o.port then usage() end
local port_path, quiet = o.port, o.quiet

local tty = os.getenv("TERM") and os.getenv("TERM") ~= "dumb"
local bar_open = false

local function out(s)
  if bar_open then io.write("\n"); bar_open = false end
  print(s)
end

-- The seed log's format: "Run: <command>" and "Response: <lines>".
local function trace(dir, text)
  if quiet then return end
  if dir == "run" then out("Run: " .. text)
  elseif dir == "response" then out("Response: " .. text:gsub("\n", "  "))
  elseif dir == "urc" then out("          " .. text)
  elseif dir == "event" then out("-- " .. text)
  elseif dir == "error" then out("!! " .. text) end
end

local last_pct = -1
local policy = {
  on_new_version = function(info)
    out(("New version %s (%d bytes): %s"):format(info.version, info.size or 0, info.description or ""))
    return "download"
  end,
  on_downloaded = function() return "upgrade" end,
  on_progress = function(p)
    if quiet or p.percent == last_pct then return end
    last_pct = p.percent
    local width = 30
    local fill = math.floor(p.percent * width / 100)
    local line = ("[%s%s] %3d%%  %d/%d bytes"):format(("#"):rep(fill), ("."):rep(width - fill),
                                                    p.percent, p.done, p.total)
    if tty then
      io.write("\r" .. line); io.flush(); bar_open = true
    else
      out(line)
    end
  end,
}

local report = hwfota.run(port_path, policy, {
  apn = o.apn, user = o.user, password = o.password, auth = o.auth,
  -- the seed's AT^FOTAMODE=0,0,1,1: manual query and download, automatic upgrade, resume on
  mode = {auto_query = false, auto_download = false, auto_upgrade = true, resume = true},
  journal = o.journal, reboot_timeout = o.reboot_timeout,
  trace = trace,
})

if report.status == "upgraded" then
  out(("Upgraded and verified: %s -> %s"):format(report.from or "?", report.to or "?"))
  os.exit(0)
elseif report.status == "no_new_version" then
  out("No new version for this module.")
  os.exit(3)
elseif report.status == "not_newer" then
  -- the server offers the version the module runs (or an older one): nothing to do
  out(("The offered version %s is not newer than the running %s: nothing to do.")
      :format(report.version or "?", report.from or "?"))
  os.exit(3)
else
  out(("FOTA %s: %s (%s)"):format(report.status, report.message or "-", report.code or "-"))
  os.exit(1)
end
