--- Rollout policy kit for `hwfota.run`: small building blocks an integrator composes.
--
-- Lua 5.4; of the rest of hwfota it uses only the C core's version order
-- (`hwfota.core.version_compare`, the one the safety rules use). Every block is a function that takes
-- one options table and returns a *policy*: a plain table of hooks that `hwfota.run`
-- calls. `policy.all{...}` combines policies into one.
--
-- **Hook contract** (every hook is optional; an absent hook means "no objection"):
--
--  * `on_new_version(info) -> decision [, retry_after [, reason]]`, `info` =
--    `{from=, version=, size=, description=, imei=, ...}`; decision is `"download"`,
--    `"defer"` (not now, ask again later) or `"reject"` (not this version).
--  * `on_downloaded(info) -> decision [, retry_after [, reason]]`; decision is `"upgrade"`,
--    `"defer"` or `"reject"` — both **discard** the downloaded image (`AT^FOTADL=0`,
--    confirmed idle): a module holding a complete image applies it at its next reboot
--    (guide 2.3.3), so leaving it there is not a deferral — or `"keep_until_reboot"`: the
--    image stays on the module, **which applies it at its next reboot** (or when a later
--    run upgrades it). Decide windows and gates in `on_new_version`, before the download.
--  * A decision hook may also return `nil` ("no opinion": treat as proceed).
--    `retry_after` (seconds, number >= 0, or nil when unknown) goes with `"defer"` and
--    says when asking again can give another answer; `reason` is a string for the log.
--  * `on_failure(err, attempt) -> seconds | nil | false`: `err` is
--    `{code=, message=, module_code=}` or a code string; `attempt` is the number of the
--    attempt that failed (1 for the first). A number is the delay before the next attempt;
--    `nil` means "no retry from me"; `false` means "never retry this" (a veto in `all`).
--    `hwfota.run` gives up on `nil` and on `false` alike.
--  * `on_progress(p)`, `on_event(e)`: notifications, return values ignored.
--  * `before_detect(ctx) -> true | nil, message`: called before each attempt's data phase
--    (detection, or download when it resumes without detection). On `nil, message` the
--    attempt must not go on (report it as a failure, e.g. code `EGUARD`), and the guard
--    has already undone whatever it had started: `after` is **not** called for it.
--  * `after(ctx) -> true | nil, message`: called exactly once for every `before_detect`
--    that returned true (a policy without `before_detect` counts as having returned true), with the **same `ctx` table**, when that attempt's data phase
--    ends whatever the outcome (downloaded, deferred, rejected, failed, error raised),
--    before any retry wait. `ctx` is a table owned by `hwfota.run` (suggested fields:
--    `port`, `attempt`, `outcome`); the kit only uses its identity.
--
-- Blocks from this module never raise from `before_detect`/`after`; they raise (with a
-- clear message) on invalid options when built, and on invalid hook arguments.
--
-- @module hwfota.policy
-- @usage
-- local policy = require "hwfota.policy"
-- local p = policy.all{
--   policy.window{ranges = {{"01:00", "05:00"}}, days = {"mon", "tue", "wed", "thu"}},
--   policy.cohort{percent = 10, salt = "2026-11"},
--   policy.gate{to = "12.815.01.04.00", from = {"12.815.01.03.*"}},
--   policy.wan_guard{down = "ifdown wan", up = "ifup wan"},
--   policy.retry{attempts = 4, base = 60, max = 3600, fatal = {EBADIMAGE = true}},
-- }
-- local report = hwfota.run("/dev/ttyUSB2", p)

local M = {
  _VERSION = "hwfota.policy 0.1.0",
  _DESCRIPTION = "Composable rollout policies (retry, gate, window, cohort, wan_guard, all) for hwfota.run",
  _LICENSE = "same as hwfota",
}

local type, pairs, ipairs, tostring, error, pcall =
  type, pairs, ipairs, tostring, error, pcall
local math_type, floor, huge = math.type, math.floor, math.huge
local fmt = string.format
local core = require "hwfota.core"

--- The hooks a policy table may define (names `hwfota.run` calls).
-- @table HOOKS
M.HOOKS = { "on_new_version", "on_downloaded", "on_failure", "on_progress", "on_event",
      "before_detect", "after" }

-- =====================================================================================
-- Argument checking. Constructors raise a tagged error that `constructor` re-raises at
-- the integrator's call site (level 2), whatever helper found the problem.

local ArgError = {}
local function argerr(msg)
  error(setmetatable({ msg = msg }, ArgError), 0)
end

local function constructor(f)
  return function(...)
    local ok, r = pcall(f, ...)
    if ok then return r end
    if getmetatable(r) == ArgError then error(r.msg, 2) end
    error(r, 0)
  end
end

local function check_opts(fname, opts, known)
  if type(opts) ~= "table" then
    argerr(fmt("hwfota.policy.%s: expected an options table, got %s", fname, type(opts)))
  end
  for k in pairs(opts) do
    if not known[k] then
      argerr(fmt("hwfota.policy.%s: unknown option '%s'", fname, tostring(k)))
    end
  end
end

local function check_number(fname, name, v, min, max, default, integer)
  if v == nil then return default end
  if type(v) ~= "number" then
    argerr(fmt("hwfota.policy.%s: '%s' must be a number, got %s", fname, name, type(v)))
  end
  if v ~= v or v == huge or v == -huge then
    -- an infinite (or NaN) delay would be handed to sleep
    argerr(fmt("hwfota.policy.%s: '%s' must be a finite number, got %s", fname, name,
              tostring(v)))
  end
  if integer and math_type(v) ~= "integer" and v ~= floor(v) then
    argerr(fmt("hwfota.policy.%s: '%s' must be an integer, got %s", fname, name, tostring(v)))
  end
  if (min and v < min) or (max and v > max) then
    argerr(fmt("hwfota.policy.%s: '%s' must be in [%s, %s], got %s", fname, name,
              tostring(min or -huge), tostring(max or huge), tostring(v)))
  end
  return v
end

local function check_function(fname, name, v, default)
  if v == nil then return default end
  if type(v) ~= "function" then
    argerr(fmt("hwfota.policy.%s: '%s' must be a function, got %s", fname, name, type(v)))
  end
  return v
end

-- A set given as {"A", "B"} or {A = true, B = true}; returns {A = true, B = true}.
local function to_set(fname, name, t)
  if t == nil then return nil end
  if type(t) ~= "table" then
    argerr(fmt("hwfota.policy.%s: '%s' must be a table, got %s", fname, name, type(t)))
  end
  local set = {}
  for k, v in pairs(t) do
    if math_type(k) == "integer" and type(v) == "string" then
      set[v] = true
    elseif type(k) == "string" and v == true then
      set[k] = true
    elseif type(k) == "string" and v == false then
      -- explicitly excluded: leave out
    else
      argerr(fmt("hwfota.policy.%s: '%s' entries must be code strings or CODE = true",
                fname, name))
    end
  end
  return set
end

local function err_code(err)
  if type(err) == "string" then return err end
  if type(err) == "table" then
    local c = err.code
    if c ~= nil and type(c) ~= "string" then
      error(fmt("hwfota.policy: err.code must be a string, got %s", type(c)), 3)
    end
    return c
  end
  error(fmt("hwfota.policy: on_failure expects err as a table or a code string, got %s",
            type(err)), 3)
end

-- =====================================================================================
-- retry

local RETRY_PARAMS = { attempts = true, base = true, max = true, factor = true, jitter = true }

local function retry_params(fname, t, defaults)
  return {
    attempts = check_number(fname, "attempts", t.attempts, 1, nil, defaults.attempts, true),
    base = check_number(fname, "base", t.base, 0, nil, defaults.base),
    max = check_number(fname, "max", t.max, 0, nil, defaults.max),
    factor = check_number(fname, "factor", t.factor, 1, nil, defaults.factor),
    jitter = check_number(fname, "jitter", t.jitter, 0, 1, defaults.jitter),
  }
end

--- Retry with exponential backoff, jitter, a cap and a maximum number of attempts.
--
-- Delay after failed attempt `n`: `d = min(max, base * factor^(n-1))`, then with jitter
-- `d = d * (1 + jitter * (2*r - 1))` where `r = random()` in [0, 1), then capped again at
-- `max` (so `max` is a hard limit; jitter spreads a fleet by +-`jitter`*100 %).
-- `on_failure(err, n)` returns that delay while `n < attempts`, `nil` once `attempts`
-- attempts have failed or when the code is not one this block retries, and `false` for
-- a code in `fatal`.
-- @tparam table opts
-- @tparam[opt=5] integer opts.attempts total attempts, the first one included (>= 1)
-- @tparam[opt=30] number opts.base delay after the first failure, seconds
-- @tparam[opt=3600] number opts.max cap on any delay, seconds
-- @tparam[opt=2] number opts.factor growth per attempt (>= 1)
-- @tparam[opt=0.2] number opts.jitter relative spread in [0, 1]
-- @tparam[opt] table opts.codes codes to retry: `{"ETIMEDOUT", "EIO"}`,
--   `{ETIMEDOUT = true}`, or per-code overrides of the parameters above,
--   `{ETIMEDOUT = {attempts = 10, base = 5}}`. Absent: every code not in `fatal`.
--   A table `err` without a code is retried only when `codes` is absent.
-- @tparam[opt] table opts.fatal codes never retried (`on_failure` returns `false`)
-- @tparam[opt=math.random] function opts.random returns a number in [0, 1)
-- @treturn table policy with `on_failure(err, attempt) -> seconds | nil | false`
-- @usage policy.retry{attempts = 4, base = 60, codes = {"ETIMEDOUT", ECOLLISION = {base = 300}}}
function M.retry(opts)
  opts = opts or {}
  check_opts("retry", opts, { attempts = true, base = true, max = true, factor = true,
                jitter = true, codes = true, fatal = true, random = true })
  local defaults = retry_params("retry", opts,
    { attempts = 5, base = 30, max = 3600, factor = 2, jitter = 0.2 })
  local random = check_function("retry", "random", opts.random, math.random)
  local fatal = to_set("retry", "fatal", opts.fatal) or {}
  local codes
  if opts.codes ~= nil then
    if type(opts.codes) ~= "table" then
      argerr(fmt("hwfota.policy.retry: 'codes' must be a table, got %s", type(opts.codes)))
    end
    codes = {}
    for k, v in pairs(opts.codes) do
      if math_type(k) == "integer" and type(v) == "string" then
        codes[v] = codes[v] or defaults
      elseif type(k) == "string" and v == true then
        codes[k] = defaults
      elseif type(k) == "string" and type(v) == "table" then
        for pk in pairs(v) do
          if not RETRY_PARAMS[pk] then
            argerr(fmt("hwfota.policy.retry: unknown option '%s' for code %s",
                      tostring(pk), k))
          end
        end
        codes[k] = retry_params("retry", v, defaults)
      else
        argerr("hwfota.policy.retry: 'codes' entries must be code strings, " ..
              "CODE = true or CODE = {overrides}")
      end
    end
  end

  local p = { name = "retry" }
  function p.on_failure(err, attempt)
    local code = err_code(err)
    if math_type(attempt) ~= "integer" or attempt < 1 then
      error(fmt("hwfota.policy.retry: attempt must be an integer >= 1, got %s",
                tostring(attempt)), 2)
    end
    if code ~= nil and fatal[code] then return false end
    local prm
    if codes then
      prm = code ~= nil and codes[code] or nil
      if not prm then return nil end
    else
      prm = defaults
    end
    if attempt >= prm.attempts then return nil end
    local d = prm.base * prm.factor ^ (attempt - 1)
    if d > prm.max then d = prm.max end
    if prm.jitter > 0 then
      local r = random()
      if type(r) ~= "number" then
        error("hwfota.policy.retry: random() must return a number", 2)
      end
      d = d * (1 + prm.jitter * (2 * r - 1))
      if d > prm.max then d = prm.max end
      if d < 0 then d = 0 end
    end
    return d
  end
  return p
end

-- =====================================================================================
-- Versions and gate

--- Compare two firmware versions such as `"12.815.01.03.00"`, in the one order the C
-- core's safety rules use (`hwfota.version_compare`): surrounding spaces, tabs and one
-- pair of quotes are ignored; 2 to 8 dot-separated fields of 1 to 6 decimal digits, each
-- compared as a number (`01` = `1`, `9` < `10`); a missing field counts as `0`, so
-- `"1.2"` equals `"1.2.0"`. Anything else (`"1.2a"`, `"2"`, `""`) is refused as the
-- core refuses it.
-- @tparam string a
-- @tparam string b
-- @return -1 when a < b, 0 when equal, 1 when a > b; or nil, message, "EPARSE" when a
--   version is malformed
-- @usage assert(policy.version_compare("12.815.01.04.00", "12.815.01.03.00") == 1)
function M.version_compare(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then
    error(fmt("hwfota.policy.version_compare: expected two strings, got %s and %s",
              type(a), type(b)), 2)
  end
  return core.version_compare(a, b)
end

-- A `from` entry: exact string, glob with `*`, or function(version) -> boolean.
local function make_matcher(entry)
  if type(entry) == "function" then return entry end
  if entry:find("*", 1, true) then
    local pat = "^" .. entry:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
    return function(v) return v:find(pat) ~= nil end
  end
  return function(v) return v == entry end
end

--- Version gate: which source versions may update, to which target, never backwards.
--
-- `on_new_version(info)` returns `"download"` when every check passes, otherwise
-- `"reject", nil, reason`. Checks, in order: `info.version` and `info.from` are strings
-- (a missing running version is rejected: it cannot be checked); `info.from` matches an
-- entry of `from` (when given); `info.version` equals `to` by `compare` (when given);
-- `compare(info.version, info.from)` is > 0, or == 0 with `allow_equal`, or < 0 with
-- `allow_downgrade`. The gate defines no `on_downloaded` (the image was vetted before
-- download; the C core enforces its own safety rules at upgrade time).
-- @tparam table opts
-- @tparam[opt] {string|function,...} opts.from allowed running versions: exact strings,
--   globs where `*` matches any text (`"12.815.01.*"`), or functions `(version) -> bool`
-- @tparam[opt] string opts.to pinned target: only this version is accepted
-- @tparam[opt=false] boolean opts.allow_downgrade
-- @tparam[opt=false] boolean opts.allow_equal
-- @tparam[opt=policy.version_compare] function opts.compare `(a, b)` -> number <0, 0, >0,
--   or nil, message for a version it cannot order (the offer is rejected with the message)
-- @treturn table policy with `on_new_version(info) -> "download" | "reject", nil, reason`
-- @usage policy.gate{from = {"12.815.01.03.00", "12.815.01.02.*"}, to = "12.815.01.04.00"}
function M.gate(opts)
  opts = opts or {}
  check_opts("gate", opts, { from = true, to = true, allow_downgrade = true,
                             allow_equal = true, compare = true })
  local compare = check_function("gate", "compare", opts.compare, M.version_compare)
  local matchers
  if opts.from ~= nil then
    if type(opts.from) ~= "table" then
      argerr(fmt("hwfota.policy.gate: 'from' must be a list, got %s", type(opts.from)))
    end
    matchers = {}
    for i, e in ipairs(opts.from) do
      if type(e) ~= "string" and type(e) ~= "function" then
        argerr(fmt("hwfota.policy.gate: from[%d] must be a string or a function, got %s",
                  i, type(e)))
      end
      matchers[i] = make_matcher(e)
    end
    if #matchers == 0 then
      argerr("hwfota.policy.gate: 'from' is empty (no version could ever update)")
    end
  end
  local to = opts.to
  if to ~= nil and type(to) ~= "string" then
    argerr(fmt("hwfota.policy.gate: 'to' must be a version string, got %s", type(to)))
  end
  for _, k in ipairs{ "allow_downgrade", "allow_equal" } do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      argerr(fmt("hwfota.policy.gate: '%s' must be a boolean, got %s", k, type(opts[k])))
    end
  end
  local allow_downgrade, allow_equal = opts.allow_downgrade == true, opts.allow_equal == true

  local p = { name = "gate" }
  function p.on_new_version(info)
    if type(info) ~= "table" then
      error(fmt("hwfota.policy.gate: info must be a table, got %s", type(info)), 2)
    end
    local from, version = info.from, info.version
    if type(version) ~= "string" then
      return "reject", nil, "gate: no announced version"
    end
    if type(from) ~= "string" then
      return "reject", nil, "gate: running version unknown"
    end
    if matchers then
      local ok = false
      for _, m in ipairs(matchers) do
        if m(from) then ok = true; break end
      end
      if not ok then
        return "reject", nil, fmt("gate: running version %s is not in the allowed list", from)
      end
    end
    if to then
      local t, why = compare(version, to)
      if t == nil and why ~= nil then
        return "reject", nil, fmt("gate: cannot compare the offer with the pinned "
                      .. "target: %s", tostring(why))
      end
      if t ~= 0 then
        return "reject", nil, fmt("gate: %s is not the pinned target %s", version, to)
      end
    end
    local c, why = compare(version, from)
    if c == nil and why ~= nil then   -- a malformed version: refused, never ordered
      return "reject", nil, fmt("gate: cannot compare the offer with the running "
                    .. "version: %s", tostring(why))
    end
    if type(c) ~= "number" then
      error("hwfota.policy.gate: compare must return a number", 2)
    end
    if c == 0 and not allow_equal then
      return "reject", nil, fmt("gate: %s is the running version", version)
    end
    if c < 0 and not allow_downgrade then
      return "reject", nil, fmt("gate: %s would downgrade %s", version, from)
    end
    return "download"
  end
  return p
end

-- =====================================================================================
-- window

local DAYS = { sun = 1, mon = 2, tue = 3, wed = 4, thu = 5, fri = 6, sat = 7 }
local WEEK = 7 * 86400

local function parse_hhmm(s, allow24)
  if type(s) ~= "string" then return nil end
  local h, m = s:match("^(%d%d?):(%d%d)$")
  h, m = tonumber(h), tonumber(m)
  if not h or m > 59 then return nil end
  if h == 24 and m == 0 and allow24 then return 1440 end
  if h > 23 then return nil end
  return h * 60 + m
end

--- Maintenance window: proceed only inside local-time ranges on given weekdays.
--
-- A range `{"HH:MM", "HH:MM"}` includes its start and excludes its end; an end at or
-- before the start crosses midnight (`{"23:00", "02:00"}`); `"24:00"` is allowed as an end;
-- equal start and end are refused. `days` names the day on which a range **starts**: with
-- `days = {"fri"}`, `{"23:00", "02:00"}` covers Friday 23:00 to Saturday 02:00.
-- Outside the window `on_new_version` and `on_downloaded` return
-- `"defer", seconds_to_next_opening, reason`; inside they return `"download"`/`"upgrade"`.
-- The decision that matters is taken before the download (`on_new_version`): a download
-- starts only inside the window. If it outlasts the window, `on_downloaded` defers, which
-- discards the image (a module keeping it would apply it at its next reboot, outside
-- the window); the next run inside the window downloads it again.
-- The delay is computed on the clock's local fields (a DST change can shift it by an hour;
-- the window is checked again when asked again).
-- @tparam table opts
-- @tparam {{string,string},...} opts.ranges at least one range
-- @tparam[opt] {string,...} opts.days weekday names `"sun"`..`"sat"` (or full names, any case);
--   absent: every day
-- @tparam[opt] function opts.clock returns an `os.date("*t")`-like table (`wday` 1 = Sunday,
--   `hour`, `min`, `sec`); default `os.date("*t")`, local time
-- @treturn table policy with `on_new_version`, `on_downloaded`, and `is_open() -> boolean,
--   seconds_to_next_opening` (0 when open)
-- @usage policy.window{ranges = {{"23:30", "04:30"}}, days = {"sat", "sun"}}
function M.window(opts)
  check_opts("window", opts, { ranges = true, days = true, clock = true })
  local clock = check_function("window", "clock", opts.clock, function() return os.date("*t") end)
  if type(opts.ranges) ~= "table" or #opts.ranges == 0 then
    argerr("hwfota.policy.window: 'ranges' must be a non-empty list of {\"HH:MM\", \"HH:MM\"}")
  end
  local ranges = {}
  for i, r in ipairs(opts.ranges) do
    local s = type(r) == "table" and parse_hhmm(r[1], false)
    local e = type(r) == "table" and parse_hhmm(r[2], true)
    if not s or not e then
      argerr(fmt("hwfota.policy.window: ranges[%d] must be {\"HH:MM\", \"HH:MM\"}", i))
    end
    if s == e then
      argerr(fmt("hwfota.policy.window: ranges[%d] is empty (start equals end)", i))
    end
    local len = e > s and e - s or e + 1440 - s
    ranges[i] = { start = s * 60, len = len * 60 }
  end
  local days = {}
  if opts.days == nil then
    for d = 1, 7 do days[d] = true end
  else
    if type(opts.days) ~= "table" or #opts.days == 0 then
      argerr("hwfota.policy.window: 'days' must be a non-empty list of weekday names")
    end
    for i, d in ipairs(opts.days) do
      local n = type(d) == "string" and DAYS[d:lower():sub(1, 3)]
      local full = type(d) == "string" and #d > 3 and
        ({ sunday = 1, monday = 1, tuesday = 1, wednesday = 1, thursday = 1,
           friday = 1, saturday = 1 })[d:lower()]
      if not n or (#d > 3 and not full) then
        argerr(fmt("hwfota.policy.window: days[%d] is not a weekday name: %s", i,
                  tostring(d)))
      end
      days[n] = true
    end
  end

  -- Seconds since Sunday 00:00 for the clock's current time, then the window check.
  local function is_open()
    local t = clock()
    local function finite(x) return type(x) == "number" and x == x and x > -huge and x < huge end
    if type(t) ~= "table" or math_type(t.wday) ~= "integer" or t.wday < 1 or t.wday > 7
       or not finite(t.hour) or not finite(t.min) or (t.sec ~= nil and not finite(t.sec)) then
      error("hwfota.policy.window: clock() must return a table with wday, hour, min", 3)
    end
    local now = (t.wday - 1) * 86400 + t.hour * 3600 + t.min * 60 + (t.sec or 0)
    local best = huge
    for d = 1, 7 do
      if days[d] then
        for _, r in ipairs(ranges) do
          local s = (d - 1) * 86400 + r.start
          local since = (now - s) % WEEK -- seconds since the latest such start
          if since < r.len then return true, 0 end
          local untl = WEEK - since
          if untl < best then best = untl end
        end
      end
    end
    return false, best
  end

  local p = { name = "window", is_open = is_open }
  local function decide(yes)
    return function()
      local open, wait = is_open()
      if open then return yes end
      return "defer", wait, "window: outside the maintenance window"
    end
  end
  p.on_new_version = decide("download")
  p.on_downloaded = decide("upgrade")
  return p
end

-- =====================================================================================
-- cohort

--- FNV-1a 32-bit hash of a string (offset basis 2166136261, prime 16777619), stable
-- across runs, machines and Lua builds.
-- @tparam string s
-- @treturn integer hash in [0, 2^32)
-- @usage assert(policy.fnv1a32("a") == 0xe40c292c)
function M.fnv1a32(s)
  if type(s) ~= "string" then
    error(fmt("hwfota.policy.fnv1a32: expected a string, got %s", type(s)), 2)
  end
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return h
end

--- A device's place in the fleet, in [0, 100): `fnv1a32(salt .. key) * 100 / 2^32`.
-- A device takes part in a cohort of `percent` when its position is below `percent`, so
-- raising the percentage only adds devices (1 % -> 10 % -> 100 % keeps the first ones).
-- @tparam string key e.g. the IMEI
-- @tparam[opt=""] string salt
-- @treturn number position in [0, 100)
function M.cohort_position(key, salt)
  if type(key) ~= "string" then
    error(fmt("hwfota.policy.cohort_position: key must be a string, got %s", type(key)), 2)
  end
  if salt ~= nil and type(salt) ~= "string" then
    error(fmt("hwfota.policy.cohort_position: salt must be a string, got %s", type(salt)), 2)
  end
  return M.fnv1a32((salt or "") .. key) * 100 / 4294967296
end

--- Cohort / canary: take part only when a stable hash of the IMEI falls under `percent`.
--
-- `on_new_version(info)` computes `key(info)` (a string, or an integer turned into its
-- decimal digits) and returns `"download"` when `cohort_position(key, salt) < percent`,
-- otherwise `outside, nil, reason` — by default `"defer"` (not yet: this device may be in
-- a later, larger cohort; no retry time since only a configuration change alters the
-- answer). A missing key counts as outside. Change `salt` (e.g. per campaign) to draw a
-- different canary set. `percent = 100` takes everyone, `0` nobody.
-- @tparam table opts
-- @tparam number opts.percent in [0, 100], fractions allowed
-- @tparam[opt] function opts.key `(info) -> string`; default `info.imei`
-- @tparam[opt=""] string opts.salt
-- @tparam[opt="defer"] string opts.outside `"defer"` or `"reject"`
-- @treturn table policy with `on_new_version(info)` and `contains(key) -> boolean`
-- @usage policy.cohort{percent = 10, salt = "fw-12.815.01.04"}
function M.cohort(opts)
  check_opts("cohort", opts, { percent = true, key = true, salt = true, outside = true })
  if opts.percent == nil then argerr("hwfota.policy.cohort: 'percent' is required") end
  local percent = check_number("cohort", "percent", opts.percent, 0, 100)
  local key = check_function("cohort", "key", opts.key, function(info) return info.imei end)
  local salt = opts.salt or ""
  if type(salt) ~= "string" then
    argerr(fmt("hwfota.policy.cohort: 'salt' must be a string, got %s", type(salt)))
  end
  local outside = opts.outside or "defer"
  if outside ~= "defer" and outside ~= "reject" then
    argerr(fmt("hwfota.policy.cohort: 'outside' must be \"defer\" or \"reject\", got %s",
              tostring(outside)))
  end

  local function contains(k)
    if math_type(k) == "integer" then k = fmt("%d", k) end
    if type(k) ~= "string" or k == "" then return false end
    return M.cohort_position(k, salt) < percent
  end
  local p = { name = "cohort", contains = contains }
  function p.on_new_version(info)
    if type(info) ~= "table" then
      error(fmt("hwfota.policy.cohort: info must be a table, got %s", type(info)), 2)
    end
    local k = key(info)
    if contains(k) then return "download" end
    if k == nil or k == "" then
      return outside, nil, "cohort: no key (IMEI) to place this device"
    end
    return outside, nil, fmt("cohort: outside the %s %% cohort", tostring(percent))
  end
  return p
end

-- =====================================================================================
-- wan_guard

-- Run a down/up action; returns true or nil, message.
local function run_action(action, execute, what)
  if type(action) == "string" then
    local ok, a, b, c = pcall(execute, action)
    if not ok then return nil, fmt("%s: '%s' raised: %s", what, action, tostring(a)) end
    -- os.execute: true|nil, "exit"|"signal", code
    if a == true or (a == 0 and b == nil) then return true end
    return nil, fmt("%s: '%s' failed (%s %s)", what, action, tostring(b), tostring(c))
  end
  local res = table.pack(pcall(action))
  if not res[1] then return nil, fmt("%s raised: %s", what, tostring(res[2])) end
  if res[2] == false or (res[2] == nil and res.n >= 3 and res[3] ~= nil) then
    return nil, fmt("%s failed: %s", what, tostring(res[3] or "returned false"))
  end
  return true
end

--- Data-connection guard: bring the WAN down before detection/download, always back after.
--
-- The module refuses FOTA detection and download while the host holds a data session
-- ("collision"). `before_detect(ctx)` runs `down`; `after(ctx)` runs `up`. Each of `down`
-- and `up` is a function (fails when it raises, returns `false`, or returns `nil, msg`)
-- or a shell command run with `execute` (fails on a non-zero exit). If `down` fails,
-- `before_detect` runs `up` at once (the WAN may be half down) and returns `nil, message`.
-- `after(ctx)` acts only for a `ctx` whose `before_detect` succeeded and only once (a second
-- call is a no-op returning true); it never raises and returns `true` or `nil, message`.
-- Shared by several sessions (one policy, two modules), the guard counts: `down` runs when
-- the first session enters, `up` when the last one leaves.
-- @tparam table opts
-- @tparam string|function opts.down e.g. `"ifdown wan"` or `"ubus call network.interface.wan down"`
-- @tparam string|function opts.up e.g. `"ifup wan"` or `"ubus call network.interface.wan up"`
-- @tparam[opt=os.execute] function opts.execute runs a command string, `os.execute` results
-- @treturn table policy with `before_detect(ctx) -> true | nil, msg`,
--   `after(ctx) -> true | nil, msg`, and `active() -> integer` (sessions inside)
-- @usage
-- -- OpenWrt, netifd:
-- policy.wan_guard{down = "ifdown wan", up = "ifup wan"}
-- -- or through ubus:
-- policy.wan_guard{down = "ubus call network.interface.wan down",
--                  up = "ubus call network.interface.wan up"}
function M.wan_guard(opts)
  check_opts("wan_guard", opts, { down = true, up = true, execute = true })
  for _, k in ipairs{ "down", "up" } do
    local v = opts[k]
    if (type(v) ~= "string" or v == "") and type(v) ~= "function" then
      argerr(fmt("hwfota.policy.wan_guard: '%s' must be a command string or a function, got %s",
                k, type(v)))
    end
  end
  local execute = check_function("wan_guard", "execute", opts.execute, os.execute)
  local down, up = opts.down, opts.up
  local inside = setmetatable({}, { __mode = "k" })
  local count = 0

  local p = { name = "wan_guard" }
  function p.active() return count end
  function p.before_detect(ctx)
    if type(ctx) ~= "table" then
      error(fmt("hwfota.policy.wan_guard: before_detect(ctx) needs a ctx table, got %s",
                type(ctx)), 2)
    end
    if inside[ctx] then return true end
    if count == 0 then
      local ok, msg = run_action(down, execute, "wan_guard: down")
      if not ok then
        local uok, umsg = run_action(up, execute, "wan_guard: up")
        if not uok then msg = msg .. "; " .. umsg end
        return nil, msg
      end
    end
    count = count + 1
    inside[ctx] = true
    return true
  end
  function p.after(ctx)
    if type(ctx) ~= "table" or not inside[ctx] then return true end
    inside[ctx] = nil
    count = count - 1
    if count == 0 then return run_action(up, execute, "wan_guard: up") end
    return true
  end
  return p
end

-- =====================================================================================
-- all

local RANK = { download = 1, upgrade = 1, keep_until_reboot = 2, defer = 3, reject = 4 }
local VALID = {
  on_new_version = { download = true, defer = true, reject = true },
  on_downloaded = { upgrade = true, defer = true, reject = true, keep_until_reboot = true },
}

--- Combine policies into one; `all` is itself a policy and nests.
--
-- * Decisions (`on_new_version`, `on_downloaded`): members are asked in order; a member
--   without the hook or answering `nil` abstains. The first `"reject"` ends the question
--   (later members are not asked) and its `retry_after`, `reason` are returned. Otherwise,
--   if any member defers, the result is `"defer"` with the **largest** `retry_after` given
--   by a deferring member (`nil` if none gave one) and the deferring members' reasons
--   joined with `"; "`. Otherwise, if a member answered `"keep_until_reboot"` (only
--   `on_downloaded`), that. Otherwise `"download"` / `"upgrade"`. A member answering
--   anything else raises an error naming it.
-- * `on_failure(err, attempt)`: every member with the hook is asked; any `false` -> `false`
--   (veto); else the **smallest** number; else `nil`.
-- * `on_progress`, `on_event`: called on every member in order.
-- * `before_detect(ctx)`: members' guards run in order (a member with `after` but no
--   `before_detect` counts as entered); if one fails (returns `nil, msg`
--   or raises), the guards already entered are unwound in reverse with `after(ctx)` and
--   `nil, msg` is returned. `after(ctx)` unwinds the entered guards in reverse, every one
--   even if some fail or raise, and returns `true` or `nil, messages`.
-- @tparam {table,...} policies the member policies (a list)
-- @treturn table policy defining every hook in `HOOKS`, plus `members`
-- @usage local p = policy.all{policy.window{...}, policy.cohort{percent = 1}, policy.retry{}}
function M.all(policies)
  if type(policies) ~= "table" then
    argerr(fmt("hwfota.policy.all: expected a list of policies, got %s", type(policies)))
  end
  local members = {}
  for i = 1, #policies do
    local m = policies[i]
    if type(m) ~= "table" then
      argerr(fmt("hwfota.policy.all: member %d is a %s, not a policy table", i, type(m)))
    end
    for _, h in ipairs(M.HOOKS) do
      if m[h] ~= nil and type(m[h]) ~= "function" then
        argerr(fmt("hwfota.policy.all: member %d: hook '%s' is a %s, not a function",
                  i, h, type(m[h])))
      end
    end
    members[i] = m
  end
  for k in pairs(policies) do
    if math_type(k) ~= "integer" or k < 1 or k > #policies then
      argerr(fmt("hwfota.policy.all: unexpected key '%s' (give a list of policies)",
                tostring(k)))
    end
  end

  local function label(i)
    return fmt("member %d%s", i, members[i].name and " (" .. tostring(members[i].name) .. ")" or "")
  end

  local function decision(hook, proceed)
    return function(info)
      local deferred, keep, wait, reasons = false, false, nil, {}
      for i, m in ipairs(members) do
        local f = m[hook]
        if f then
          local d, after, reason = f(info)
          if d ~= nil then
            if not VALID[hook][d] then
              error(fmt("hwfota.policy.all: %s: %s returned %s", label(i), hook,
                        tostring(d)), 2)
            end
            if after ~= nil and (type(after) ~= "number" or after < 0) then
              error(fmt("hwfota.policy.all: %s: %s retry_after must be seconds >= 0",
                        label(i), hook), 2)
            end
            if d == "reject" then return "reject", after, reason end
            if d == "keep_until_reboot" then keep = true end
            if d == "defer" then
              deferred = true
              if after and (wait == nil or after > wait) then wait = after end
              if reason then reasons[#reasons + 1] = tostring(reason) end
            end
          end
        end
      end
      if deferred then
        return "defer", wait, #reasons > 0 and table.concat(reasons, "; ") or nil
      end
      if keep then return "keep_until_reboot" end
      return proceed
    end
  end

  local p = { name = "all", members = members }
  p.on_new_version = decision("on_new_version", "download")
  p.on_downloaded = decision("on_downloaded", "upgrade")

  function p.on_failure(err, attempt)
    local best
    for i, m in ipairs(members) do
      if m.on_failure then
        local s = m.on_failure(err, attempt)
        if s == false then return false end
        if s ~= nil then
          if type(s) ~= "number" or s < 0 then
            error(fmt("hwfota.policy.all: %s: on_failure returned %s", label(i),
                      tostring(s)), 2)
          end
          if best == nil or s < best then best = s end
        end
      end
    end
    return best
  end

  for _, h in ipairs{ "on_progress", "on_event" } do
    p[h] = function(...)
      for _, m in ipairs(members) do
        if m[h] then m[h](...) end
      end
    end
  end

  -- Guards: remember, per ctx, which members were entered (in order).
  local entered = setmetatable({}, { __mode = "k" })

  local function unwind(ctx, list)
    local msgs = {}
    for j = #list, 1, -1 do
      local i = list[j]
      local ok, r, msg = pcall(members[i].after, ctx)
      if not ok then
        msgs[#msgs + 1] = fmt("%s: after raised: %s", label(i), tostring(r))
      elseif not r then
        msgs[#msgs + 1] = fmt("%s: %s", label(i), tostring(msg))
      end
    end
    if #msgs > 0 then return nil, table.concat(msgs, "; ") end
    return true
  end

  function p.before_detect(ctx)
    if type(ctx) ~= "table" then
      error(fmt("hwfota.policy.all: before_detect(ctx) needs a ctx table, got %s",
                type(ctx)), 2)
    end
    local list = {}
    for i, m in ipairs(members) do
      if m.before_detect then
        local ok, r, msg = pcall(m.before_detect, ctx)
        if not ok or not r then
          local why = ok and tostring(msg) or ("raised: " .. tostring(r))
          local _, umsg = unwind(ctx, list)
          return nil, fmt("%s: before_detect failed: %s", label(i), why) ..
                (umsg and ("; while unwinding: " .. umsg) or "")
        end
      end
      -- A member without before_detect counts as entered (its after still runs).
      if m.after then list[#list + 1] = i end
    end
    entered[ctx] = list
    return true
  end

  function p.after(ctx)
    if type(ctx) ~= "table" then return true end
    local list = entered[ctx]
    if not list then return true end
    entered[ctx] = nil
    return unwind(ctx, list)
  end
  return p
end

for _, name in ipairs{ "retry", "gate", "window", "cohort", "wan_guard", "all" } do
  M[name] = constructor(M[name])
end

return M
