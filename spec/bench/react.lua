--- react.lua — `make bench`, row B3: hwfota's reaction to an unsolicited line.
-- Run by react_driver (BENCH_TTY names the pty): the port subscribes to
-- "^BENCH:" (port:on) and the loop is hwfota.poll; the callback takes the time
-- (hwfota.now, CLOCK_MONOTONIC as the driver's). Prints n, median_us, p99_us.
-- Optional arg[1]: "poll" or "epoll", the wait set's backend.
local hwfota = require "hwfota"
local core = require "hwfota.core"
if arg[1] then core.pump(arg[1]) end
local port = assert(hwfota.open(assert(os.getenv("BENCH_TTY")), {sync = false}))
local lat, done = {}, false
port:on("^BENCH:", function(line)
  local now = hwfota.now()
  lat[#lat + 1] = (now * 1e9 - tonumber(line:match("(%d+)%s*$"))) / 1000
end)
port:on("^BENCHEND", function() done = true end)
io.stdout:write("ready\n")
io.stdout:flush()
while not done do hwfota.poll({port}, 5) end
table.sort(lat)
local n = #lat
print(("n=%d median_us=%.1f p99_us=%.1f backend=%s"):format(n, n > 0 and lat[n // 2 + 1] or 0,
  n > 0 and lat[(n * 99) // 100 + 1] or 0, core.pump and (core.pump()) or "poll"))
port:close()
