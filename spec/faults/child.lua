-- spec/faults/child.lua — one host process of a fault-campaign run.
--
-- Runs hwfota.run on the simulator's port with scaled timings and a fixed
-- policy (download, upgrade), and tells the runner (campaign.lua) on stdout,
-- one line each, what happens:
--   pid <n>                       first line
--   fd0 <count>                   open fds before the run
--   phase <name> | state <code>   on_event phase/state events
--   offer <version|?>             the policy was asked to download this version
--   killself <what>               about to SIGKILL itself (planned fault)
--   report k=v ...                hwfota.run's report (values percent-encoded)
--   report2 k=v ...               tasks=2: the second task's report
--   fd1 <count> <pty fds>         open fds after the run (and pty/ptmx ones)
-- Arguments: key=value words:
--   port= journal= scale= auto_upgrade=0|1 resume=0|1 retry=0|1
--   kill_phase=<name> kill_nth=<n> kill_state=<code> trace=<file>
--   tasks=2: two hwfota.spawn tasks run hwfota.run on the same port object (opened
--   here); exactly one may drive the module at a time, the other must get EBUSY (when
--   the port cannot be opened: one plain run on the path instead)
-- A Lua error propagates (the runner counts a non-zero exit as a crash).

local opt = {}
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k then error("bad argument " .. a) end
  opt[k] = v
end

local out = io.stdout
local function say(s)
  out:write(s, "\n")
  out:flush()
end

local function mypid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end
local pid = mypid()
say("pid " .. pid)

-- fds of this process: count, and those that are terminals (a leaked port).
-- popen may still hold its pipe's write end while ls runs (the parent closes it only
-- after the spawn returns: seen under load as one fd more, or fewer, on either side of
-- a run): both ends of one pipe name the same inode, so a pipe counts once; and the
-- smallest of three listings counts.
local function fds_once()
  local n, ttys, pipes = 0, {}, {}
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"))
  for l in p:lines() do
    local fd, target = l:match("%s(%d+) %-> (.*)$")
    if fd and target:find("^pipe:") then
      if not pipes[target] then n = n + 1 end
      pipes[target] = true
    elseif fd then
      n = n + 1
      if target:find("^/dev/pts/") or target:find("^/dev/ptmx") or target:find("^/dev/tty") then
        ttys[#ttys + 1] = fd .. ":" .. target
      end
    end
  end
  p:close()
  return n, ttys
end

local function fds()
  local n, ttys = fds_once()
  for _ = 1, 2 do
    local m, t = fds_once()
    if m < n then n, ttys = m, t end
  end
  return n, ttys
end

local hwfota = require "hwfota"
-- The loop's wait set (one epoll fd per Lua state, made at the first wait and kept for
-- the state's life) exists before the count: it belongs to no run. A second one, or
-- any fd a run leaves, still shows as I5.
hwfota.sleep(0)
local n0 = fds()
say("fd0 " .. n0)

local scale = tonumber(opt.scale) or 0.02
local function S(x) return x * scale end

local phase_seen, kill_nth = {}, tonumber(opt.kill_nth) or 1
local function killself(what)
  say("killself " .. what)
  os.execute("kill -KILL " .. pid)
  -- not reached
  os.exit(99)
end

local tracef, trace   -- the AT trace (below)
local retried = false
local policy = {
  on_new_version = function(info)
    -- the runner checks that no download starts of a version the host never read
    say("offer " .. tostring(info.version or "?"))
    return "download"
  end,
  on_downloaded = function() return "upgrade" end,
  on_event = function(e)
    if e.event == "phase" then
      say("phase " .. tostring(e.phase))
      phase_seen[e.phase] = (phase_seen[e.phase] or 0) + 1
      if opt.kill_phase == e.phase and phase_seen[e.phase] == kill_nth then
        killself("phase=" .. e.phase)
      end
    elseif e.event == "state" then
      say("state " .. tostring(e.code))
      if opt.kill_state and tonumber(opt.kill_state) == e.code then
        killself("state=" .. e.code)
      end
    end
  end,
}
if opt.retry == "1" then
  policy.on_failure = function()
    if retried then return nil end
    retried = true
    say("retry")
    if tracef then trace("event", "retry") end
    return S(10)
  end
end

-- the AT exchange, for the post-mortem of a failing run (not read by the checks)
tracef = opt.trace and assert(io.open(opt.trace, "w"))
function trace(dir, text)
  tracef:write(("%.4f %s %s\n"):format(hwfota.now(), dir, (text:gsub("\n", "\\n"))))
  tracef:flush()
end

local run_opts = {
  trace = tracef and trace or nil,
  journal = opt.journal,
  apn = "1234", user = "", password = "", auth = "chap",
  mode = {auto_query = false, auto_download = false,
          auto_upgrade = opt.auto_upgrade == "1", resume = opt.resume ~= "0"},
  skip_model_check = true,
  -- not scaled below 2 s: at scale 0.01-0.02 it was 0.3-0.6 s of wall time, which a
  -- loaded machine (3 jobs on 2 cores) misses now and then, turning a clean run into a
  -- timeout the plan never asked for; a planned drop still times out, only later
  command_timeout = math.max(S(30), 2),
  poll_interval = S(3), dl_poll = S(3), dl_poll_idle = S(5), state_poll = S(15),
  resume_interval = S(30), reboot_timeout = S(180), detect_timeout = S(120),
  stall_timeout = S(300), auto_upgrade_wait = S(120), busy_delay = S(2), boot_settle = S(20),
}

local report, report2
if opt.tasks == "2" then
  -- two FOTA operations on one port object in one process (issue 12.4)
  local port, msg, code = hwfota.open(opt.port)
  if not port then
    -- the port is not there to share (e.g. the module resets under a follow-up host):
    -- one plain run on the path, which waits for a module its journal says is resetting
    -- as any host does; no report2, so the runner's two-task check has nothing to judge
    report = hwfota.run(opt.port, policy, run_opts)
  else
    -- each task's report carries when it ran: two runs one after the other (the first
    -- ended before the second began, e.g. at once on a port lost before the start)
    -- are allowed; two at once are not
    local clock = require "hwfota.core"
    local function task()
      local t0 = clock.now()
      local r = hwfota.run(port, policy, run_opts)
      r.t_start, r.t_end = ("%.6f"):format(t0), ("%.6f"):format(clock.now())
      return r
    end
    local t1 = hwfota.spawn(task)
    local t2 = hwfota.spawn(task)
    local failed = hwfota.loop()
    if #failed > 0 then error(failed[1].error) end
    report, report2 = t1.result[1], t2.result[1]
    port:close()
  end
else
  report = hwfota.run(opt.port, policy, run_opts)
end

local function enc(v)
  return (tostring(v):gsub("[%%%s=%c]", function(c) return ("%%%02X"):format(c:byte()) end))
end
local function report_line(word, r)
  local parts = {}
  for _, k in ipairs{"status", "code", "from", "to", "version", "module_code", "phase",
                     "attempts", "journal_error", "guard_error", "message", "t_start", "t_end"} do
    if r[k] ~= nil then parts[#parts + 1] = k .. "=" .. enc(r[k]) end
  end
  say(word .. " " .. table.concat(parts, " "))
end
-- report2 first: the runner takes the "report" line as the end of the run
if report2 then report_line("report2", report2) end
report_line("report", report)

if tracef then tracef:close() end
collectgarbage()
collectgarbage()
local n1, ttys = fds()
say("fd1 " .. n1 .. " " .. table.concat(ttys, ","))
