--- wake.lua — `make bench`, rows B2 (idle), B3 (reaction) and syscalls per wake.
--
--   lua5.4 spec/bench/wake.lua BUILD_DIR      (alone: `make bench-wake`)
--   dofile("spec/bench/wake.lua")(BUILD_DIR)  (from run.lua: returns the JSON part)
--
-- B2 idle (spec/bench/idle.lua): CPU and wake-ups over BENCH_IDLE_SECONDS
-- (default 60) holding 1 and 100 simulated modules' ports, hwfota against a
-- pyserial script (a thread per port, Serial(timeout=1)).
-- B3 reaction: 1,000 unsolicited lines written into a pty 2 ms apart
-- (build/support/react_driver), timed from the write to the handler: hwfota
-- (spec/bench/react.lua: port:on + hwfota.poll, on epoll and on poll(2)), the
-- floor (build/bench/react_floor: bare poll + read in C) and pyserial readline
-- (spec/bench/react_pyserial.py). Median and p99 in microseconds.
-- Syscalls per wake: react.lua under `strace -f -c`, 400 lines less 100 lines,
-- divided by the waits between them (needs strace).
-- Instructions per wake (callgrind, needs valgrind): react.lua waiting on the
-- written port and N - 1 idle simulated modules, N = 10 and 1,000; 400 lines
-- less 100 lines, divided by the wakes between them.
-- The pyserial rows need Debian's python3-serial (`make bench` installs it as
-- root); without it they say n/a.
local M = {}

local lua = os.getenv("LUA") or "lua5.4"
local python = "/usr/bin/python3"

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  local t = {}
  for k, v in out:gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
  t.ok, t.out = ok, out
  return t
end

local function has(cmd) return os.execute(cmd .. " >/dev/null 2>&1") end

local function fmt(v, f) return type(v) == "number" and (f):format(v) or "n/a" end

local function num(k, v)
  if type(v) ~= "number" then return nil end
  return ('"%s": %s'):format(k, v == math.floor(v) and ("%d"):format(v) or ("%.3f"):format(v))
end

local function obj(t, keys)
  local kv = {}
  for _, k in ipairs(keys) do kv[#kv + 1] = num(k, t[k]) end
  return "{" .. table.concat(kv, ", ") .. "}"
end

function M.run(B)
  local pyserial = has(python .. " -c 'import serial'")
  local strace = has("command -v strace")
  local driver = B .. "/support/react_driver"
  local secs = tonumber(os.getenv("BENCH_IDLE_SECONDS")) or 60

  -- B2 idle
  print("")
  print(("B2 idle: %g s holding N ports open, nothing to do (hwfota.poll vs pyserial, a thread per port, timeout=1)")
    :format(secs))
  print(("%-4s | %-12s | %-14s | %-13s | %-15s"):format("N", "hwfota CPU ms", "hwfota wake-ups",
    "pyserial CPU ms", "pyserial wake-ups"))
  local idle = {}
  for _, n in ipairs({1, 100}) do
    local h = run(("%s spec/bench/idle.lua %d %g"):format(lua, n, secs))
    local p = pyserial and run(("%s spec/bench/idle.lua %d %g pyserial"):format(lua, n, secs)) or {}
    idle[#idle + 1] = {n = n, seconds = secs, cpu_ms = h.cpu_ms, wakeups = h.wakeups,
      peer_cpu_ms = p.cpu_ms, peer_wakeups = p.wakeups}
    print(("%-4d | %-12s | %-14s | %-13s | %-15s"):format(n, fmt(h.cpu_ms, "%.2f"),
      tostring(h.wakeups or h.error or "n/a"), fmt(p.cpu_ms, "%.2f"), tostring(p.wakeups or "n/a")))
  end

  -- B3 reaction
  local react = {}
  local subjects = {
    {"floor (C poll+read)", B .. "/bench/react_floor"},
    {"hwfota (epoll)", lua .. " spec/bench/react.lua epoll"},
    {"hwfota (poll)", lua .. " spec/bench/react.lua poll"},
  }
  if pyserial then subjects[#subjects + 1] = {"pyserial readline", python .. " spec/bench/react_pyserial.py"} end
  print("")
  print("B3 reaction: 1,000 unsolicited lines, 2 ms apart, written -> handler (microseconds)")
  print(("%-20s | %-8s | %-8s | %s"):format("who", "median", "p99", "median vs floor"))
  local floor
  for _, s in ipairs(subjects) do
    local r = run(("%s 1000 2000 %s"):format(driver, s[2]))
    r.who = s[1]
    if not floor then floor = r end
    react[#react + 1] = r
    local vs = ""
    if r ~= floor and r.median_us and floor.median_us then
      vs = ("+%.1f us (%.2fx)"):format(r.median_us - floor.median_us, r.median_us / floor.median_us)
    end
    print(("%-20s | %-8s | %-8s | %s"):format(s[1], fmt(r.median_us, "%.1f"), fmt(r.p99_us, "%.1f"), vs))
  end

  -- syscalls per wake
  local sys = {}
  print("")
  print("Syscalls per wake (one unsolicited line on an idle port; strace -c; before: 4 = poll, read, 0-byte read, poll(0))")
  if not strace then
    print("(strace not found: not counted)")
  else
    for _, backend in ipairs({"epoll", "poll"}) do
      local tot = {}
      for _, n in ipairs({100, 400}) do
        local f = os.tmpname()
        run(("%s %d 3000 strace -f -c -o %s %s spec/bench/react.lua %s"):format(driver, n, f, lua, backend))
        local t = {total = 0, waits = 0}
        for line in io.lines(f) do
          local calls, name = line:match("^%s*[%d%.]+%s+[%d%.]+%s+%d+%s+(%d+)%s+%d*%s*(%S+)$")
          if name == "total" then t.total = tonumber(calls)
          elseif name and (name == "poll" or name:match("^epoll_p?wait")) then t.waits = t.waits + tonumber(calls) end
        end
        os.remove(f)
        tot[n] = t
      end
      local per = (tot[400].total - tot[100].total) / (tot[400].waits - tot[100].waits)
      sys[#sys + 1] = {backend = backend, per_wake = per}
      print(("%-6s: %.2f syscalls per wake (before: 4, ratio %.2fx)"):format(backend, per, 4 / per))
    end
  end

  -- instructions per wake, N = 10 vs 1,000 ports (one ready)
  local ipw = {}
  if has("command -v valgrind") then
    print("")
    print("Instructions per wake (callgrind; one port written, N - 1 idle simulated modules, epoll)")
    for _, n in ipairs({10, 1000}) do
      local r = {}
      for _, lines in ipairs({100, 400}) do
        local f = os.tmpname()
        local o = run(("%s %d 5000 valgrind --tool=callgrind --callgrind-out-file=%s %s spec/bench/react.lua epoll %d")
          :format(driver, lines, f, lua, n - 1))
        os.remove(f)
        r[lines] = {ir = tonumber(o.out:match("Collected : (%d+)")), wakes = o.wakes}
      end
      local row = {n = n}
      if r[100].ir and r[400].ir and r[400].wakes and r[100].wakes and r[400].wakes > r[100].wakes then
        row.per_wake = (r[400].ir - r[100].ir) / (r[400].wakes - r[100].wakes)
      end
      ipw[#ipw + 1] = row
      print(("N=%-5d %s instructions per wake"):format(n, fmt(row.per_wake, "%.0f")))
    end
    if ipw[1].per_wake and ipw[2].per_wake then
      print(("per idle port per wake: %.0f instructions"):format((ipw[2].per_wake - ipw[1].per_wake) / 990))
    end
  end

  local parts = {}
  for _, r in ipairs(idle) do
    parts[#parts + 1] = "    " .. obj(r, {"n", "seconds", "cpu_ms", "wakeups", "peer_cpu_ms", "peer_wakeups"})
  end
  local rparts = {}
  for _, r in ipairs(react) do
    rparts[#rparts + 1] = ('    {"who": "%s", %s'):format(r.who, obj(r, {"n", "median_us", "p99_us"}):sub(2))
  end
  local sparts = {}
  for _, r in ipairs(sys) do
    sparts[#sparts + 1] = ('    {"backend": "%s", "before": 4, %s'):format(r.backend, obj(r, {"per_wake"}):sub(2))
  end
  local iparts = {}
  for _, r in ipairs(ipw) do iparts[#iparts + 1] = "    " .. obj(r, {"n", "per_wake"}) end
  return '  "instructions_per_wake": [\n' .. table.concat(iparts, ",\n") .. "\n  ],\n" ..
    '  "B2_idle": [\n' .. table.concat(parts, ",\n") .. "\n  ],\n" ..
    '  "B3_reaction": [\n' .. table.concat(rparts, ",\n") .. "\n  ],\n" ..
    '  "syscalls_per_wake": [\n' .. table.concat(sparts, ",\n") .. "\n  ]"
end

if arg and arg[0] and arg[0]:match("wake%.lua$") then
  local B = arg[1] or "build"
  local json = M.run(B)
  local f = assert(io.open(B .. "/bench_wake.json", "w"))
  f:write("{\n", json, "\n}\n")
  f:close()
  print("wrote " .. B .. "/bench_wake.json")
end

return M.run
