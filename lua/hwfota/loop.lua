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
-- modules at once and nothing blocks the others. Inside a task every wait
-- yields: `hwfota.sleep`, the session's steps, and `port:command` too (it sends
-- and waits for the result on the shared loop; from a callback that C runs,
-- where a yield is impossible, it still waits in place).
--
-- Other fds and timers live on the same loop (`watch`, `timer`): every loop,
-- the shared one and the private loops of blocking calls, polls the watched
-- fds with the modules' ports in one wait and fires due timers. Their
-- callbacks run on the loop (not in a task: `spawn` a task for work that
-- waits). A callback that raises is not swallowed: its watcher or timer is
-- cancelled and the error ("hwfota.watch callback failed: ..." with the
-- traceback) is raised from the loop that ran it (`hwfota.loop()`, or the
-- blocking call that was waiting).
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
local watchers = {}     -- active watchers (watch) -> true: on every loop
local timers = {}       -- pending timers (timer) -> true: on every loop

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
  for t in pairs(timers) do
    if not deadline or t.at < deadline then deadline = t.at end
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

-- Run a watcher's or timer's callback; one that raises cancels its handle and
-- the error goes on up, out of the loop that ran it.
local function run_callback(handle, what, fn, ...)
  handle.running = true
  local ok, err = xpcall(fn, debug.traceback, ...)
  handle.running = false
  if not ok then
    handle:cancel()
    error(("hwfota.%s callback failed: %s"):format(what, tostring(err)), 0)
  end
end

local function watcher_fd(w)
  local t = w.target
  if math.type(t) == "integer" then return t end
  local get = t.getfd or t.fileno
  local fd = get(t)   -- LuaSocket answers a float (-1.0 once closed)
  fd = type(fd) == "number" and math.tointeger(fd) or nil
  return fd or -1
end

-- The fds of the active watchers not inside their own callback (a callback
-- that runs a blocking call would else be called again, nested, for the
-- same readiness, and a level-triggered fd would spin).
local function collect_fds()
  local list, fds = {}, {}
  for w in pairs(watchers) do
    if not w.running then
      local fd = watcher_fd(w)
      if fd < 0 then
        w:cancel()
        error(("hwfota.watch: the watched %s has no fd any more (closed?): cancel "
          .. "its watcher before closing it"):format(type(w.target)), 0)
      end
      list[#list + 1] = w
      -- key: the same watcher on the same fd is the same open file, so the
      -- wait set keeps its registration from one wait to the next
      fds[#fds + 1] = {fd = fd, events = w.events, key = w.seq}
    end
  end
  return list, fds
end

local function fire_watchers(list, fds)
  for i, w in ipairs(list) do
    local r = fds[i].ready
    if r and watchers[w] then   -- an earlier callback may have cancelled it
      if r:find("n", 1, true) then
        w:cancel()
        error(("hwfota.watch: fd %d is not open (closed without cancelling its "
          .. "watcher?)"):format(fds[i].fd), 0)
      end
      run_callback(w, "watch", w.callback, r, w)
    end
  end
end

local function fire_timers()
  local now, due = core.now(), {}
  for t in pairs(timers) do
    if t.at <= now then due[#due + 1] = t end
  end
  table.sort(due, function(a, b) return a.at < b.at end)
  for _, t in ipairs(due) do
    if timers[t] then   -- an earlier callback may have cancelled it
      timers[t] = nil
      run_callback(t, "timer", t.callback, t)
    end
  end
end

-- One wait over a set of sources, the watchers and the timers: poll their
-- ports and fds until the earliest deadline (at most max_wait), then call the
-- ready watchers, fire the sources whose time has come and the due timers.
local function step(set, max_wait)
  local ports, deadline = collect(set)
  local list, fds = collect_fds()
  local wait = max_wait or MAX_WAIT
  if deadline then wait = math.min(wait, math.max(0, deadline - core.now())) end
  -- about to wait: one step of the collector first, in time nobody needs, so that
  -- garbage goes before the heap grows to twice what is live (1,000 modules in one
  -- process: about 40 instead of 55 KB of RSS each)
  if wait > 0 then collectgarbage("step", 0) end
  core.poll(ports, wait, fds)
  fire_watchers(list, fds)
  fire_due(set)
  fire_timers()
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
      if next(set) == nil and next(watchers) == nil and next(timers) == nil then
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

-- Argument checks of the public functions below; the error points at their caller.
-- `v` must be of type `want` (nil too when `optional`).
local function check_type(v, want, n, fname, optional)
  if type(v) ~= want and not (optional and v == nil) then
    error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want, type(v)), 3)
  end
end

-- A wait in seconds: NaN would make a deadline no clock ever reaches (a hang), inf
-- likewise.
local function check_seconds(seconds, fname)
  if type(seconds) ~= "number" or not (seconds >= 0 and seconds < math.huge) then
    error(("bad argument #1 to '%s' (non-negative finite number expected)"):format(fname), 3)
  end
end

--- Sleep `seconds` in the loop (other tasks and ports keep running).
-- @tparam number seconds
function M.sleep(seconds)
  check_seconds(seconds, "sleep")
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

--- Does a watcher or timer keep `run` going?
-- @treturn boolean true while a watcher (other than signal watchers) is
--   active or a timer is pending
function M.alive()
  if next(timers) ~= nil then return true end
  for w in pairs(watchers) do
    if w.keep_alive then return true end
  end
  return false
end

--- Run the shared loop until every task has finished and no watcher or
-- timer is left (see `alive`).
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
    if ntasks == 0 and not M.alive() then break end
    if next(sources) == nil and next(watchers) == nil and next(timers) == nil then
      error("hwfota.loop.run: every task waits and nothing can wake them")
    end
    step(sources)
  end
  return failed
end

-- The metatable of a handle that is active while it is a key of `set` (watchers,
-- timers): `cancel()` takes it out (idempotent; safe from inside its own callback)
-- and says whether it was there, `active()` says whether it is.
-- `on_cancel`, when given, is called once per handle that was active.
local function registry_handle_mt(set, on_cancel)
  local methods = {}
  function methods.cancel(self)
    local was = set[self] ~= nil
    set[self] = nil
    if was and on_cancel then on_cancel() end
    return was
  end
  function methods.active(self)
    return set[self] ~= nil
  end
  return {__index = methods}
end

--- Stop watching (idempotent; safe from inside the callback).
-- @function Watcher:cancel
-- @treturn boolean whether it was active

--- Is the watcher still active?
-- @function Watcher:active
-- @treturn boolean
local nwatchers = 0      -- active watchers
local watcher_mt = registry_handle_mt(watchers, function() nwatchers = nwatchers - 1 end)

local EVENTS = {r = true, w = true, rw = true}
-- fds one core.poll takes besides the ports (they share its wait set: epoll
-- on Linux, where a wait costs what is ready, not what is watched)
local MAX_WATCHERS = 100000
local watch_seq = 0      -- watchers made so far: each one's key in the wait set

--- Watch an fd on the loop: `callback(ready, watcher)` whenever it is ready.
-- Level-triggered, like poll: the callback runs on every loop step while the
-- fd stays ready, so it reads (or accepts) what is there, or cancels.
-- @param target an fd (integer), or an object with a `getfd()` (LuaSocket) or
--   `fileno()` method, asked again on every step
-- @tparam string events `"r"`, `"w"` or `"rw"`
-- @tparam function callback called as `callback(ready, watcher)`, `ready` being
--   `"r"`, `"w"` or `"rw"`, with `"h"` appended on a hang-up or error
-- @tparam[opt] table opts `keep_alive` (default true: `run` goes on while the
--   watcher is active)
-- @treturn Watcher
-- @return or `nil, message, "ENOSPC"` when 100,000 watchers are active
function M.watch(target, events, callback, opts)
  local tt = type(target)
  local ok = math.type(target) == "integer" and target >= 0
  if not ok and (tt == "table" or tt == "userdata") then
    local has, get = pcall(function() return target.getfd or target.fileno end)
    ok = has and get ~= nil
  end
  if not ok then
    error(("bad argument #1 to 'watch' (fd or object with getfd()/fileno() expected, "
      .. "got %s)"):format(math.type(target) == "integer" and tostring(target) or tt), 2)
  end
  if not EVENTS[events] then
    error(("bad argument #2 to 'watch' (\"r\", \"w\" or \"rw\" expected, got %s)"):format(
      type(events) == "string" and ("%q"):format(events:sub(1, 20)) or type(events)), 2)
  end
  check_type(callback, "function", 3, "watch")
  check_type(opts, "table", 4, "watch", true)
  if nwatchers >= MAX_WATCHERS then
    return nil, ("too many watchers: %d are active (cancel one first)"):format(nwatchers),
      "ENOSPC"
  end
  watch_seq = watch_seq + 1
  local w = setmetatable({target = target, events = events, callback = callback,
    keep_alive = not (opts and opts.keep_alive == false), seq = watch_seq}, watcher_mt)
  watchers[w] = true
  nwatchers = nwatchers + 1
  return w
end

--- Cancel the timer (idempotent; safe from inside its callback).
-- @function Timer:cancel
-- @treturn boolean whether it was still pending

--- Is the timer still pending?
-- @function Timer:active
-- @treturn boolean
local ltimer_mt = registry_handle_mt(timers)

--- Call `callback(timer)` once, `seconds` from now, on the loop.
-- One-shot: to repeat, start a new timer from the callback.
-- @tparam number seconds non-negative, finite
-- @tparam function callback
-- @treturn Timer
function M.timer(seconds, callback)
  check_seconds(seconds, "timer")
  check_type(callback, "function", 2, "timer")
  local t = setmetatable({at = core.now() + seconds, callback = callback}, ltimer_mt)
  timers[t] = true
  return t
end

local signal_handlers = {}   -- name -> {handle -> true}
local signal_watcher         -- the watcher of the signal pipe, while any is routed

local function on_signal_pipe()
  for _, name in ipairs(core.signal_take()) do
    local hs = {}
    for h in pairs(signal_handlers[name] or {}) do hs[#hs + 1] = h end
    table.sort(hs, function(x, y) return x.seq < y.seq end)
    for _, h in ipairs(hs) do
      if h.active_names[name] then run_callback(h, "on_signal", h.callback, name, h) end
    end
  end
end

local signal_mt = {__index = {}}

--- Stop handling the signals (idempotent): once no handler is left for a
-- signal, its disposition from before `on_signal` is back.
-- @function SignalHandler:cancel
-- @treturn boolean whether it was active
function signal_mt.__index.cancel(self)
  if not next(self.active_names) then return false end
  for name in pairs(self.active_names) do
    local set = signal_handlers[name]
    set[self] = nil
    if next(set) == nil then
      signal_handlers[name] = nil
      core.signal_unroute(name)
    end
  end
  self.active_names = {}
  if next(signal_handlers) == nil and signal_watcher then
    signal_watcher:cancel()
    signal_watcher = nil
  end
  return true
end

--- Is the handler still active?
-- @function SignalHandler:active
-- @treturn boolean
function signal_mt.__index.active(self)
  return next(self.active_names) ~= nil
end

local SIGNALS = {INT = true, TERM = true, HUP = true, USR1 = true, USR2 = true}
local signal_seq = 0

--- Signals as loop events: `callback(name, handler)` runs on the loop (between
-- two steps, where stopping is safe) after the process got one of `names`,
-- instead of the signal's default action (or the interpreter's "interrupted!"
-- error thrown into whatever code runs).
-- @param names `"INT"`, `"TERM"`, `"HUP"`, `"USR1"`, `"USR2"`, or an array of them
-- @tparam function callback
-- @tparam[opt] table opts `once` (a second signal of a kind, while this handler
--   is active, ends the process at once, its ports released: "Ctrl-C again to
--   leave at once", even while a blocking call waits)
-- @treturn table handler, with `handler:cancel()` and `handler:active()`; a
--   signal handler does not keep `run` going
function M.on_signal(names, callback, opts)
  if type(names) == "string" then names = {names} end
  if type(names) ~= "table" or #names == 0 then
    error(("bad argument #1 to 'on_signal' (signal name or array of names expected, got %s)")
      :format(type(names)), 2)
  end
  for _, n in ipairs(names) do
    if not SIGNALS[n] then
      error(("bad argument #1 to 'on_signal' (unknown signal %s: INT, TERM, HUP, USR1 or USR2)")
        :format(type(n) == "string" and ("%q"):format(n:sub(1, 20)) or type(n)), 2)
    end
  end
  check_type(callback, "function", 2, "on_signal")
  check_type(opts, "table", 3, "on_signal", true)
  local once = opts and opts.once or false
  signal_seq = signal_seq + 1
  local h = setmetatable({callback = callback, active_names = {}, seq = signal_seq}, signal_mt)
  for _, n in ipairs(names) do
    local fd, msg, code = core.signal_route(n, once)
    if not fd then
      h:cancel()
      return nil, msg, code
    end
    signal_handlers[n] = signal_handlers[n] or {}
    signal_handlers[n][h] = true
    h.active_names[n] = true
    if not signal_watcher then
      local wmsg, wcode
      signal_watcher, wmsg, wcode = M.watch(fd, "r", on_signal_pipe, {keep_alive = false})
      if not signal_watcher then
        h:cancel()
        return nil, wmsg, wcode
      end
    end
  end
  return h
end

--- One wait on `ports` (at most `seconds`) that also serves the watchers and
-- timers: what `hwfota.poll` does.
-- @tparam table ports
-- @tparam[opt=0] number seconds
-- @treturn integer events dispatched on the ports
function M.poll(ports, seconds)
  if next(watchers) == nil and next(timers) == nil then
    return core.poll(ports, seconds)
  end
  local list, fds = collect_fds()
  local wait = seconds or 0
  local first
  for t in pairs(timers) do
    if not first or t.at < first then first = t.at end
  end
  if type(wait) == "number" and first then wait = math.min(wait, math.max(0, first - core.now())) end
  local n = core.poll(ports, wait, fds)
  fire_watchers(list, fds)
  fire_timers()
  return n
end

local port_source_mt = {
  __index = {
    ports = function(self) return {self.port} end,
    deadline = function() return nil end,
    fire = function() end,
  },
}

local c_command = core.Port.command

-- The C method's own argument checks, with its messages (a wrapper would else
-- be named in them): raised at level 0 as the C core raises them.
local function check_command_args(port, cmd, opts)
  local mt = getmetatable(port)
  if type(port) ~= "userdata" or type(mt) ~= "table" or mt.__index ~= core.Port then
    error(("calling 'command' on bad self (hwfota.Port expected, got %s)"):format(
      type(port)), 0)
  end
  if type(cmd) ~= "string" then
    error(("bad argument #1 to 'command' (string expected, got %s)"):format(
      cmd == nil and "no value" or type(cmd)), 0)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'command' (table expected, got %s)"):format(type(opts)), 0)
  end
end

-- port:command inside a task: send, then wait on the shared loop (the port's
-- own deadline, the command's timeout, sizes the wait). Elsewhere the C method
-- waits in place (from a callback that C runs, a yield is impossible).
local function port_command(port, cmd, opts)
  check_command_args(port, cmd, opts)
  if M.current() and coroutine.isyieldable() then
    local cond = M.condition()
    local id, msg, code = port:send(cmd, opts, function(...) M.signal(cond, ...) end)
    if not id then return nil, msg, code end
    return M.wait(cond, {setmetatable({port = port}, port_source_mt)})
  end
  return c_command(port, cmd, opts)
end
core.Port.command = port_command

return M
