--- idle.lua — `make bench`, row B2 (idle): CPU time and wake-ups of a process
-- holding N simulated modules' ports open with nothing to do.
--
--   lua5.4 spec/bench/idle.lua N SECONDS [hwfota|pyserial]
--
-- hwfota: this process opens the N ports and waits in hwfota.poll until
-- SECONDS have passed. pyserial (the peer): /usr/bin/python3
-- spec/bench/idle_pyserial.py, one thread per port, each a read loop with
-- Serial(timeout=1), as scripts are written. Measured over the window only
-- (after the ports are open and 0.5 s of settling): CPU (user+system, this
-- process) and wake-ups (voluntary context switches of every thread, from
-- /proc/self/task/*/status: each is a wait that ended; the one wait that
-- ends the window counts too). Prints one line: n=, seconds=, cpu_ms=, wakeups=.
-- Needs LUA_PATH/LUA_CPATH as the specs' (spec/ on it).
local hwfota = require "hwfota"
local sim = require "support.sim"

local n = tonumber(arg[1]) or 1
local seconds = tonumber(arg[2]) or 60
local who = arg[3] or "hwfota"

-- times this process (one thread) gave up the CPU to wait: its wake-ups so far
local function switches()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("\nvoluntary_ctxt_switches:%s*(%d+)"))
end

local s = sim.start({"--modules", tostring(n)})
local ok, err = pcall(function()
  if who == "pyserial" then
    local cmd = ("/usr/bin/python3 spec/bench/idle_pyserial.py %s %s"):format(seconds,
      table.concat(s.paths, " "))
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    assert(p:close(), "idle_pyserial.py failed: " .. out)
    io.write(("n=%d "):format(n), out)
    return
  end
  local ports = {}
  for i, path in ipairs(s.paths) do ports[i] = assert(hwfota.open(path, {sync = false})) end
  local settle = hwfota.now() + 0.5
  while hwfota.now() < settle do hwfota.poll(ports, settle - hwfota.now()) end
  local w0, c0, t0 = switches(), os.clock(), hwfota.now()
  local stop = t0 + seconds
  while hwfota.now() < stop do hwfota.poll(ports, stop - hwfota.now()) end
  local cpu, w1 = os.clock() - c0, switches()
  print(("n=%d seconds=%.1f cpu_ms=%.2f wakeups=%d"):format(n, hwfota.now() - t0, cpu * 1000,
    w1 - w0))
  for _, p in ipairs(ports) do p:close() end
end)
s:stop()
if not ok then
  print(("n=%d error=%s"):format(n, tostring(err):gsub("%s+", "_")))
  os.exit(1)
end
