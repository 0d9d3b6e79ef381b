--- A virtual clock for discrete-event runs (the fleet simulation and specs): the clock
-- interface of the fleet code (`now()`, `timer(seconds, fn)`), with time that moves only
-- when `run`/`advance` say so. Timers fire in deadline order; timers with the same deadline
-- fire in the order they were set. A timer set from inside a callback fires in a later
-- step, never inside the one that set it.
-- @module hwfota.fleet.vclock
-- @usage
-- local clock = require("hwfota.fleet.vclock").new()
-- clock.timer(5, function() print(clock.now()) end)
-- clock.run()   -- prints 5
local M = {}

local Timer = {}
Timer.__index = Timer

--- Cancel a timer (idempotent, safe from its own callback).
function Timer:cancel() self.dead = true end

--- Is the timer still to fire?
-- @treturn boolean
function Timer:active() return not self.dead end

--- A new virtual clock.
-- @tparam[opt=0] number start the time `now()` returns at first
-- @treturn table clock with the functions `now()`, `timer(seconds, fn) -> handle`
--   (`handle:cancel()`), `run([until_time], [max_steps]) -> steps`,
--   `advance(seconds) -> steps`, `pending() -> count`
function M.new(start)
  if start ~= nil and type(start) ~= "number" then
    error(("hwfota.fleet.vclock.new: start must be a number, got %s"):format(type(start)), 2)
  end
  local now = start or 0
  local heap, n, seq = {}, 0, 0
  local live = 0

  -- A binary heap ordered by (at, seq); the comparisons are inlined (the simulation
  -- pushes and pops some hundred thousand timers).
  local function push(t)
    n = n + 1
    local i, at, sq = n, t.at, t.seq
    while i > 1 do
      local p = i // 2
      local hp = heap[p]
      local pat = hp.at
      if pat < at or (pat == at and hp.seq < sq) then break end
      heap[i] = hp
      i = p
    end
    heap[i] = t
  end
  local function pop()
    local top = heap[1]
    local last = heap[n]
    heap[n] = nil
    n = n - 1
    if n == 0 then return top end
    local at, sq = last.at, last.seq
    local i = 1
    while true do
      local l = 2 * i
      if l > n then break end
      local child, cat, csq = heap[l], nil, nil
      cat, csq = child.at, child.seq
      local r = l + 1
      if r <= n then
        local rc = heap[r]
        local rat = rc.at
        if rat < cat or (rat == cat and rc.seq < csq) then
          child, cat, csq, l = rc, rat, rc.seq, r
        end
      end
      if at < cat or (at == cat and sq < csq) then break end
      heap[i] = child
      i = l
    end
    heap[i] = last
    return top
  end

  local c = {}
  function c.now() return now end
  function c.timer(seconds, fn)
    if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
      error(("vclock.timer: seconds must be a number >= 0, got %s"):format(tostring(seconds)), 2)
    end
    if type(fn) ~= "function" then
      error(("vclock.timer: callback must be a function, got %s"):format(type(fn)), 2)
    end
    seq = seq + 1
    local t = setmetatable({at = now + seconds, seq = seq, fn = fn}, Timer)
    push(t)
    return t
  end
  --- Run timers in order until none is left, the next is after `until_time`, or
  -- `max_steps` callbacks ran. With `until_time`, `now()` ends at `until_time`.
  function c.run(until_time, max_steps)
    local steps = 0
    while n > 0 do
      local t = heap[1]
      if until_time and t.at > until_time then break end
      if max_steps and steps >= max_steps then return steps end
      pop()
      if not t.dead then
        t.dead = true
        if t.at > now then now = t.at end
        steps = steps + 1
        t.fn()
      end
    end
    if until_time and until_time > now then now = until_time end
    return steps
  end
  function c.advance(seconds) return c.run(now + seconds) end
  function c.size() return n end
  function c.pending()
    live = 0
    for i = 1, n do if not heap[i].dead then live = live + 1 end end
    return live
  end
  return c
end

return M
