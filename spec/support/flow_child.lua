--- Child process for spec/flow_journal_spec.lua:
--   lua5.4 spec/support/flow_child.lua PORT JOURNAL [HOLD|-] [setup=CMD,CMD] [read_imei=0]
--     [mode=none] [settle=SECONDS]
-- (mode=none: no `mode` option, the state machine's own AT^FOTAMODE; settle: boot_settle)
-- Runs hwfota.run (automatic upgrade off) with the journal and prints, one line
-- each, flushed: `pid <n>`, `phase <name>`, `run <command>`, `hold <point>`,
-- `report <status> <code> <message>`.
-- HOLD stops the process (it sleeps, the module carries on) at a precise point so
-- the parent can kill it there with SIGKILL:
--   detect          the module answered OK to AT^FOTADET (it is querying)
--   download        the first AT^FOTADLQ answer (the module is downloading)
--   decide_upgrade  on_downloaded (image verified, 40; AT^FWUP not sent)
--   fwup_record     the journal says fwup_sent=1, AT^FWUP not yet written
--   upgrade         the module answered OK to AT^FWUP
--   reboot          the port went away for the reset
--   verify          the port is back after the reset
local hwfota = require "hwfota"
local core = require "hwfota.core"
io.stdout:setvbuf("line")

local port, journal, hold = arg[1], arg[2], arg[3]
-- option overrides, so a fault trigger of the simulator (cmd=...) can be aimed at
-- the second process only
local setup, read_imei, no_mode, settle = nil, true, false, nil
for i = 4, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if k == "setup" then
    setup = {}
    for c in v:gmatch("[^,]+") do setup[#setup + 1] = c end
  elseif k == "read_imei" then read_imei = v ~= "0"
  elseif k == "mode" then no_mode = v == "none"
  elseif k == "settle" then settle = tonumber(v) end
end
local f = assert(io.open("/proc/self/stat"))
print("pid " .. f:read("l"):match("^(%d+)"))
f:close()

local function stop_here(point)
  if hold ~= point then return end
  print("hold " .. point)
  while true do core.poll({}, 60) end   -- until SIGKILL
end

local last_run
local report = hwfota.run(port, {
  on_event = function(e)
    if e.event == "phase" then print("phase " .. e.phase) end
  end,
  on_downloaded = function()
    stop_here("decide_upgrade")
    return "upgrade"
  end,
}, {
  journal = journal, skip_model_check = true, apn = "1234", auth = "chap",
  setup = setup, read_imei = read_imei,
  mode = not no_mode and {auto_query = false, auto_download = false, auto_upgrade = false,
                         resume = true} or nil,
  poll_interval = 0.2, dl_poll = 0.05, dl_poll_idle = 0.1, resume_interval = 0.3,
  reboot_timeout = 5, detect_timeout = 5, command_timeout = 2, boot_settle = settle,
  trace = function(dir, text)
    if dir == "run" then
      if text == "AT^FWUP" then stop_here("fwup_record") end   -- before the write
      last_run = text
      print("run " .. text)
    elseif dir == "response" and text:match("OK$") then
      if last_run == "AT^FOTADET" then stop_here("detect")
      elseif last_run == "AT^FOTADLQ" and text:find("^FOTADLQ:", 1, true) then stop_here("download")
      elseif last_run == "AT^FWUP" then stop_here("upgrade") end
    elseif dir == "event" and text:find("^stale_exclusive: ") then
      print("stale " .. text)
    elseif dir == "event" and text:find("^port lost: waiting") then
      stop_here("reboot")
    elseif dir == "event" and text:find("^port back") then
      stop_here("verify")
    end
  end,
})
print(("report %s %s %s"):format(report.status, tostring(report.code), tostring(report.message)))
os.exit(report.status == "upgraded" and 0 or 1)
