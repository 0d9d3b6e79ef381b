--- hwfota.reconnect: wait for a module's port to come back, one way for every caller.
--
-- A module's port goes away while the module resets (after `AT^FWUP`, a power
-- loss, a USB hiccup) and comes back, maybe under another ttyUSB number. Every
-- place that waits for it (the driver after the machine's "reopen" action, a run
-- that finds its journal but no port, a retry after its wait, the command's
-- `monitor` and its flow commands) tries again with the same bounded back-off:
-- 0.1 s, doubling, at most 2 s between tries, up to a deadline, the last try at
-- the deadline itself. The waits go through `hwfota.loop` (`loop.sleep`): inside
-- a task the other tasks keep running, nothing busy-waits.
--
-- With `watch` (targets for `hwfota.pathwatch`: where the port's name comes back)
-- a wait ends as soon as one of them may be back, instead of up to a whole back-off
-- wait later; the back-off stays as the fallback (no inotify, a missed event).
--
-- Which port is the module's is the caller's `try` (by path, or by USB identity
-- with `hwfota.identity.reopen`); whether it is still the same module (its IMEI)
-- the caller confirms afterwards, as before.
--
-- @module hwfota.reconnect

local core = require "hwfota.core"
local loop = require "hwfota.loop"
local pathwatch = require "hwfota.pathwatch"

local M = {}

--- The first wait between two tries (seconds).
M.FIRST = 0.1
--- The longest wait between two tries (seconds).
M.MAX = 2.0

local Backoff = {}
Backoff.__index = Backoff

local function check_number(v, what, fn, allow_inf)
  if type(v) ~= "number" or not (v >= 0) or (v == math.huge and not allow_inf) then
    error(("bad argument to '%s' (%s: non-negative number expected, got %s)"):format(
      fn, what, tostring(v)), 3)
  end
end

--- A back-off schedule: doubling waits between tries, bounded by a deadline.
-- @tparam number|nil timeout seconds from now to the deadline (`math.huge`: none;
--   nil: `o.deadline`)
-- @tparam[opt] table o `deadline` (absolute, on the clock `now`, when `timeout` is
--   nil), `first` (default `FIRST`), `max` (default `MAX`), `now` (a clock, default
--   `hwfota.core.now`)
-- @treturn table the schedule: `deadline`, `expired(now)`, `next_at(now)`
function M.backoff(timeout, o)
  o = o or {}
  if timeout ~= nil or o.deadline == nil then check_number(timeout, "timeout", "backoff", true) end
  local first, max = o.first or M.FIRST, o.max or M.MAX
  check_number(first, "first", "backoff")
  check_number(max, "max", "backoff")
  local now = o.now or core.now
  local deadline = o.deadline
  if timeout ~= nil then deadline = now() + timeout end
  if type(deadline) ~= "number" or deadline ~= deadline then
    error("bad argument to 'backoff' (deadline: number expected)", 2)
  end
  return setmetatable({deadline = deadline, delay = first, max = max, now = now}, Backoff)
end

--- True once the deadline has come.
-- @tparam number now the clock's time
-- @treturn boolean
function Backoff:expired(now)
  return now >= self.deadline
end

--- When to try next after a failed try at `now`: after the current wait, never
-- past the deadline; the next wait doubles (up to `max`).
-- @tparam number now the clock's time
-- @treturn number the absolute time of the next try
function Backoff:next_at(now)
  local at = math.min(now + self.delay, self.deadline)
  self.delay = math.min(self.delay * 2, self.max)
  return at
end

--- Call `try()` until it succeeds (its first value is true), or `stop` says its
-- failure is final, or the deadline has come; wait through `sleep` between tries.
-- @tparam function try returns a value (success) or `nil, message, code`
-- @tparam table o `timeout` (seconds, required; `math.huge`: no deadline), `first`,
--   `max` (see `backoff`), `stop(...)` (given a failed try's results: true when
--   trying again is pointless), `tried` (the results of a try the caller made
--   already, packed by `table.pack`: wait before the first try, and return these
--   when the deadline has come meanwhile), `now`, `sleep` (default
--   `hwfota.core.now` and `hwfota.loop.sleep`: a task yields to the others while
--   it waits), `watch` (targets for `hwfota.pathwatch.subscribe`, e.g. from
--   `pathwatch.port_targets`: a wait of the default sleep ends early when one of
--   them may be back; without inotify the waits are the back-off's)
-- @return what the last try returned
function M.retry(try, o)
  if type(try) ~= "function" then
    error(("bad argument #1 to 'retry' (function expected, got %s)"):format(type(try)), 2)
  end
  if type(o) ~= "table" then
    error(("bad argument #2 to 'retry' (table expected, got %s)"):format(type(o)), 2)
  end
  local b = M.backoff(o.timeout, o)
  local sleep = o.sleep or loop.sleep
  local sub
  if o.watch ~= nil and o.sleep == nil then
    -- the wait: a timer or the watch, whichever comes first
    local woke, cond = false, nil
    sub = pathwatch.subscribe(o.watch, function()
      woke = true
      if cond then loop.signal(cond) end
    end)
    if sub then
      sleep = function(seconds)
        if woke then woke = false; return end
        cond = loop.condition()
        local c = cond
        local t = loop.timer(seconds, function() loop.signal(c) end)
        loop.wait(c)
        t:cancel()
        cond, woke = nil, false
      end
    end
  end
  local r = o.tried
  while true do
    if r then
      local now = b.now()
      if b:expired(now) then break end
      sleep(math.max(0, b:next_at(now) - now))
    end
    r = table.pack(try())
    if r[1] or (o.stop and o.stop(table.unpack(r, 1, r.n))) then break end
  end
  if sub then sub:cancel() end
  return table.unpack(r, 1, r.n)
end

return M
