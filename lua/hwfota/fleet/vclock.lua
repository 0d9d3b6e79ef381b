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

  local function less(a, b)
    if a.at ~= b.at then return a.at < b.at end
    return a.seq < b.seq
  end
  local function push(t)
    n = n + 1
    heap[n] = t
    local i = n
    while i > 1 do
      local p = i // 2
      if less(heap[i], heap[p]) then heap[i], heap[p] = heap[p], heap[i]; i = p
      else break end
    end
  end
  local function pop()
    local top = heap[1]
    heap[1] = heap[n]
    heap[n] = nil
    n = n - 1
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and less(heap[l], heap[m]) then m = l end
      if r <= n and less(heap[r], heap[m]) then m = r end
      if m == i then break end
      heap[i], heap[m] = heap[m], heap[i]
      i = m
    end
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
