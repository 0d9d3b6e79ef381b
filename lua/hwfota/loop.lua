--- hwfota.loop: one poll loop for many modules, and tasks (coroutines) on it.
--
-- Everything that waits in hwfota waits here, in `poll()`: a *source* is a
-- table with three methods, `source:ports()` (ports to watch), `source:deadline()`
-- (next absolute time it needs, or nil) and `source:fire(now)` (called when that
-- time has come). A session driving a module is a source.
--
-- Outside a task, `wait(cond, sources)` runs a private loop over the given
-- sources until `cond` is signalled: a script that drives one module looks
-- blocking. Inside a task (`spawn`), `wait` yields and the shared loop (`run`)
-- drives every task's sources together, so one process can update many
-- modules at once and nothing blocks the others.
--
-- @module hwfota.loop
-- @usage
-- local hwfota = require "hwfota"
-- hwfota.spawn(function() print(hwfota.run("/tmp/hwfota-sim/ttyUSB2", policy).status) end)
-- hwfota.spawn(function() print(hwfota.run("/tmp/hwfota-sim/ttyUSB3", policy).status) end)
-- hwfota.loop()

local core = require "hwfota.core"

local M = {}

local sources = {}      -- shared sources (registered by tasks) -> true
local tasks = {}        -- coroutine -> task record
local ntasks = 0
local ready = {}        -- tasks to resume, in order: {task, values...}

local MAX_WAIT = 3600

--- A condition: something a task or a script can wait for.
-- @treturn table `{done = false}`; pass it to `signal` and `wait`
function M.condition()
  return {done = false, waiters = {}}
end

--- Signal a condition, with values handed to whoever waits.
-- Waiting tasks are resumed by the loop, not from inside this call.
-- @tparam table cond from `condition`
-- @param ... values returned by `wait`
function M.signal(cond, ...)
  if cond.done then return end
  cond.done = true
  cond.values = table.pack(...)
  for _, t in ipairs(cond.waiters) do ready[#ready + 1] = t end
  cond.waiters = {}
end

--- The running task, or nil outside tasks.
-- @treturn table|nil
function M.current()
  local co, main = coroutine.running()
  if main then return nil end
  return tasks[co]
end

local function collect(set)
  local ports, seen, deadline = {}, {}, nil
  for s in pairs(set) do
    for _, p in ipairs(s:ports()) do
      if not seen[p] and not p:is_lost() then
        seen[p] = true
        ports[#ports + 1] = p
      end
    end
    local d = s:deadline()
    if d and (not deadline or d < deadline) then deadline = d end
  end
  return ports, deadline
end

local function fire_due(set)
  local now = core.now()
  for s in pairs(set) do
    local d = s:deadline()
    if d and d <= now then s:fire(now) end
  end
end

-- One wait over a set of sources: poll their ports until the earliest
-- deadline (at most max_wait), then fire the sources whose time has come.
local function step(set, max_wait)
  local ports, deadline = collect(set)
  local wait = max_wait or MAX_WAIT
  if deadline then wait = math.min(wait, math.max(0, deadline - core.now())) end
  core.poll(ports, wait)
  fire_due(set)
end

local function as_set(list)
  local set = {}
  for _, s in ipairs(list or {}) do set[s] = true end
  return set
end

--- Wait until `cond` is signalled, driving `srcs` meanwhile.
-- Inside a task the sources are added to the shared loop and the task yields;
-- outside, a private loop runs over them.
-- @tparam table cond from `condition`
-- @tparam[opt] table srcs array of sources
-- @return the values given to `signal`
function M.wait(cond, srcs)
  local task = M.current()
  if task then
    for _, s in ipairs(srcs or {}) do sources[s] = true end
    if not cond.done then
      cond.waiters[#cond.waiters + 1] = task
      coroutine.yield()
    end
    for _, s in ipairs(srcs or {}) do sources[s] = nil end
  else
    local set = as_set(srcs)
    while not cond.done do
      if next(set) == nil then
        error("hwfota.loop.wait: nothing can signal this condition", 2)
      end
      step(set)
    end
  end
  return table.unpack(cond.values, 1, cond.values.n)
end

local timer_mt = {
  __index = {
    ports = function() return {} end,
    deadline = function(self) return not self.cond.done and self.at or nil end,
    fire = function(self) M.signal(self.cond) end,
  },
}

--- Sleep `seconds` in the loop (other tasks and ports keep running).
-- @tparam number seconds
function M.sleep(seconds)
  -- NaN would make a deadline no clock ever reaches (a hang), inf likewise
  if type(seconds) ~= "number" or not (seconds >= 0 and seconds < math.huge) then
    error("bad argument #1 to 'sleep' (non-negative finite number expected)", 2)
  end
  local cond = M.condition()
  local timer = setmetatable({at = core.now() + seconds, cond = cond}, timer_mt)
  return M.wait(cond, {timer})
end

--- Start a task: `fn(...)` runs as a coroutine on the shared loop.
-- @tparam function fn
-- @param ... arguments for fn
-- @treturn table task record: `{ok =, result = {...}, error =}` once finished
function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected)", 2)
  end
  local args = table.pack(...)
  local task = {}
  task.co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
  tasks[task.co] = task
  ntasks = ntasks + 1
  ready[#ready + 1] = task
  return task
end

local function resume(task)
  local res = table.pack(coroutine.resume(task.co))
  if coroutine.status(task.co) == "dead" then
    tasks[task.co] = nil
    ntasks = ntasks - 1
    task.finished = true
    task.ok = res[1]
    if res[1] then
      task.result = table.pack(table.unpack(res, 2, res.n))
    else
      task.error = debug.traceback(task.co, tostring(res[2]))
    end
  end
end

--- Run the shared loop until every task has finished.
-- @treturn table array of tasks that failed (each with `.error`)
function M.run()
  local failed = {}
  while true do
    while #ready > 0 do
      local batch = ready
      ready = {}
      for _, task in ipairs(batch) do
        if not task.finished then
          resume(task)
          if task.finished and not task.ok then failed[#failed + 1] = task end
        end
      end
    end
    if ntasks == 0 then break end
    if next(sources) == nil then
      error("hwfota.loop.run: every task waits and nothing can wake them")
    end
    step(sources)
  end
  return failed
end

return M
