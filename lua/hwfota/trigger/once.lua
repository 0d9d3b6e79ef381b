--- hwfota.trigger.once: run one flow at a time on the loop, refuse while busy.
--
-- What every trigger (socket command, SMS, MQTT message ...) needs: start the
-- FOTA flow as a task on the shared loop (`hwfota.spawn`), and answer "busy"
-- instead of starting a second one on the same module while it runs.
--
-- @module hwfota.trigger.once
-- @usage
-- local once = require "hwfota.trigger.once"
-- local runner = once.new(function(ok, report) print(ok and report.status) end)
-- runner:start(hwfota.run, "/dev/ttyUSB2", policy)   -- true | nil, msg, "EBUSY"

local loop = require "hwfota.loop"

local M = {}

local Runner = {}
Runner.__index = Runner

--- A runner.
-- @tparam[opt] function on_done called as `on_done(true, results...)` or
--   `on_done(false, error)` when a run ends (in the run's task)
-- @treturn Runner
function M.new(on_done)
  if on_done ~= nil and type(on_done) ~= "function" then
    error(("bad argument #1 to 'new' (function expected, got %s)"):format(type(on_done)), 2)
  end
  return setmetatable({running = false, runs = 0, on_done = on_done}, Runner)
end

--- Start `fn(...)` as a task on the shared loop, unless a run is under way.
-- A run that raises fails its task (listed by `hwfota.loop()`) after `on_done`
-- saw the error.
-- @tparam function fn
-- @param ... its arguments
-- @return true, or `nil, message, "EBUSY"` while a run is under way
function Runner:start(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'start' (function expected, got %s)"):format(type(fn)), 2)
  end
  if self.running then return nil, "a flow is already running", "EBUSY" end
  self.running = true
  self.runs = self.runs + 1
  local args = table.pack(...)
  loop.spawn(function()
    local res = table.pack(pcall(fn, table.unpack(args, 1, args.n)))
    self.running = false
    if self.on_done then self.on_done(table.unpack(res, 1, res.n)) end
    if not res[1] then error(res[2], 0) end
  end)
  return true
end

--- Is a run under way (from `start` until its task ends)?
-- @treturn boolean
function Runner:busy()
  return self.running
end

return M
