-- spec/faults/campaign.lua — the fault-injection campaign (issue 6).
--
-- Per run: a fault plan drawn from a seeded PRNG (the run's seed IS its identity:
-- `--seed S --runs 1` replays it), hwfota-sim started with that plan in a private
-- directory, the FOTA flow run by spec/faults/child.lua in a child lua5.4 process
-- (SIGKILLed at a planned point and restarted from the same journal), then the
-- invariants below checked from the simulator's JSON-lines log, the child's
-- report and the journal file. See spec/faults/README.md.
--
--   lua5.4 spec/faults/campaign.lua [--seed S] [--runs N] [--jobs J]
--          [--tally NAME] [--regressions FILE] [--shard K/N] [--list] [--keep] [--verbose]
--   lua5.4 spec/faults/campaign.lua --one SEED [--verbose] [--keep]
--   lua5.4 spec/faults/campaign.lua --plan SEED [--runs N]  (print plans only)
--
-- Run i of a campaign has seed S+i. The fault kind of a run is chosen by
-- seed mod #KINDS (stratified: every kind appears once every #KINDS runs);
-- 0..2 further faults and the configuration are drawn from the PRNG.
-- --shard K/N (0 <= K < N) runs only every Nth run of the list (range, then regression
-- seeds), from the Kth on: N campaigns with K = 0..N-1 together run each run exactly
-- once (spec/run-tests.sh runs them side by side); skip notes come from shard 0 only.
-- --list prints the runs the campaign would make (SEED or SEED:KINDS, one a line) and
-- runs none.
-- Exit status: 0 when no run violated an invariant.

local function abs_top()
  local t = os.getenv("HWFOTA_TOP")
  if not t or t == "" then
    t = (arg and arg[0] or ""):match("^(.*)/spec/faults/[^/]*$") or "."
  end
  local f = io.popen("cd '" .. t:gsub("'", "'\\''") .. "' && pwd")
  local a = f:read("l")
  f:close()
  return a or t
end
local TOP = abs_top()
local SIM = os.getenv("HWFOTA_SIM") or (TOP .. "/build/hwfota-sim")
local LUA = os.getenv("LUA") or "lua5.4"
local SELF = TOP .. "/spec/faults/campaign.lua"
local CHILD = TOP .. "/spec/faults/child.lua"
local TMP = os.getenv("HWFOTA_FAULTS_TMP") or os.getenv("TMPDIR") or "/tmp"
local RELEASE = os.getenv("HWFOTA_TTY_RELEASE") or (TOP .. "/build/faults/tty-release")

package.cpath = TOP .. "/build/?.so;" .. package.cpath
package.path = TOP .. "/spec/?.lua;" .. TOP .. "/lua/?.lua;" .. TOP .. "/lua/?/init.lua;" .. package.path
local core = require "hwfota.core"      -- only for its monotonic clock
local now = core.now

local VERSION_FROM = "12.815.03.01.00"   -- the simulator's defaults (support.sim FROM/TO)
local VERSION_TO = "12.815.03.02.00"
local DELTA = 1324 + 77790                 -- the simulator's default delta size

-- ======================================================================= PRNG
-- splitmix64 on Lua integers (wrapping arithmetic): stable across Lua builds.
local function rng_new(seed)
  local function mix(z)
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
  end
  local s = mix(mix(seed + 0x632BE59BD9B4E019))   -- neighbouring seeds: unrelated streams
  local r = {}
  function r.next()
    s = s + 0x9E3779B97F4A7C15
    return mix(s)
  end
  function r.float() return (r.next() >> 11) * (1.0 / 9007199254740992.0) end
  function r.int(lo, hi) return lo + (r.next() >> 1) % (hi - lo + 1) end
  function r.pick(t) return t[r.int(1, #t)] end
  function r.chance(p) return r.float() < p end
  function r.logu(lo, hi) return lo * (hi / lo) ^ r.float() end
  return r
end

-- ======================================================================= plans
-- Commands the state machine sends (cmd= triggers fire on the first match).
local CMDS = {"E0", "CMEE", "GMR", "CGSN", "CPIN", "CREG", "CGREG", "FOTACFG", "FOTAMODE",
              "FOTASTATE", "FOTADET", "FOTADL=1", "FOTADLQ", "FWUP", "FOTADL=0"}
local STATES = {11, 12, 13, 14, 20, 30, 31, 40, 50, 90}
local PHASES = {"probe", "prepare", "configure", "detect", "decide_download", "download",
                "recover", "downloaded", "decide_upgrade", "upgrade", "reboot", "verify",
                "discard"}

local function trigger(r)
  local k = r.int(1, 4)
  if k == 1 then return "cmd=" .. r.pick(CMDS)
  elseif k == 2 then return "state=" .. r.pick(STATES)
  elseif k == 3 then return "byte=" .. r.int(0, DELTA)
  else return ("time=%.2f"):format(r.float() * 40) end
end

-- Each kind: group (at most one fault per group in a plan) and a generator that
-- adds simulator options (p.sim), host kills (p.kills) or settings, and returns
-- a short label for the tables.
local function simopt(p, ...) for _, a in ipairs{...} do p.sim[#p.sim + 1] = a end end
local function pl_trig(r, what)
  if what == "cmd" then return "cmd=" .. r.pick(CMDS) end
  if what == "state" then return "state=" .. r.pick(STATES) end
  if what == "byte" then return "byte=" .. r.int(0, DELTA) end
  return ("time=%.2f"):format(r.float() * 40)
end

local KINDS = {
  {name = "none", group = "none", gen = function() return "none" end},
  {name = "power_loss_cmd", transient = true, group = "power", gen = function(r, p)
     local t = pl_trig(r, "cmd"); simopt(p, "--power-loss", t); return "power@" .. t end},
  {name = "power_loss_state", transient = true, group = "power", gen = function(r, p)
     local t = pl_trig(r, "state"); simopt(p, "--power-loss", t); return "power@" .. t end},
  {name = "power_loss_byte", transient = true, group = "power", gen = function(r, p)
     local t = pl_trig(r, "byte"); simopt(p, "--power-loss", t); return "power@byte" end},
  {name = "power_loss_time", transient = true, group = "power", gen = function(r, p)
     local t = pl_trig(r, "time"); simopt(p, "--power-loss", t); return "power@time" end},
  {name = "port_gone_short", transient = true, group = "gone", gen = function(r, p)
     simopt(p, "--port-gone", trigger(r), "--port-gone-for", ("%.2f"):format(r.logu(0.1, 5)))
     return "gone<5s" end},
  {name = "port_gone_long", transient = true, group = "gone", gen = function(r, p)
     simopt(p, "--port-gone", trigger(r), "--port-gone-for", ("%.1f"):format(r.logu(5, 60)))
     return "gone<60s" end},
  {name = "port_gone_forever", group = "gone", gen = function(r, p)
     simopt(p, "--port-gone", trigger(r), "--port-gone-for", "-1"); return "gone-forever" end},
  {name = "kill_phase", transient = true, group = "kill", gen = function(r, p)
     p.kills[#p.kills + 1] = {phase = r.pick(PHASES), nth = r.chance(0.2) and 2 or 1}
     return "kill@phase" end},
  {name = "kill_state", transient = true, group = "kill", gen = function(r, p)
     p.kills[#p.kills + 1] = {state = r.pick{11, 12, 30, 31, 40, 50, 90}}; return "kill@state" end},
  {name = "kill_time", transient = true, group = "kill", gen = function(r, p)
     p.kills[#p.kills + 1] = {after = r.logu(0.05, 3)}; return "kill@time" end},
  {name = "hang", transient = true, group = "hang", gen = function(r, p)
     simopt(p, "--hang", trigger(r), "--hang-for", ("%.1f"):format(r.logu(1, 60))); return "hang" end},
  {name = "garbage", group = "garbage", gen = function(r, p)
     simopt(p, "--garbage", tostring(r.int(2, 20))); return "garbage" end},
  {name = "drop", group = "drop", gen = function(r, p)
     simopt(p, "--drop", tostring(r.int(2, 40))); return "drop" end},
  {name = "dup_state", group = "dup", gen = function(_, p) simopt(p, "--dup-state"); return "dup-state" end},
  {name = "bad_state", group = "bad", gen = function(r, p)
     simopt(p, "--bad-state", tostring(r.pick(STATES))); return "bad-state" end},
  {name = "lose_state", group = "lose", gen = function(r, p)
     simopt(p, "--lose-state", tostring(r.pick(STATES))); return "lose-state" end},
  {name = "data_session", group = "perm", gen = function(_, p) simopt(p, "--data-session"); return "data-session" end},
  {name = "sim_pin", group = "perm", gen = function(_, p) simopt(p, "--sim-pin"); return "sim-pin" end},
  {name = "not_registered", group = "perm", gen = function(_, p) simopt(p, "--not-registered"); return "not-registered" end},
  {name = "detect_fail", group = "result", gen = function(r, p)
     simopt(p, "--detect-fail", tostring(r.pick{1, 2, 5, 11, 20, 51, 54})); return "detect-fail" end},
  {name = "download_fail", transient = true, group = "result", gen = function(r, p)
     simopt(p, "--download-fail", tostring(r.pick{1, 11, 21, 52, 54, 101, 151}))
     if r.chance(0.7) then simopt(p, "--download-fail-at", tostring(r.int(0, DELTA))) end
     return "download-fail" end},
  {name = "upgrade_fail", group = "upfail", gen = function(r, p)
     simopt(p, "--upgrade-fail", tostring(r.pick{80, 81, 70, 60})); return "upgrade-fail" end},
  {name = "no_new_version", group = "result", gen = function(_, p) simopt(p, "--no-new-version"); return "no-new-version" end},
  {name = "offer_not_newer", group = "offer", gen = function(r, p)
     p.version_to = r.pick{VERSION_FROM, "12.815.01.02.00", "12.815.00.99.00", "11.815.01.04.00",
                           "12.815.3.1.0", "12.815.03.01"}
     simopt(p, "--version-to", p.version_to); return "offer-not-newer" end},
  {name = "closed_port_drop", group = "closed", gen = function(_, p)
     simopt(p, "--closed-port", "drop"); return "closed-port-drop" end},
  {name = "noise", group = "noise", gen = function(r, p)
     simopt(p, "--noise", ("%.1f"):format(r.logu(1, 30))); return "noise" end},
  {name = "timing_skew", group = "skew", gen = function(r, p)
     p.sim_scale = p.scale * r.pick{r.logu(0.3, 1), r.logu(1, 4)}; return "skew" end},
  -- issue 12 (kinds 29..32; seeds recorded before them replay with --one SEED:28)
  {name = "journal_fail", transient = true, group = "journal", gen = function(r, p)
     -- one journal write (the N+1-th of the first host process) fails; later ones work
     p.jfail = {after = r.int(0, 5), op = r.pick{"create", "write", "fsync", "rename"},
                errno = r.pick{"EIO", "ENOSPC", "EROFS"}, only = true}
     return ("journal-fail@%d:%s"):format(p.jfail.after + 1, p.jfail.op) end},
  {name = "disk_full", transient = true, group = "journal", gen = function(r, p)
     -- the file system fills up after N journal writes and stays full for the whole
     -- run (every later host process too); freed before the follow-up run (7)
     p.jfail = {after = r.int(0, 5), op = r.pick{"create", "write"}, errno = "ENOSPC"}
     return ("disk-full@%d"):format(p.jfail.after + 1) end},
  {name = "two_tasks", transient = true, group = "tasks", gen = function(_, p)
     p.tasks = 2; return "two-tasks" end},
  {name = "port_swap", group = "swap", gen = function(r, p)
     simopt(p, "--port-swap", trigger(r))
     if r.chance(0.4) then simopt(p, "--swap-state", tostring(r.pick{10, 90, 12})) end
     return "port-swap" end},
}
local KINDS_LEGACY = 28   -- the kinds before issue 12 (regression seeds up to then)

-- nk: how many of KINDS the plan draws from (default all; KINDS_LEGACY for seeds
-- recorded before issue 12's kinds, whose plans depend on #KINDS)
local function make_plan(seed, nk)
  nk = nk or #KINDS
  local kinds = table.move(KINDS, 1, nk, 1, {})
  local r = rng_new(seed)
  local p = {seed = seed, sim = {}, kills = {}, labels = {}, groups = {},
             version_to = VERSION_TO}
  p.scale = 0.01 + 0.01 * r.float()            -- host and simulator time scale
  p.sim_scale = nil
  p.auto_upgrade = r.chance(0.5)
  p.resume = r.chance(0.9)
  p.retry = r.chance(0.3)
  local primary = kinds[seed % nk + 1]
  p.kind = primary.name
  p.transient = true    -- every fault one-shot: the next run must succeed (invariant 7)
  local function add(k)
    p.transient = p.transient and k.transient == true
    p.groups[k.group] = true
    p.labels[#p.labels + 1] = k.gen(r, p)
  end
  add(primary)
  if primary.name ~= "none" then
    local extra = r.pick{0, 0, 0, 0, 0, 1, 1, 1, 2, 2}   -- 1..3 faults per run
    local tries = 0
    while extra > 0 and tries < 50 do
      tries = tries + 1
      local k = r.pick(kinds)
      if k.name ~= "none" and not p.groups[k.group] then
        add(k)
        extra = extra - 1
      end
    end
  end
  if #p.kills > 0 and r.chance(0.25) then      -- killed again after the restart
    p.kills[#p.kills + 1] = r.chance(0.5) and {phase = r.pick(PHASES), nth = 1}
                            or {after = r.logu(0.05, 3)}
  end
  p.restart_delay = r.chance(0.5) and 0 or r.logu(0.01, 0.5)
  p.sim_scale = p.sim_scale or p.scale
  p.nk = nk
  -- hwfota-sim's default is --closed-port drop; the plans were drawn with keep as the
  -- baseline and drop as a fault kind (closed_port_drop): say so explicitly, so that a
  -- seed replays the plan it always meant (no draw from r here: plans stay the same)
  local closed = false
  for _, a in ipairs(p.sim) do if a == "--closed-port" then closed = true end end
  if not closed then simopt(p, "--closed-port", "keep") end
  return p
end

local function plan_text(p)
  local k = {}
  for _, x in ipairs(p.kills) do
    k[#k + 1] = x.phase and ("phase=" .. x.phase .. (x.nth > 1 and "#" .. x.nth or ""))
                or x.state and ("state=" .. x.state) or ("after=%.2fs"):format(x.after)
  end
  local extra = ""
  if p.jfail then
    extra = (" jfail=%d:%s:%s:%s"):format(p.jfail.after, p.jfail.op, p.jfail.errno,
                                          p.jfail.only and "once" or "full")
  end
  if p.tasks then extra = extra .. " tasks=" .. p.tasks end
  if p.nk ~= #KINDS then extra = extra .. " kinds=" .. p.nk end
  return ("seed=%d kind=%s faults=%s scale=%.4f sim_scale=%.4f auto_upgrade=%d resume=%d " ..
          "retry=%d kills=[%s] restart_delay=%.2f sim=[%s]%s")
         :format(p.seed, p.kind, table.concat(p.labels, "+"), p.scale, p.sim_scale,
                 p.auto_upgrade and 1 or 0, p.resume and 1 or 0, p.retry and 1 or 0,
                 table.concat(k, ","), p.restart_delay, table.concat(p.sim, " "), extra)
end

-- ======================================================================= helpers
local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function capture(cmd)
  local f = assert(io.popen(cmd))
  local s = f:read("a")
  f:close()
  return s
end

local read_file = require("support.sim").read_file

local function sleep(s)
  if s > 0 then core.poll({}, s) end
end

-- Firmware versions: dot-separated decimal fields, compared numerically field by
-- field, missing fields count as 0 (own code: the runner does not trust hwfota's).
local function vcmp(a, b)
  local fa, fb = {}, {}
  for x in tostring(a):gmatch("[^.]+") do fa[#fa + 1] = tonumber(x) or -1 end
  for x in tostring(b):gmatch("[^.]+") do fb[#fb + 1] = tonumber(x) or -1 end
  for i = 1, math.max(#fa, #fb) do
    local x, y = fa[i] or 0, fb[i] or 0
    if x ~= y then return x < y and -1 or 1 end
  end
  return 0
end

-- The simulator's log lines (flat JSON objects): the specs' reader serves here too.
local json_obj = require("support.sim").parse

local function decode(v) return (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end

-- Commands that change nothing on the module: the setup (echo, error format) and
-- queries. Anything else changes the module's state (I8).
local READ_ONLY = {["AT"] = true, ["ATE0"] = true, ["ATE1"] = true, ["AT+CGSN"] = true,
                   ["AT+GSN"] = true, ["AT+GMR"] = true, ["AT+CGMR"] = true, ["AT+CGMM"] = true,
                   ["AT+GMM"] = true, ["ATI"] = true, ["AT+CIMI"] = true, ["AT^FOTADLQ"] = true,
                   ["AT^HWVER"] = true, ["AT+CSQ"] = true}   -- (AT+CSQ: the engine's resync query)
local function read_only(cmd)
  return READ_ONLY[cmd] or cmd:find("^AT%+CMEE=%d$") ~= nil or cmd:find("%?$") ~= nil
end

-- The entries of directory d as name -> "type size mtime inode link" (I10), minus
-- those skip(name) accepts.
local function fingerprint(d, skip)
  local out = {}
  local f = assert(io.popen("find " .. sh_quote(d) .. " -mindepth 1 -maxdepth 1 " ..
                            "-printf '%f\\t%y %s %T@ %i %l\\n' 2>/dev/null"))
  for l in f:lines() do
    local name, rest = l:match("^([^\t]*)\t(.*)$")
    if name and not skip(name) then out[name] = rest end
  end
  f:close()
  return out
end

local function fp_diff(a, b)
  local d = {}
  for k, v in pairs(a) do
    if b[k] == nil then d[#d + 1] = k .. " removed"
    elseif b[k] ~= v then d[#d + 1] = ("%s changed (%s -> %s)"):format(k, v, b[k]) end
  end
  for k in pairs(b) do if a[k] == nil then d[#d + 1] = k .. " created" end end
  table.sort(d)
  return table.concat(d, ", ")
end

-- Files of the run directory that are not the host's to touch: everything but the
-- simulator's (log, ports) and the runner's own files (I10).
local function run_dir_skip(name)
  -- (the simulator publishes a port as a temporary link renamed over ttyUSBn: it
  -- may stand in a listing taken while the module comes back, seed 7389)
  return name == "sim.log" or name == "sim.err" or name == "jd" or name:find("^ttyUSB%d+$") ~= nil
         or name:find("^ttyUSB%d+%.tmp%d+$") ~= nil or name:find("^child%d+%.[a-z]+$") ~= nil
end
-- In the journal's directory: the journal and its unique temporary files only.
local function journal_dir_skip(name)
  return name == "journal" or name:find("^journal%.tmp%..") ~= nil
end

-- ======================================================================= one run
local CLEAN = {upgraded = true, no_new_version = true, deferred = true, rejected = true,
               not_newer = true}

-- Wall-clock bound of one host process: every deadline of the configuration
-- (detect 120 + stall 300 + auto-upgrade wait 120 + 2 x reboot 180 + command
-- timeouts, in model seconds: 1500) scaled, twice with a retry, plus 20 s for the
-- fixed, unscaled waits (reopen back-off up to 2 s, setup commands 5 s each).
local function child_bound(p)
  return 20 + 1500 * p.scale * (p.retry and 2 or 1)
end

local function run_one(seed, o)
  local p = make_plan(seed, o.nk)
  local t0 = now()
  local dir = capture("mktemp -d " .. sh_quote(TMP .. "/hwfota-faults.XXXXXX")):gsub("%s+$", "")
  assert(dir:find("/hwfota%-faults%.[^/]+$"), "mktemp failed")
  local res = {seed = seed, plan = p, violations = {}, notes = {}, children = {}}
  local function violate(inv, msg)
    local tag, rest = msg:match("^(%[[KS]%d+%]) (.*)$")
    res.violations[#res.violations + 1] = tag and ("%s I%d %s"):format(tag, inv, rest)
                                          or ("I%d %s"):format(inv, msg)
  end
  local function note(msg) res.notes[#res.notes + 1] = msg end
  local verbose = o.verbose
  local function log(s) if verbose then io.stderr:write(s, "\n") end end
  log("plan: " .. plan_text(p))
  log("dir:  " .. dir)

  -- the simulator: its own dir, log, seed; SIGTERM at the end (timeout guards a
  -- runner that dies: the simulator never outlives its run by long)
  local simargs = {"--dir", dir, "--log", dir .. "/sim.log",
                   "--time-scale", ("%.5f"):format(p.sim_scale), "--seed", tostring(seed % 2147483647 + 1)}
  for _, a in ipairs(p.sim) do simargs[#simargs + 1] = a end
  local q = {}
  for _, a in ipairs(simargs) do q[#q + 1] = sh_quote(a) end
  local sim_wall = math.floor(child_bound(p) * (#p.kills + 1) + 60)
  local simcmd = ("echo $$; exec timeout --foreground -s TERM %d %s %s 2>%s"):format(sim_wall, sh_quote(SIM),
                  table.concat(q, " "), sh_quote(dir .. "/sim.err"))
  local simp = assert(io.popen(simcmd))
  local simpid = tonumber(simp:read("l"))
  local ready = simp:read("l") or ""
  local port = ready:match("^ready (%S+)")
  if not port then
    simp:close()
    violate(0, "simulator did not start: " .. (read_file(dir .. "/sim.err") or ""):sub(1, 200))
    res.elapsed = now() - t0
    res.dir = dir
    return res
  end

  -- the host: children until one finishes (a planned kill -> restart on the journal).
  -- The journal lives in its own directory with sentinels (I10): a regular file, a
  -- symbolic link to it at the old fixed temporary name, a FIFO; none may change.
  local jdir = dir .. "/jd"
  local journal = jdir .. "/journal"
  assert(os.execute(("mkdir %s && printf 'sentinel\\n' > %s && ln -s keep %s && mkfifo %s")
                    :format(sh_quote(jdir), sh_quote(jdir .. "/keep"), sh_quote(jdir .. "/journal.tmp"),
                            sh_quote(jdir .. "/fifo"))), "cannot make the journal directory")
  local PRELOAD = TOP .. "/build/support/journalfail_preload"
  local function host_processes(k0, kills, retry, faulty)
  for k = k0, k0 + #kills do
    local kill = kills[k - k0 + 1]
    local args = {"port=" .. port, "journal=" .. journal, ("scale=%.5f"):format(p.scale),
                  "auto_upgrade=" .. (p.auto_upgrade and 1 or 0), "resume=" .. (p.resume and 1 or 0),
                  "retry=" .. (retry and 1 or 0), ("trace=%s/child%d.trace"):format(dir, k)}
    if kill and kill.phase then
      args[#args + 1] = "kill_phase=" .. kill.phase
      args[#args + 1] = "kill_nth=" .. kill.nth
    elseif kill and kill.state then
      args[#args + 1] = "kill_state=" .. kill.state
    end
    if p.tasks then args[#args + 1] = "tasks=" .. p.tasks end
    -- journal writes failing (journal_fail: one write of the first process; disk_full:
    -- from the N+1-th write of the first process and from the first of later ones)
    local env, jflog = "", nil
    if faulty and p.jfail and (k == k0 or not p.jfail.only) then
      jflog = ("%s/child%d.jfail"):format(dir, k)
      local pre = os.getenv("LD_PRELOAD")
      pre = (pre and pre ~= "" and (pre .. ":") or "") .. PRELOAD
      env = ("LD_PRELOAD=%s JFAIL_AFTER=%d JFAIL_OP=%s JFAIL_ERRNO=%s JFAIL_ONLY=%d JFAIL_LOG=%s ")
            :format(sh_quote(pre), k == k0 and p.jfail.after or 0, p.jfail.op, p.jfail.errno,
                    p.jfail.only and 1 or 0, sh_quote(jflog))
    end
    local qa = {}
    for _, a in ipairs(args) do qa[#qa + 1] = sh_quote(a) end
    local bound = child_bound(p)
    local inner = kill and kill.after and ("timeout --foreground -s KILL %.3f "):format(kill.after) or ""
    local errf = ("%s/child%d.err"):format(dir, k)
    local cmd = ("cd %s && LUA_PATH=%s LUA_CPATH=%s %sexec timeout --foreground -v -s KILL %.1f %s%s %s %s </dev/null 2>%s")
                :format(sh_quote(dir), sh_quote(TOP .. "/lua/?.lua;" .. TOP .. "/lua/?/init.lua;;"),
                        sh_quote(TOP .. "/build/?.so;;"), env, bound, inner, LUA, sh_quote(CHILD), table.concat(qa, " "),
                        sh_quote(errf))
    local journal_before = read_file(journal)
    local c = {k = k, lines = {}, phases = {}, kill = kill}
    c.log_start = #(read_file(dir .. "/sim.log") or "")   -- where this process starts in the log (I8)
    c.had_journal = journal_before ~= nil
    local files0, jfiles0 = fingerprint(dir, run_dir_skip), fingerprint(jdir, journal_dir_skip)
    local ct0 = now()
    local cp = assert(io.popen(cmd))
    for l in cp:lines() do
      c.lines[#c.lines + 1] = l
      log(("  child%d: %s"):format(k, l))
      local w, rest = l:match("^(%S+)%s?(.*)$")
      if w == "report" or w == "report2" then
        local rep = {}
        for kv in rest:gmatch("%S+") do
          local kk, vv = kv:match("^([^=]+)=(.*)$")
          if kk then rep[kk] = decode(vv) end
        end
        if w == "report" then c.report = rep else c.report2 = rep end
      elseif w == "fd0" then c.fd0 = tonumber(rest)
      elseif w == "fd1" then
        c.fd1 = tonumber(rest:match("^%d+"))
        c.ttys = rest:match("^%d+%s+(.+)$")
      elseif w == "killself" then c.killself = rest
      elseif w == "phase" then
        c.phases[#c.phases + 1] = rest
        c.phases_set = c.phases_set or {}
        c.phases_set[rest] = true
        if rest == "download" and c.blind_offer then c.blind_download = true end
      elseif w == "offer" then
        c.blind_offer = rest == "?"
      end
    end
    local _, how, code = cp:close()
    c.how, c.code = how, code
    c.elapsed = now() - ct0
    c.stderr = read_file(errf) or ""
    res.children[k] = c
    -- 10. nothing but the journal and its temporary files created, changed or removed
    local files1, jfiles1 = fingerprint(dir, run_dir_skip), fingerprint(jdir, journal_dir_skip)
    local dd, dj = fp_diff(files0, files1), fp_diff(jfiles0, jfiles1)
    if dd ~= "" then violate(10, ("host process %d touched the run directory: %s"):format(k, dd)) end
    if dj ~= "" then violate(10, ("host process %d touched files next to the journal: %s"):format(k, dj)) end
    -- 11. a failed journal write: nothing sent after it (until a retry of the policy)
    local jl = jflog and read_file(jflog)
    local tf = jl and tonumber(jl:match("fails[^\n]* t=([%d.]+)"))
    if tf then
      c.jfail_at = tf
      res.jfail_fired = true
      for t, d, text in (read_file(("%s/child%d.trace"):format(dir, k)) or ""):gmatch("([%d.]+) (%S+) ([^\n]*)") do
        -- (the trace rounds to 0.1 ms: a retry at the failure's own time ends the check)
        if d == "event" and text == "retry" and tonumber(t) >= tf - 0.0001 then break end
        if d == "run" and tonumber(t) > tf + 0.0002 then
          violate(11, ("host process %d sent %s after its journal write failed"):format(k, text))
          break
        end
      end
    end
    -- 9. two tasks on one port object: exactly one drives the module, the other EBUSY
    if c.report and c.report2 then
      if c.report.code == "EBUSY" and c.report2.code ~= "EBUSY" then
        c.report, c.report2 = c.report2, c.report
      end
      local a0, a1 = tonumber(c.report.t_start), tonumber(c.report.t_end)
      local b0, b1 = tonumber(c.report2.t_start), tonumber(c.report2.t_end)
      local one_after_other = a0 and a1 and b0 and b1 and (a1 <= b0 or b1 <= a0)
      if c.report2.code ~= "EBUSY" and not one_after_other then
        res.both_drove = true
        violate(9, ("[K8] two tasks on one port: both ran at once (%s/%s, %s/%s), none got EBUSY"):format(
          tostring(c.report.status), tostring(c.report.code), tostring(c.report2.status),
          tostring(c.report2.code)))
      elseif c.report2.code == "EBUSY" and c.report.code == "EBUSY" then
        violate(9, "two tasks on one port: both got EBUSY, none drove the module")
      end
    end
    local hung = c.stderr:find("timeout: sending signal") ~= nil
    if hung then
      violate(5, ("hang: host process %d still running after %.1f s (bound)"):format(k, bound))
      return nil
    end
    local planned = c.killself or (kill and kill.after and not c.report)
    local late_kill = c.report and kill and kill.after and
                      ((how == "signal" and code == 9) or
                       (how == "exit" and (code == 137 or code == 124)))   -- 124: it fired as the child exited
    if late_kill then
      -- the planned SIGKILL came after the run had finished (while counting fds)
      note(("host %d SIGKILLed at %.2fs, after its report: fds not checked"):format(k, kill.after))
    end
    if c.report then
      c.journal_before = journal_before
      if late_kill then
        -- nothing more to check about this process
      elseif not (how == "exit" and code == 0) then
        violate(5, ("host process %d exit %s %s after its report: %s"):format(k, how, code,
                    c.stderr:sub(1, 300)))
      end
      if c.stderr:find("%S") then
        violate(5, ("host process %d wrote to stderr: %s"):format(k, c.stderr:sub(1, 300)))
      end
      if late_kill then
        -- (see above)
      elseif c.fd0 and c.fd1 and c.fd1 ~= c.fd0 then
        violate(5, ("fd leak: %d fds before the run, %d after"):format(c.fd0, c.fd1))
      end
      if c.ttys and c.ttys ~= "" then violate(5, "terminal fds still open after the run: " .. c.ttys) end
      if not c.fd1 and not late_kill then violate(5, "host process ended without its fd count") end
      return c
    elseif planned then
      note(("host %d SIGKILLed at %s"):format(k, c.killself or ("%.2fs"):format(kill.after)))
      res.killed = (res.killed or 0) + 1
      -- what the kernel does at a real port's last close (see tty_release.c), for
      -- every other stride of seeds; the others leave the killed host's TIOCEXCL on
      -- the pty (as a pty does), for the next host to recognise as stale (issue 12.8)
      if (p.seed // p.nk) % 2 == 0 then   -- (p.nk: a regression seed replays as recorded)
        local ok, _, rc = os.execute(sh_quote(RELEASE) .. " " .. sh_quote(port))
        if not ok and rc ~= 1 then violate(0, "tty-release failed on " .. port) end
      else
        note("exclusive flag left set for the next host")
      end
      if p.restart_delay > 0 then sleep(p.restart_delay) end
    else
      violate(5, ("crash: host process %d ended (%s %s) without a report: %s"):format(k, how, code,
                  c.stderr:sub(1, 400)))
      return nil
    end
  end
  end

  local final = host_processes(1, p.kills, p.retry, true)
  -- 7. after a failed run whose faults were all one-shot (fired and gone), the next
  -- run, with no new fault, must end upgraded or cleanly
  local log_main, journal_main, followup = nil, read_file(journal), nil
  if final and final.report and final.report.status == "failed" and p.transient then
    log_main = #(read_file(dir .. "/sim.log") or "")
    -- the faults must be over: the port back (a port gone for a while, a reset) and
    -- the module booted (the simulator's boot time, 2 model s, and as much again)
    local t_end = now() + 10
    while now() < t_end and not os.execute("test -e " .. sh_quote(port)) do sleep(0.05) end
    sleep(4 * p.sim_scale + p.restart_delay)
    followup = host_processes(#res.children + 1, {}, false)
    res.followup = followup and followup.report and followup.report.status or "none"
  end

  -- stop the simulator, read its log
  os.execute("kill -TERM " .. simpid .. " 2>/dev/null")
  local _, show, scode = simp:close()
  if not (show == "exit" and scode == 0) then
    violate(0, ("simulator ended %s %s: %s"):format(show, scode, (read_file(dir .. "/sim.err") or ""):sub(1, 200)))
  end
  local ev, n_main = {}, nil
  for l, e in (read_file(dir .. "/sim.log") or ""):gmatch("([^\n]+)\n?()") do
    local j = json_obj(l)
    if j then
      j._end = e - 1   -- byte offset of the line's end (host process boundaries, I8)
      ev[#ev + 1] = j
    else violate(0, "unparsable simulator log line: " .. l:sub(1, 120)) end
    if log_main and not n_main and e - 1 > log_main then n_main = #ev - 1 end
  end
  n_main = n_main or #ev

  -- ---- replay the simulator's log
  local st = 10                 -- the module's FOTA state
  local running               -- the running firmware (boot events)
  local image = 0             -- offers announced (state 12): an image per offer
  local fwup = {}             -- image -> AT^FWUP received
  local fwup_total = 0
  local port_up = true
  local settling = false      -- reset, and no state reported since (booting)
  local fired = {}            -- simulator faults fired (by the main run's end)
  local last_reset
  local upgraded_to = nil     -- version booted after an upgrade reset
  local reset_reason
  local dl_starts = 0
  local to = p.version_to
  local snap
  -- 8. identity: after every port-up and every host process start, nothing that changes
  -- the module reaches it before the identity query (AT+CGSN); after a port swap,
  -- nothing that changes the swapped-in module at all
  -- (a host process that starts after the swap without a journal knows nothing of
  -- module A: B is simply the module it finds, and from then on the one judged)
  local starts = {}
  for _, c in ipairs(res.children) do starts[#starts + 1] = c end
  local next_start = 1
  local unconfirmed = nil     -- why the identity is not confirmed (nil: confirmed)
  local swapped, frozen = false, nil
  local b = {}                -- module B's state and firmware while swapped in
  local absorbed = false      -- B became the module judged (see above)
  local a_identified = false  -- the first module answered AT+CGSN (its IMEI) before the swap
  local a_imei                -- its IMEI (the simulator's first boot record)
  for i, e in ipairs(ev) do
    while starts[next_start] and e._end > starts[next_start].log_start do
      unconfirmed = "host process start"
      -- a host without a journal knows no IMEI: what it can tell apart is only what the
      -- first module answers it from now on (a host started before the swap whose
      -- probe was cut by it, then retried, finds B as the only module it ever knew)
      if not starts[next_start].had_journal and not swapped then a_identified = false end
      if swapped and not starts[next_start].had_journal then
        swapped, frozen, res.swapped, absorbed = false, nil, nil, true
        st, running, upgraded_to, port_up, settling = b.st or st, b.running or running, nil, true, false
        note(("host process %d started without a journal after the port swap: module B judged from then on")
             :format(starts[next_start].k))
      end
      next_start = next_start + 1
    end
    if e.ev == "port" and e.what == "up" then unconfirmed = "port-up" end
    local rx = e.dir == "rx" and type(e.line) == "string" and e.line:upper():gsub("%s+$", "") or nil
    if rx and (swapped or (e.swapped and not absorbed)) then
      if not read_only(rx) then
        violate(8, ("%s reached the swapped-in module (another IMEI)"):format(rx))
      end
    elseif rx and unconfirmed then
      if rx == "AT+CGSN" then
        unconfirmed = nil
      elseif not read_only(rx) then
        violate(8, ("%s sent before the module's identity was confirmed (AT+CGSN) after a %s")
                   :format(rx, unconfirmed))
        unconfirmed = nil
      end
    end
    -- the first module told a host who it is (its IMEI went out as an answer): from
    -- then on a host can tell another module from it. AT+CGSN received but answered
    -- by the swap (the fault fired on that command) told nobody anything.
    if e.ev == "boot" and not e.swapped and not a_imei then a_imei = e.imei end
    if e.dir == "tx" and not swapped and not e.swapped and a_imei and e.line == a_imei then
      a_identified = true
    end
    if e.ev == "fault" and e.fault == "port-swap" and not a_identified then
      -- no host ever learnt who the first module is: for every host the module on
      -- the port is the swapped-in one (nothing could tell them apart on a pty)
      absorbed, res.swap_fired = true, true
      st, settling = e.swap_state or st, false   -- (its state as it comes: no transition)
      note("port swap before the first module answered an identity query: the swapped-in module is the run's module")
    elseif e.ev == "fault" and e.fault == "port-swap" and not swapped then
      -- module A is gone: its last state is what I1/I4 judge; B is checked by I8
      swapped = true
      frozen = {st = st, running = running, port_up = port_up, settling = settling,
                upgraded_to = upgraded_to, image = image}
      res.swapped = ("swap in state %s to %s"):format(tostring(st), tostring(e.swap_state))
      res.swap_fired = true
    end
    if swapped then
      -- (module B's events: not module A's timeline)
      if e.ev == "state" then b.st = e.state elseif e.ev == "boot" then b.running = e.version end
    elseif e.ev == "state" then
      if e.state == st then
        -- (no transition: the swapped-in module's state as it came)
      elseif (e.state == 40 and st ~= 30 and st ~= 31) or (e.state == 12 and st ~= 11) or
         (e.state == 31 and st ~= 30 and st ~= 31) then
        -- only a download reaches 40, only a query 12: the simulator's own timeline
        -- went wrong (S1)
        res.sim_anomaly = res.sim_anomaly or ("state %d -> %d"):format(st, e.state)
      end
      st = e.state
      settling = false
      if st == 12 then image = image + 1 end
    elseif e.ev == "boot" then
      if running and reset_reason == "upgrade-applied" then
        upgraded_to = e.version
        if vcmp(e.version, running) <= 0 and e.version ~= running then
          violate(3, ("the module booted %s after an upgrade from %s (downgrade)"):format(e.version, running))
        end
      end
      if running and e.version ~= running and vcmp(e.version, running) <= 0 then
        violate(3, ("firmware went from %s to %s: not newer"):format(running, e.version))
      end
      running = e.version
      reset_reason = nil
    elseif e.ev == "reset" then
      reset_reason = e.reason == "upgrade" and "upgrade-applied" or e.reason
      last_reset = {reason = e.reason, state = e.state}
      port_up = false
      settling = true
    elseif e.ev == "port" then
      port_up = e.what == "up"
    elseif e.dir == "rx" and type(e.line) == "string" then
      local cmd = e.line:upper():gsub("%s+$", "")
      if cmd == "AT^FWUP" then
        fwup_total = fwup_total + 1
        fwup[image] = (fwup[image] or 0) + 1
        if st ~= 40 then
          -- K5: right after a power loss with a complete image the module applies it
          -- at boot by itself (50); the host's fresh 40 was read just before that
          local k5 = st == 50 and last_reset and last_reset.reason == "power-loss" and
                     (last_reset.state == 40 or last_reset.state == 50)
          violate(2, ("%sAT^FWUP received in state %d"):format(k5 and "[K5] " or "", st))
        elseif settling and last_reset and last_reset.reason == "power-loss" then
          violate(2, "[K5] AT^FWUP received while the module boots after a power loss in 40 " ..
                     "(before its boot report: it applies the image by itself)")
        end
        if fwup[image] > 1 then
          violate(2, ("AT^FWUP received %d times for image %d"):format(fwup[image], image))
        end
        if running and vcmp(to, running) <= 0 then
          violate(3, ("AT^FWUP for %s while running %s"):format(to, running))
        end
      elseif cmd == "AT^FOTADL=1" then
        dl_starts = dl_starts + 1
        if running and vcmp(to, running) <= 0 then
          violate(3, ("AT^FOTADL=1 for %s while running %s (not newer)"):format(to, running))
        end
      end
    end
    if e.ev == "fault" and (not log_main or i <= n_main) then fired[e.fault] = true end
    if i == n_main and log_main then
      snap = {st = st, running = running, port_up = port_up, settling = settling, upgraded_to = upgraded_to,
              image = image, fwup_img = fwup[image] or 0}
    end
  end
  if frozen then
    st, running, port_up, settling = frozen.st, frozen.running, frozen.port_up, frozen.settling
    upgraded_to, image = frozen.upgraded_to, frozen.image
  end
  local fin = {st = st, running = running, upgraded_to = upgraded_to}
  if snap then  -- the main run's end (before the follow-up run of invariant 7)
    st, running, port_up, upgraded_to, image = snap.st, snap.running, snap.port_up, snap.upgraded_to, snap.image
    settling = snap.settling
  end
  local fwup_main = snap and snap.fwup_img or (fwup[image] or 0)
  res.sim_state, res.running, res.fwup = st, running, fwup_total

  -- ---- invariants on the outcome
  local r = final and final.report
  local j = journal_main
  res.journal = j ~= nil
  if r then
    res.outcome = r.status == "failed" and ("failed:" .. tostring(r.code)) or tostring(r.status)
    -- 1. upgraded and verified, or a failure with a reason code, or clean
    if r.status == "upgraded" then
      if vcmp(r.to or "", to) ~= 0 then violate(1, ("report says upgraded to %s, offered %s"):format(r.to, to)) end
      if not upgraded_to or vcmp(upgraded_to, to) ~= 0 then
        violate(1, ("report says upgraded but the module booted no new version (%s)"):format(tostring(upgraded_to)))
      end
      if running ~= to then violate(1, ("report says upgraded, module runs %s"):format(tostring(running))) end
      if vcmp(r.to or "", r.from or VERSION_FROM) <= 0 then
        violate(1, ("report says upgraded from %s to %s: not newer"):format(tostring(r.from), tostring(r.to)))
      end
      if st ~= 90 then violate(1, ("report says upgraded, module state %d"):format(st)) end
    elseif r.status == "failed" then
      if not (r.code and r.code:find("^E[A-Z]+$")) then violate(1, "failure without a reason code: " .. tostring(r.code)) end
      if not (r.message and r.message:find("%S")) then violate(1, "failure without a message") end
    elseif not CLEAN[r.status] then
      violate(1, "unknown outcome " .. tostring(r.status))
    end
    if p.kind == "none" and r.status ~= "upgraded" then
      violate(1, "a run without faults did not upgrade: " .. res.outcome)
    end
    -- 4. the module left idle or upgraded (see README.md for the exact table)
    local idle = st == 10 or st == 13 or st == 14 or st == 20 or st == 90 or st >= 60
    if r.status == "upgraded" then
      -- checked above (90 and the new version)
    elseif r.status ~= "failed" then
      local ok = st == 10 or st == 14 or st == 13
      if r.status == "deferred" then ok = ok or st == 12 or st == 40 or st == 31 end
      if r.status == "not_newer" or r.status == "rejected" then ok = st == 10 or st == 14 end
      if not ok then violate(4, ("outcome %s left the module in state %d"):format(r.status, st)) end
    elseif res.swapped then
      -- module A was taken away mid-run: what it was left in is the simulator's doing;
      -- the swapped-in module B is judged by I8 (nothing that changes it)
      note(("failed %s after a port swap (%s): module A not judged"):format(tostring(r.code), res.swapped))
    elseif not idle then
      local c = r.code
      local why
      if (not port_up or settling) and (c == "EPORTLOST" or c == "ETIMEDOUT" or c == "ENOENT") then
        why = "module unreachable or rebooting at the end"
      elseif (st == 11 or st == 12) and (r.phase == nil or r.phase == "detect") and
             (c == "EPORTLOST" or c == "ETIMEDOUT" or c == "ENOENT") then
        why = "the module finished its query after the host lost the port"
      elseif (st == 30 or st == 31) and (c == "ESTALLED" or c == "ETIMEDOUT" or c == "EPORTLOST") then
        why = "download kept for resume"
      elseif st == 50 and (c == "ETIMEDOUT" or c == "EPORTLOST" or c == "EUPGRADE") then
        why = "module upgrading"
      elseif r.attempts == "0" and res.swap_fired then
        why = "the last host never opened the port (the swapped-in module is as found)"
      elseif c == "EJOURNAL" then
        why = "a journal write failed: the host stopped where it was, nothing sent after it (I11)"
      elseif c == "EBUSY" and r.phase == nil then
        -- seed 61672: a host started right after its killed predecessor, whose exclusive
        -- lock was still held while it exited; I8 judges what was sent (nothing)
        why = "the port was held by another process: the host opened nothing and sent nothing (state as found)"
      elseif (r.phase == "probe" or r.phase == "prepare") and (c == "EIDENTITY" or c == "EMODULE" or
              c == "EUNSUPPORTED" or c == "ESIM" or c == "ENOTREG") then
        why = "the host refused to touch this module before any FOTA command (state as found)"
      end
      if why then
        note(("failed %s left state %d: %s"):format(c, st, why))
      else
        violate(4, ("failed %s (%s) left the module in state %d"):format(c, tostring(r.phase), st))
      end
    end
    -- 6. the journal: removed when the run ended, kept only after AT^FWUP without its
    -- result; a run that could not even open the port (attempts=0) leaves it as it was
    if r.attempts == "0" then
      if j ~= final.journal_before then
        violate(6, "a run that never started changed the journal")
      end
    elseif j then
      if r.status ~= "failed" then violate(6, "journal left after outcome " .. r.status) end
      if not j:find("^hwfota%-journal 1\n") or not j:find("\nend\n?$") then
        violate(6, "journal malformed: " .. j:sub(1, 80))
      end
      if not j:find("\nfwup_sent=1\n") and r.code ~= "EJOURNAL" and r.code ~= "EIDENTITY" then
        -- (EJOURNAL: the last record that could be written stays; EIDENTITY: the journal
        -- belongs to the module that went away and is left for it)
        violate(6, "journal kept without fwup_sent=1")
      end
      if r.status == "failed" and r.code == "EUPGRADE" and r.module_code and r.module_code ~= "40" then
        -- the host read the upgrade's result (the module's state after the reset):
        -- nothing is left to wait for. Known open bug K2: every later run fails the
        -- same way at once, without a new detection, until someone deletes the file.
        violate(6, ("[K2] journal kept after the upgrade result was seen (EUPGRADE, module state %s)")
                   :format(r.module_code))
      end
    elseif r.status == "failed" and fwup_main > 0 and r.code ~= "EUPGRADE" then
      violate(6, ("AT^FWUP sent, failed %s, but the journal was removed"):format(r.code))
    end
    -- 7. recovery: the follow-up run after a failure whose faults were all one-shot
    local unfired
    for _, a in ipairs(p.sim) do
      local f = a:match("^%-%-(power%-loss)$") or a:match("^%-%-(port%-gone)$") or a:match("^%-%-(hang)$")
                or a:match("^%-%-(download%-fail)$")
      if f and not fired[f] then unfired = f end
    end
    if log_main and unfired then
      note(("invariant 7 not checked: %s had not fired when the run failed"):format(unfired))
      res.outcome = res.outcome .. ">(" .. tostring(followup and followup.report and followup.report.status) .. ")"
    elseif log_main then
      local f = followup and followup.report
      local fs = f and f.status
      res.outcome = res.outcome .. ">" .. tostring(fs or "none")
      if fs == "upgraded" then
        if fin.st ~= 90 or fin.running ~= to then
          violate(7, ("the follow-up run reports upgraded, module in %d running %s"):format(fin.st, tostring(fin.running)))
        end
      elseif fs ~= "no_new_version" and fs ~= "not_newer" then
        violate(7, ("not recovered: after %s (one-shot faults only) the next run ended %s%s"):format(
          res.outcome:match("^[^>]*"), tostring(fs), f and f.code and (" " .. f.code) or ""))
      end
      if f and fs ~= "failed" and read_file(journal) then violate(6, "journal left after the follow-up run's " .. fs) end
    end
  elseif #res.violations == 0 then
    violate(5, "no host process finished")
  end
  -- 3 (cause). A download approved for an offer whose version the host never read
  -- (the ^FOTASTATE: 12 line with the version lost, garbled, swallowed, or seen by a
  -- process since killed): nothing checked that it is newer. Known open bug K1; the
  -- I3/I4 violations of such a run are its consequences and carry its tag.
  local blind = false
  for _, c in ipairs(res.children) do blind = blind or c.blind_download end
  if blind then
    violate(3, "download of an offer whose version the host never read")
    for i, v in ipairs(res.violations) do
      if v:find("^I[347] ") or v:find("^I1 a run without faults") then res.violations[i] = "[K1] " .. v end
    end
  end
  -- K8 (cause): two tasks on one port object both drove the module (no EBUSY); what
  -- follows from that (two AT^FWUP, a module left mid-flow) carries the tag
  if res.both_drove then
    for i, v in ipairs(res.violations) do
      if v:find("^I%d+ ") then res.violations[i] = "[K8] " .. v end
    end
  end
  -- 4/6 (cause). AT^FWUP written, the port gone before the module acted on it: after
  -- the port came back the module is still in 40 with the old version, no reset. K4
  -- (fixed): the host never repeats AT^FWUP; it discards the image (AT^FOTADL=0) and
  -- fails EUPGRADE with module code 40. A run that still leaves the module in 40 after
  -- such a failure carries the tag.
  if r and r.status == "failed" and r.code == "EUPGRADE" and r.module_code == "40" and st == 40 then
    violate(4, "[K4] AT^FWUP lost: the module stays in 40 with a verified image that no run will apply")
    for i, v in ipairs(res.violations) do
      if v:find("^I[467] ") then res.violations[i] = "[K4] " .. v end
    end
  end
  -- K7: the discard of a refused offer (AT^FOTADL=0) timed out or lost the port, and
  -- the run still ends "not_newer"/"rejected" with the offer pending in 12.
  if r and (r.status == "not_newer" or r.status == "rejected") and st == 12 then
    for i, v in ipairs(res.violations) do
      if v:find("^I4 ") then res.violations[i] = "[K7] " .. v end
    end
  end
  -- K6: hwfota.run's retry after a port loss reopens the port at once, before waiting
  -- (session.lua: `if port:is_lost() then port:reopen() end` then `loop.sleep(wait)`),
  -- ignores the failure, and the next attempt dies in its setup: EPORTLOST, no phase.
  if r and r.code == "EPORTLOST" and not r.phase and (tonumber(r.attempts) or 1) > 1 then
    for i, v in ipairs(res.violations) do
      if v:find("^I[47] ") then res.violations[i] = "[K6] " .. v end
    end
  end
  -- Simulator bug S1 (fixed): a download or a query started between a power loss's
  -- reboot and its boot report went on after that report set a stale state (30 -> 10 ->
  -- 40, 11 -> 10 -> 12, 10 -> 31). What the host is blamed for at the end of a run with
  -- such an impossible transition (I4, I7) carries the tag; S1 fixed, it fails.
  if res.sim_anomaly then
    for i, v in ipairs(res.violations) do
      if v:find("^I[47] ") then res.violations[i] = "[S1] " .. v .. " (simulator: " .. res.sim_anomaly .. ")" end
    end
  end
  -- 3 (cause). A host process killed while discarding a refused offer (journal phase
  -- "discard"), and a later one downloads: the restore takes "discard" for a phase
  -- past the download decision. Known open bug K3; its I1/I3 violations carry the tag.
  local killed_discarding = false
  for _, c in ipairs(res.children) do
    -- (a restarted host that detected again downloads a fresh offer whose version it
    -- read: that is the K1 redetect path, not K3; I3 judges that offer by itself)
    if killed_discarding and c.phases_set and c.phases_set.download and
       not c.phases_set.detect then
      violate(3, "[K3] download by a host restarted on a journal written in phase discard")
      for i, v in ipairs(res.violations) do
        if v:find("^I[13] ") then res.violations[i] = "[K3] " .. v end
      end
      break
    end
    if c.killself == "phase=discard" then killed_discarding = true end
  end
  res.elapsed = now() - t0
  res.dir = dir
  return res
end

-- ======================================================================= output
local function result_line(res)
  local p = res.plan
  local v = table.concat(res.violations, " | "):gsub("[\r\n]", " ")
  if #v > 1500 then v = v:sub(1, 1500) .. "..." end
  local known, tags = 0, {}
  for _, x in ipairs(res.violations) do
    local t = x:match("^%[([KS]%d+)%]")
    if t then known = known + 1; tags[t] = true end
  end
  local tl = {}
  for t in pairs(tags) do tl[#tl + 1] = t end
  table.sort(tl)
  return ("#run seed=%d kind=%s faults=%s outcome=%s state=%s fwup=%s journal=%d kills=%d time=%.2f violations=%d known=%d%s%s%s")
         :format(res.seed, p.kind, table.concat(p.labels, "+"), res.outcome or "none",
                 tostring(res.sim_state), tostring(res.fwup), res.journal and 1 or 0,
                 res.killed or 0, res.elapsed or 0, #res.violations - known, known,
                 #tl > 0 and (" tags=" .. table.concat(tl, ",")) or "",
                 #res.violations > 0 and (" dir=" .. res.dir) or "",
                 #res.violations > 0 and (" :: " .. v) or "")
end

local function parse_args(a)
  local o = {seed = 1, runs = 1, jobs = 2}
  local i = 1
  while i <= #a do
    local k = a[i]
    local function val() i = i + 1; return a[i] or error("missing value after " .. k) end
    if k == "--seed" then o.seed = math.tointeger(tonumber(val()))
    elseif k == "--runs" then o.runs = math.tointeger(tonumber(val()))
    elseif k == "--jobs" then o.jobs = math.tointeger(tonumber(val()))
    elseif k == "--tally" then o.tally = val()
    elseif k == "--regressions" then o.regressions = val()
    elseif k == "--shard" then
      local v = val()
      local sk, sn = v:match("^(%d+)/(%d+)$")
      o.shard, o.shards = math.tointeger(tonumber(sk or "")), math.tointeger(tonumber(sn or ""))
      if not o.shard or o.shards < 1 or o.shard >= o.shards then
        error("bad --shard " .. v .. " (want K/N with 0 <= K < N)")
      end
    elseif k == "--one" then
      -- SEED or SEED:NK (a plan drawn from the first NK kinds: regression seeds
      -- recorded before kinds were added)
      local v = val()
      local sd, nk = v:match("^(%d+):(%d+)$")
      o.one = math.tointeger(tonumber(sd or v))
      o.nk = nk and math.tointeger(tonumber(nk)) or nil
      if o.nk and (o.nk < 1 or o.nk > #KINDS) then error("bad kind count in --one " .. v) end
    elseif k == "--plan" then o.plan = math.tointeger(tonumber(val()))
    elseif k == "--keep" then o.keep = true
    elseif k == "--list" then o.list = true
    elseif k == "--verbose" then o.verbose = true
    else error("unknown argument " .. k) end
    i = i + 1
  end
  return o
end

local o = parse_args(arg)

if o.plan then
  for sd = o.plan, o.plan + (o.runs > 1 and o.runs - 1 or 0) do print(plan_text(make_plan(sd))) end
  os.exit(0)
end

if o.one then
  local res = run_one(o.one, o)
  if o.verbose then
    for _, n in ipairs(res.notes) do io.stderr:write("note: ", n, "\n") end
    for _, v in ipairs(res.violations) do io.stderr:write("VIOLATION: ", v, "\n") end
  end
  local new = 0
  for _, v in ipairs(res.violations) do if not v:find("^%[[KS]%d+%]") then new = new + 1 end end
  -- a run with only known-bug violations keeps nothing (its seed replays it)
  if new == 0 and not o.keep then
    os.execute("rm -rf " .. sh_quote(res.dir))
    res.dir = "(removed: replay the seed)"
  end
  io.stdout:write(result_line(res), "\n")
  io.stdout:flush()
  os.exit(#res.violations == 0 and 0 or 1)
end

-- ---- a campaign: seeds S..S+N-1 (+ regression seeds), J at a time
local seeds, known, known_tags = {}, {}, {}
-- each {seed, kind count or nil (all)}: regression seeds keep the kind count of their time
for i = 0, o.runs - 1 do seeds[#seeds + 1] = {o.seed + i} end
if o.regressions then
  for l in (read_file(o.regressions) or ""):gmatch("[^\n]+") do
    local tag, tstatus, ttext = l:match("^%s*([KS]%d+)%s+(%S+)%s*(.*)$")
    if tag and tstatus == "open" then known_tags[tag] = ttext end
    local s, status, text = l:match("^%s*(%d+)%S*%s+(%S+)%s*(.*)$")
    if s then
      s = math.tointeger(tonumber(s))
      -- "<seed> keep ..." lines written before issue 12's kinds replay with those kinds;
      -- later ones say "<seed>:<kinds> keep ..." (see README.md)
      local nk = math.tointeger(tonumber(l:match("^%s*%d+:(%d+)%s") or "")) or KINDS_LEGACY
      if status == "open" then known[s] = text
      else seeds[#seeds + 1] = {s, nk} end
    end
  end
end
-- A restart after a SIGKILL needs tty-release, which needs root (TIOCEXCL): without
-- root, runs with host kills are skipped, and said so.
local root = capture("id -u"):match("^0%s*$") ~= nil
local run_seeds, nokill = {}, 0
local shard0 = (o.shard or 0) == 0   -- the notes below: once, not once per shard
for i, sn in ipairs(seeds) do
  local s = sn[1]
  if known[s] then
    if shard0 then print(("#note seed %d skipped: known open violation: %s"):format(s, known[s])) end
  elseif o.shards and (i - 1) % o.shards ~= o.shard then   -- another shard's run
  elseif not root and #make_plan(s, sn[2]).kills > 0 then nokill = nokill + 1
  else run_seeds[#run_seeds + 1] = sn end
end
if nokill > 0 then
  print(("#note %d runs with host kills SKIPPED: not root (tty-release must clear TIOCEXCL)"):format(nokill))
end
for s, text in pairs(shard0 and known or {}) do
  local listed = false
  for _, x in ipairs(seeds) do if x[1] == s then listed = true end end
  if not listed then print(("#note seed %d is a known open violation (not run): %s"):format(s, text)) end
end

if o.list then
  for _, sn in ipairs(run_seeds) do print(sn[1] .. (sn[2] and (":" .. sn[2]) or "")) end
  os.exit(0)
end

local list = os.tmpname()
local lf = assert(io.open(list, "w"))
for _, sn in ipairs(run_seeds) do lf:write(sn[1], sn[2] and (":" .. sn[2]) or "", "\n") end
lf:close()

local t0 = now()
local xcmd = ("xargs -a %s -P %d -I{} env HWFOTA_TOP=%s %s %s --one {}%s </dev/null")
             :format(sh_quote(list), o.jobs, sh_quote(TOP), LUA, sh_quote(SELF),
                     (o.keep and " --keep" or ""))
local xp = assert(io.popen(xcmd))
local stats = {runs = 0, bad = 0, known = 0, known_by = {}, known_seeds = {}, outcomes = {},
               kinds = {}, slowest = nil, times = {}}
local bad_lines = {}
local seen = {}
for l in xp:lines() do
  local seed = tonumber(l:match("^#run seed=(%d+)"))
  if seed then
    seen[seed] = (seen[seed] or 0) + 1
    stats.runs = stats.runs + 1
    local kind, outcome = l:match("kind=(%S+)"), l:match("outcome=(%S+)")
    local t = tonumber(l:match("time=([%d.]+)")) or 0
    local nv = tonumber(l:match("violations=(%d+)")) or 1
    local nk = tonumber(l:match("known=(%d+)")) or 0
    if nk > 0 then
      -- violations of a known open bug (listed in the regressions file): shown, not failed
      local open = true
      for t in (l:match("tags=(%S+)") or ""):gmatch("[^,]+") do open = open and known_tags[t] ~= nil end
      if not open then nv = nv + nk
      else
        stats.known = stats.known + 1
        for t in (l:match("tags=(%S+)") or ""):gmatch("[^,]+") do
          stats.known_by[t] = (stats.known_by[t] or 0) + 1
          stats.known_seeds[t] = stats.known_seeds[t] or {}
          local ks = stats.known_seeds[t]
          if #ks < 12 then ks[#ks + 1] = seed end
        end
        print("#note known open violation: " .. l)
        io.stdout:flush()
      end
    end
    stats.times[#stats.times + 1] = t
    local oc = outcome:match("^failed:") and outcome or outcome
    stats.outcomes[oc] = (stats.outcomes[oc] or 0) + 1
    local ks = stats.kinds[kind] or {runs = 0, up = 0, clean = 0, failed = 0, bad = 0, t = 0}
    stats.kinds[kind] = ks
    ks.runs = ks.runs + 1
    ks.t = ks.t + t
    if outcome == "upgraded" then ks.up = ks.up + 1
    elseif outcome:match("^failed") then ks.failed = ks.failed + 1
    else ks.clean = ks.clean + 1 end
    if nv > 0 then
      stats.bad = stats.bad + 1
      ks.bad = ks.bad + 1
      bad_lines[#bad_lines + 1] = l
      print(l)
      io.stdout:flush()
    end
    if not stats.slowest or t > stats.slowest.t then stats.slowest = {t = t, seed = seed, kind = kind, outcome = outcome} end
    if o.verbose then print(l) end
  else
    print(l)
  end
end
xp:close()
os.remove(list)
local wall = now() - t0
-- A run that died before printing its result line (a crash of the runner, an
-- assert, a kill) would otherwise vanish from the count: every seed started must
-- have been seen exactly once; a missing one is a failed run.
local missing, started = {}, {}
for _, sn in ipairs(run_seeds) do   -- a seed may run twice (result lines name the number)
  started[sn[1]] = (started[sn[1]] or 0) + 1
end
for s, n in pairs(started) do   -- (in the range and in the regressions file)
  for _ = (seen[s] or 0) + 1, n do missing[#missing + 1] = s end
end
table.sort(missing)
for s, n in pairs(seen) do   -- more result lines than runs started: the log is confused
  if n > (started[s] or 0) then
    print(("!! fault campaign: %d result lines for seed %d, started %d times"):format(n, s, started[s] or 0))
    stats.bad = stats.bad + 1
  end
end
for _, s in ipairs(missing) do
  print(("!! fault campaign: seed %d printed no result line (the run crashed?): replay it with "
         .. "`make faults SEED=%d RUNS=1`"):format(s, s))
  stats.bad = stats.bad + 1
end
print(("#note fault campaign: %d runs started, %d result lines seen, %d missing"):format(
  #run_seeds, stats.runs, #missing))
stats.runs = stats.runs + #missing

-- the table
local function pad(s, n) s = tostring(s); return s .. (" "):rep(math.max(0, n - #s)) end
print(("== fault campaign: seeds %d..%d%s%s, %d runs, %d at a time, %.1f s wall"):format(
  o.seed, o.seed + o.runs - 1, o.regressions and " + regressions" or "",
  o.shards and (" (shard %d/%d)"):format(o.shard, o.shards) or "", stats.runs, o.jobs, wall))
print("outcomes:")
local oc = {}
for k, n in pairs(stats.outcomes) do oc[#oc + 1] = {k, n} end
table.sort(oc, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
for _, x in ipairs(oc) do print(("  %s %6d"):format(pad(x[1], 24), x[2])) end
print("by fault kind:        runs upgraded clean failed violations  mean s")
local ks = {}
for k in pairs(stats.kinds) do ks[#ks + 1] = k end
table.sort(ks)
for _, k in ipairs(ks) do
  local x = stats.kinds[k]
  print(("  %s %5d %8d %5d %6d %10d  %6.2f"):format(pad(k, 18), x.runs, x.up, x.clean, x.failed, x.bad, x.t / x.runs))
end
table.sort(stats.times)
local function pct(q) return stats.times[math.max(1, math.ceil(q * #stats.times))] or 0 end
print(("invariant violations: %d runs (new); %d runs with known open bugs"):format(stats.bad, stats.known))
for t, n in pairs(stats.known_by) do
  print(("  %s: %d runs, e.g. seeds %s: %s"):format(t, n, table.concat(stats.known_seeds[t], " "),
        known_tags[t] or "?"))
end
if stats.slowest then
  print(("run time: median %.2f s, p95 %.2f s; slowest %.2f s (seed %d, %s, %s)"):format(
    pct(0.5), pct(0.95), stats.slowest.t, stats.slowest.seed, stats.slowest.kind, stats.slowest.outcome))
end
if o.tally then
  if stats.known > 0 then
    print(("#note %d runs hit known open bugs (listed above, counted neither passed nor failed)"):format(stats.known))
  end
  print(("#tally %s passed=%d failed=%d"):format(o.tally, stats.runs - stats.bad - stats.known, stats.bad))
end
os.exit(stats.bad == 0 and stats.runs > 0 and 0 or 1)
