--- react.lua — `make bench`, row B3: hwfota's reaction to an unsolicited line.
-- Run by react_driver (BENCH_TTY names the pty): the port subscribes to
-- "^BENCH:" (port:on) and the loop is hwfota.poll; the callback takes the time
-- (hwfota.now, CLOCK_MONOTONIC as the driver's). Prints n, median_us, p99_us.
-- Optional arg[1]: "poll" or "epoll", the wait set's backend; arg[2]: a
-- number of idle ports (simulated modules, hwfota-sim) waited on with it.
-- Also prints wakes= (the waits that returned).
local hwfota = require "hwfota"
local core = require "hwfota.core"
if arg[1] then core.pump(arg[1]) end
local port = assert(hwfota.open(assert(os.getenv("BENCH_TTY")), {sync = false}))
local ports, sim = {port}, nil
if tonumber(arg[2] or 0) > 0 then
  sim = require("support.sim").start({"--modules", arg[2]})
  for i, path in ipairs(sim.paths) do ports[i + 1] = assert(hwfota.open(path, {sync = false})) end
  hwfota.poll(ports, 0.2)
end
local lat, done = {}, false
port:on("^BENCH:", function(line)
  local now = hwfota.now()
  lat[#lat + 1] = (now * 1e9 - tonumber(line:match("(%d+)%s*$"))) / 1000
end)
port:on("^BENCHEND", function() done = true end)
io.stdout:write("ready\n")
io.stdout:flush()
local wakes = 0
while not done do
  hwfota.poll(ports, 5)
  wakes = wakes + 1
end
table.sort(lat)
local n = #lat
print(("n=%d median_us=%.1f p99_us=%.1f wakes=%d backend=%s"):format(n,
  n > 0 and lat[n // 2 + 1] or 0, n > 0 and lat[(n * 99) // 100 + 1] or 0, wakes,
  core.pump and (core.pump()) or "poll"))
for _, p in ipairs(ports) do p:close() end
if sim then sim:stop() end
