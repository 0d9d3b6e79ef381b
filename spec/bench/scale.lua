--- scale.lua — `make bench`, row B5 (scale): N simulated modules through hwfota.run
-- in one process (hwfota.spawn + hwfota.loop).
--
--   lua5.4 spec/bench/scale.lua N [TIME_SCALE]
--
-- Prints one line of key=value figures: n, ok (upgraded), failures, wall (s),
-- cpu (s, this process only: os.clock), cpu_per_module_ms, rss_base_kb (before
-- the first port opens), rss_peak_kb (VmHWM), rss_per_module_kb ((peak - base) / N),
-- fds_peak (open fds of this process, sampled every 0.25 s) and, on failure, the
-- first failure's message. Needs LUA_PATH/LUA_CPATH as the specs' (spec/ on it).
local hwfota = require "hwfota"
local sim = require "support.sim"

local n = tonumber(arg[1]) or 1
local scale = arg[2] or "0.05"

local function status_kb(key)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(key .. ":%s*(%d+)")) or 0
end

local function count_fds()
  local p = io.popen("ls /proc/" .. tostring(sim.self_pid or "self") .. "/fd 2>/dev/null | wc -l")
  local c = tonumber(p:read("a")) or 0
  p:close()
  return c
end

-- this process's pid (for the fd count: `ls /proc/self` would be ls's own)
do
  local f = assert(io.open("/proc/self/stat"))
  sim.self_pid = f:read("a"):match("^(%d+)")
  f:close()
end

local s = sim.start({"--time-scale", scale, "--modules", tostring(n)})
local ok, err = pcall(function()
  -- timeouts 4x the specs' (a loaded machine with many modules answers later)
  local o = sim.opts{skip_model_check = true, command_timeout = 8, reboot_timeout = 20,
                     detect_timeout = 20, stall_timeout = 20, auto_upgrade_wait = 20}
  collectgarbage()
  local rss_base = status_kb("VmRSS")
  local fds_peak, done = count_fds(), 0
  local reports = {}
  local c0, t0 = os.clock(), hwfota.now()
  for i, path in ipairs(s.paths) do
    hwfota.spawn(function()
      local r, e = hwfota.run(path, {}, o)
      reports[i] = r or {status = "error", message = tostring(e)}
      done = done + 1
    end)
  end
  hwfota.spawn(function()
    while done < n do
      local c = count_fds()
      if c > fds_peak then fds_peak = c end
      hwfota.sleep(0.25)
    end
  end)
  local errs = hwfota.loop()
  local wall, cpu = hwfota.now() - t0, os.clock() - c0
  local upgraded, first = 0, nil
  for i = 1, n do
    local r = reports[i]
    if r and r.status == "upgraded" then
      upgraded = upgraded + 1
    elseif not first then
      first = r and (r.status .. ": " .. tostring(r.message)) or "no report"
    end
  end
  if #errs > 0 and not first then first = tostring(errs[1]) end
  local peak = status_kb("VmHWM")
  print(("n=%d ok=%d failures=%d wall=%.3f cpu=%.3f cpu_per_module_ms=%.3f rss_base_kb=%d rss_peak_kb=%d rss_per_module_kb=%.1f fds_peak=%d%s"):format(
    n, upgraded, n - upgraded, wall, cpu, cpu / n * 1000, rss_base, peak,
    (peak - rss_base) / n, fds_peak, first and (" first_failure=" .. first:gsub("%s+", "_")) or ""))
end)
s:stop()
if not ok then
  print(("n=%d ok=0 failures=%d error=%s"):format(n, n, tostring(err):gsub("%s+", "_")))
end
