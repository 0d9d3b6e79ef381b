--- run.lua — `make bench`: runs the rows, prints the table, writes build/bench.json.
--
--   lua5.4 spec/bench/run.lua BUILD_DIR
--
-- Row B1 (parsing): build/bench/bench_parse (the AT engine, C) and
-- spec/bench/lua_classifier.lua (the pure-Lua peer) on the same transcript, in
-- 1-, 64- and 4096-byte chunks. Instructions/byte come from callgrind when
-- valgrind is installed (the C driver toggles instrumentation around its
-- measured passes; for Lua, a run that feeds nothing is subtracted); MB/s from
-- the clock, over more passes, outside valgrind.
-- Row B4 (footprint): spec/bench/footprint.sh. Row B5 (scale): spec/bench/scale.lua
-- for N = 1, 10, 100, 1000 simulated modules in one process. Row B6 (overhead):
-- spec/bench/overhead.lua, the seed flow's wall time against the simulated module's
-- own timeline, for hwfota and its peers (a pyserial script, a pppd chat script;
-- each skipped with a note when its Debian package is missing). Rows B2 (idle), B3
-- (reaction) and syscalls per wake: spec/bench/wake.lua.

local B = arg[1] or "build"
local driver = B .. "/bench/bench_parse"
local transcript = B .. "/bench/transcript.txt"
local peer = "spec/bench/lua_classifier.lua"
local lua = os.getenv("LUA") or "lua5.4"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  if not ok then error(("bench: `%s` failed (%s):\n%s"):format(cmd, tostring(code), out)) end
  return out
end

local function fields(out)
  local t = {}
  for k, v in out:gmatch("(%a+)=([%d%.]+)") do t[k] = tonumber(v) end
  assert(t.bytes, "bench: no figures in:\n" .. out)
  return t
end

local has_valgrind = os.execute("command -v valgrind >/dev/null 2>&1")

-- Instructions counted by callgrind for one command (its "Collected" total).
local function callgrind(cmd, opts)
  local out_file = B .. "/bench/callgrind.out"
  local out = sh(("valgrind --tool=callgrind %s --callgrind-out-file=%s %s"):format(opts or "", out_file, cmd))
  local ir = out:match("Collected : (%d+)")
  assert(ir, "bench: no callgrind total in:\n" .. out)
  os.remove(out_file)
  return tonumber(ir), out
end

sh(("%s dump %s"):format(driver, transcript))

local chunks = { 1, 64, 4096 }
local rows = {}
for _, c in ipairs(chunks) do
  local r = { chunk = c }
  -- wall clock: enough passes for ~4 MB (C) and ~0.4-4 MB (Lua)
  local cw = fields(sh(("%s run %d 2000"):format(driver, c)))
  r.c_mbs = cw.bytes / cw.seconds / 1e6
  r.c_allocs_per_line = cw.allocs / cw.lines
  r.lines = cw.lines
  local lpasses = c == 1 and 50 or 500
  local lw = fields(sh(("%s %s %s %d %d"):format(lua, peer, transcript, c, lpasses)))
  r.lua_mbs = lw.bytes / lw.seconds / 1e6
  if has_valgrind then
    local passes = 20
    local ir, out = callgrind(("%s run %d %d"):format(driver, c, passes), "--instr-atstart=no")
    r.c_ipb = ir / fields(out).bytes
    local full, lout = callgrind(("%s %s %s %d %d"):format(lua, peer, transcript, c, passes))
    local base = callgrind(("%s %s %s %d 0"):format(lua, peer, transcript, c))
    -- the full run also feeds a warm-up pass: passes + 1 passes of feeding
    r.lua_ipb = (full - base) / (fields(lout).bytes / passes * (passes + 1))
    r.ratio = r.lua_ipb / r.c_ipb
  end
  rows[#rows + 1] = r
end

local function fmt(v, f) return v and (f):format(v) or "n/a" end
print("B1 parsing: AT engine (C) vs pure-Lua classifier, same transcript, commands in flight")
print(("%-7s | %-12s | %-12s | %-6s | %-10s | %-10s | %-10s"):format(
  "chunk", "C instr/B", "Lua instr/B", "ratio", "C MB/s", "Lua MB/s", "C allocs/line"))
for _, r in ipairs(rows) do
  print(("%-7d | %-12s | %-12s | %-6s | %-10s | %-10s | %-10s"):format(r.chunk,
    fmt(r.c_ipb, "%.1f"), fmt(r.lua_ipb, "%.0f"), fmt(r.ratio, "%.0fx"),
    fmt(r.c_mbs, "%.0f"), fmt(r.lua_mbs, "%.1f"), fmt(r.c_allocs_per_line, "%g")))
end
if not has_valgrind then print("(valgrind not found: no instruction counts)") end

-- B4 footprint: spec/bench/footprint.sh prints key=value lines.
local fp = {}
local fp_out = sh(("sh spec/bench/footprint.sh %s"):format(B))
for k, v in fp_out:gmatch("([%w_]+)=(%d+)") do fp[k] = tonumber(v) end
local objs = {}
for k, v in pairs(fp) do
  local name = k:match("^obj_(.+)")
  if name then objs[#objs + 1] = { name = name, bytes = v } end
end
table.sort(objs, function(a, b) return a.bytes > b.bytes end)
print("")
print("B4 footprint (router build: -Os, gc-sections, stripped)")
print(("stripped hwfota/core.so: %d bytes (%.1f KiB; target <= 64 KiB; peer lua-cjson ~40 KB)"):format(
  fp.stripped_core, fp.stripped_core / 1024))
local where = {}
for i = 1, math.min(6, #objs) do where[#where + 1] = ("%s %.1f"):format(objs[i].name, objs[i].bytes / 1024) end
print("largest objects, KiB of text+data before gc: " .. table.concat(where, ", "))
if fp.rss_flow_kb then
  print(("RSS of the seed flow: %d KB, above bare lua5.4 (%d KB): %d KB"):format(
    fp.rss_flow_kb, fp.rss_bare_kb, fp.rss_flow_kb - fp.rss_bare_kb))
end

-- B5 scale: spec/bench/scale.lua, one child process per N (key=value line each).
local scale_rows = {}
print("")
print("B5 scale: N simulated modules through hwfota.run in one process (hwfota-sim --modules N, --time-scale 0.05)")
print(("%-5s | %-8s | %-8s | %-8s | %-11s | %-11s | %-6s | %s"):format(
  "N", "failures", "wall s", "CPU s", "CPU/mod ms", "RSS/mod KB", "fds", "first failure"))
for _, n in ipairs({ 1, 10, 100, 1000 }) do
  local out = sh(("%s spec/bench/scale.lua %d"):format(lua, n))
  local r = {}
  for k, v in out:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
  scale_rows[#scale_rows + 1] = r
  print(("%-5d | %-8s | %-8s | %-8s | %-11s | %-11s | %-6s | %s"):format(n, tostring(r.failures),
    fmt(r.wall, "%.2f"), fmt(r.cpu, "%.2f"), fmt(r.cpu_per_module_ms, "%.2f"),
    fmt(r.rss_per_module_kb, "%.1f"), tostring(r.fds_peak or "n/a"),
    tostring(r.first_failure or r.error or "")))
end

-- B2 idle, B3 reaction, syscalls per wake: spec/bench/wake.lua (its JSON part)
local wake_json = dofile("spec/bench/wake.lua")(B)

-- B6 overhead: spec/bench/overhead.lua, one child process per flow (its median line).
print("")
print("B6 overhead: the seed flow's wall time vs the simulated module's own timeline "
  .. "(hwfota-sim --time-scale " .. (os.getenv("HWFOTA_BENCH_SCALE") or "0.25") .. ", median of 3 runs)")
local peers_ok = {
  hwfota = true,
  pyserial = os.execute("/usr/bin/python3 -c 'import serial' >/dev/null 2>&1") and true or false,
  chat = os.execute("test -x /usr/sbin/chat") and true or false,
}
local peer_pkg = {pyserial = "python3-serial", chat = "ppp"}
local b6 = {}
print(("%-9s | %-8s | %-10s | %-10s | %-8s | %-7s | %-11s | %-12s | %s"):format("flow", "wall s",
  "module s", "overhead s", "overhead", "ratio", "reattach ms", "sync quiet s", "overhead w/o quiet"))
for _, flow in ipairs{"hwfota", "pyserial", "chat"} do
  if peers_ok[flow] then
    local out = sh(("%s spec/bench/overhead.lua %s 3"):format(lua, flow))
    local r = {}
    for k, v in (out:match("median ([^\n]*)") or ""):gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
    b6[flow] = r
    print(("%-9s | %-8.3f | %-10.3f | %-10.3f | %-8s | %-7.3f | %-11.1f | %-12.3f | %s"):format(flow,
      r.wall, r.timeline, r.overhead, ("%.2f %%"):format(r.pct), r.ratio, r.reattach * 1000, r.quiet,
      ("%.2f %%"):format(r.pct_no_quiet)))
  else
    print(("%-9s | skipped: Debian package %s is not installed (make bench installs it as root)")
      :format(flow, peer_pkg[flow]))
  end
end
for _, flow in ipairs{"pyserial", "chat"} do
  if b6[flow] then
    -- overheads, not walls, compare: the timelines differ (hwfota's seed flow lets
    -- the module upgrade by itself, the peers send AT^FWUP)
    print(("hwfota vs %s: overhead %.2f x the peer's (%.2f x without the sync quiet), "
      .. "reattach after the reset %.0f x faster"):format(flow,
      b6.hwfota.overhead / b6[flow].overhead, (b6.hwfota.overhead - b6.hwfota.quiet) / b6[flow].overhead,
      b6[flow].reattach / math.max(b6.hwfota.reattach, 1e-4)))
  end
end

-- build/bench.json (hand-written: no JSON library needed)
local parts = {}
for _, r in ipairs(rows) do
  local kv = {}
  for _, k in ipairs({ "chunk", "c_ipb", "lua_ipb", "ratio", "c_mbs", "lua_mbs", "c_allocs_per_line", "lines" }) do
    if r[k] then kv[#kv + 1] = ('"%s": %s'):format(k, (r[k] == math.floor(r[k]) and "%d" or "%.3f"):format(r[k])) end
  end
  parts[#parts + 1] = "    {" .. table.concat(kv, ", ") .. "}"
end
local f = assert(io.open(B .. "/bench.json", "w"))
local fkv = {}
for _, k in ipairs({ "stripped_core", "rss_bare_kb", "rss_flow_kb" }) do
  if fp[k] then fkv[#fkv + 1] = ('"%s": %d'):format(k, fp[k]) end
end
local b5_parts = {}
for _, r in ipairs(scale_rows) do
  local kv = {}
  for _, k in ipairs({ "n", "ok", "failures", "wall", "cpu", "cpu_per_module_ms", "rss_base_kb", "rss_peak_kb", "rss_per_module_kb", "fds_peak" }) do
    if type(r[k]) == "number" then kv[#kv + 1] = ('"%s": %s'):format(k, (r[k] == math.floor(r[k]) and "%d" or "%.3f"):format(r[k])) end
  end
  b5_parts[#b5_parts + 1] = "    {" .. table.concat(kv, ", ") .. "}"
end
for _, o in ipairs(objs) do fkv[#fkv + 1] = ('"obj_%s": %d'):format(o.name, o.bytes) end
local b6_parts = {}
for _, flow in ipairs{"hwfota", "pyserial", "chat"} do
  local r = b6[flow]
  if r then
    local kv = {}
    for _, k in ipairs{"wall", "timeline", "overhead", "pct", "ratio", "reattach", "quiet", "pct_no_quiet", "runs"} do
      if type(r[k]) == "number" then kv[#kv + 1] = ('"%s": %.4f'):format(k, r[k]) end
    end
    b6_parts[#b6_parts + 1] = ('"%s": {%s}'):format(flow, table.concat(kv, ", "))
  else
    b6_parts[#b6_parts + 1] = ('"%s": null'):format(flow)
  end
end
f:write('{\n  "B1_parsing": [\n', table.concat(parts, ",\n"), "\n  ],\n",
  '  "B4_footprint": {', table.concat(fkv, ", "), "},\n",
  '  "B5_scale": [\n', table.concat(b5_parts, ",\n"), "\n  ],\n",
  '  "B6_overhead": {', table.concat(b6_parts, ", "), "},\n", wake_json, "\n}\n")
f:close()
print("wrote " .. B .. "/bench.json")
