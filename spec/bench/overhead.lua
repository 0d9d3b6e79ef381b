--- overhead.lua — row B6 of `make bench`: the seed flow's wall time against the
-- simulated module's own timeline, for hwfota and for its peers.
--
--   lua5.4 spec/bench/overhead.lua FLOW [RUNS]     FLOW: hwfota | pyserial | chat
--
-- Each run starts `hwfota-sim` (default scale 0.25, `HWFOTA_BENCH_SCALE`) on a
-- private directory and runs the flow against it as a child process, timed from
-- its start to its exit (interpreter start-up included):
--   hwfota    examples/upgrade.lua PORT --journal FILE (as `make demo`; automatic
--             upgrade, as the seed)
--   pyserial  /usr/bin/python3 spec/bench/peer_pyserial.py PORT (Debian python3-serial)
--   chat      sh spec/bench/peer_chat.sh PORT (pppd's chat, Debian ppp)
-- The module's timeline is read from the simulator's log: the waits that are the
-- module's own, whatever the host does: detection (state 11 -> 12), download and
-- check (30 -> 40), the automatic upgrade's delay when the module started it by
-- itself (40 -> 50 with no AT^FWUP between), the reset (50 -> the port back) and
-- the boot (the port back -> 90). Overhead = wall - timeline, in seconds and in %
-- of the timeline. Also from the log: `reattach`, the port back after the reset ->
-- the first command the module receives, and `quiet`, the line sync's quiet interval
-- at the first open (hwfota's AT+CMEE? answered -> its next command: at_engine.h,
-- HF_AT_RESYNC_QUIET; 0 for the peers, which send no sync), with `pct_no_quiet`, the
-- overhead without it. Prints one line of key=value per run and a `median` line.

local core = require "hwfota.core"
local sim = require "support.sim"

local flow = arg[1] or "hwfota"
local runs = tonumber(arg[2]) or 3
local scale = os.getenv("HWFOTA_BENCH_SCALE") or "0.25"
local top = sim.top
local q = sim.quote

local commands = {
  hwfota = function(path, dir)
    return ("lua5.4 %s %s --journal %s"):format(q(top .. "/examples/upgrade.lua"), q(path),
      q(dir .. "/journal"))
  end,
  pyserial = function(path)
    return ("/usr/bin/python3 %s %s"):format(q(top .. "/spec/bench/peer_pyserial.py"), q(path))
  end,
  chat = function(path)
    return ("sh %s %s"):format(q(top .. "/spec/bench/peer_chat.sh"), q(path))
  end,
}
local cmd_of = commands[flow]
if not cmd_of then error("overhead.lua: unknown flow " .. tostring(flow) .. " (hwfota, pyserial, chat)") end

-- The module's own waits in a log (module 0), seconds; nil and why when the
-- flow did not go through them all.
local function timeline(entries)
  local at, total = {}, 0
  local fwup_since_40, reset_seen, up_after_reset = false, false, nil
  local parts, rx = {}, {}
  for _, e in ipairs(entries) do
    if e.m == 0 then
      if e.ev == "state" then
        local s = e.state
        if s == 11 then at[11] = e.t
        elseif s == 12 and at[11] then parts.detect = e.t - at[11]
        elseif s == 30 then at[30] = e.t
        elseif s == 40 and at[30] then parts.download = e.t - at[30]; at[40] = e.t
        elseif s == 50 then
          at[50] = e.t
          if at[40] and not fwup_since_40 then parts.auto_upgrade = e.t - at[40] end
        elseif s == 90 and up_after_reset then parts.boot = e.t - up_after_reset end
      elseif e.dir == "rx" then
        rx[#rx + 1] = e
        if e.line == "AT^FWUP" then fwup_since_40 = true end
        if up_after_reset and not parts.reattach then parts.reattach = e.t - up_after_reset end
      elseif e.ev == "reset" then
        reset_seen = true
      elseif e.ev == "port" and e.what == "up" and reset_seen and not up_after_reset then
        up_after_reset = e.t
        if at[50] then parts.reset = e.t - at[50] end
      end
    end
  end
  for _, k in ipairs{"detect", "download", "reset", "boot"} do
    if not parts[k] then return nil, "the log has no " .. k end
  end
  for _, k in ipairs{"detect", "download", "auto_upgrade", "reset", "boot"} do
    total = total + (parts[k] or 0)
  end
  parts.quiet = (rx[1] and rx[1].line == "AT+CMEE?" and rx[2]) and rx[2].t - rx[1].t or 0
  return total, parts
end

local results = {}
for i = 1, runs do
  local s = sim.start({}, {scale = scale})
  local cmd = cmd_of(s.path, s.dir)
  local t0 = core.now()
  local ok = os.execute(cmd .. " >" .. q(s.dir .. "/flow.out") .. " 2>&1")
  local wall = core.now() - t0
  local entries = s:read()
  local out = sim.read_file(s.dir .. "/flow.out") or ""
  s:stop()
  if not ok then
    io.stderr:write(("overhead.lua: %s failed:\n%s\n"):format(flow, out:sub(-2000)))
    os.exit(1)
  end
  local tl, parts = timeline(entries)
  if not tl then
    io.stderr:write(("overhead.lua: %s: %s\n"):format(flow, parts))
    os.exit(1)
  end
  local r = {wall = wall, timeline = tl, overhead = wall - tl, pct = (wall - tl) / tl * 100,
    reattach = parts.reattach or -1, quiet = parts.quiet,
    pct_no_quiet = (wall - tl - parts.quiet) / tl * 100}
  results[i] = r
  print(("run=%d flow=%s wall=%.4f timeline=%.4f overhead=%.4f pct=%.2f reattach=%.4f quiet=%.4f")
    :format(i, flow, r.wall, r.timeline, r.overhead, r.pct, r.reattach, r.quiet))
end

-- the run with the median overhead
table.sort(results, function(a, b) return a.overhead < b.overhead end)
local m = results[(#results + 1) // 2]
print(("median flow=%s runs=%d scale=%s wall=%.4f timeline=%.4f overhead=%.4f pct=%.2f ratio=%.4f "
  .. "reattach=%.4f quiet=%.4f pct_no_quiet=%.2f"):format(flow, #results, scale, m.wall, m.timeline,
  m.overhead, m.pct, m.wall / m.timeline, m.reattach, m.quiet, m.pct_no_quiet))
