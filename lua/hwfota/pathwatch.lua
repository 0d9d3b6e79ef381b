--- hwfota.pathwatch: wake a waiter as soon as a port's path may be back.
--
-- After the module's reset its port comes back as a new device node and a new
-- `/dev/serial/by-id` link. A waiter that only tries on a back-off finds it up
-- to a whole wait late (about 1.1 s after the reset with 0.1 s doubling). Here
-- the directories that hold the names that matter are watched (the C path
-- watcher, `hwfota.core.path_watch`: inotify, one fd for the whole process on the
-- poll loop through `hwfota.watch`), and a subscriber's callback runs when one
-- of its names is created, renamed in or changes attributes, when events were
-- lost (queue overflow), or when a watched directory went away: "try now".
--
-- It only ever makes a try earlier: the waiter keeps its own periodic tries (a
-- missed event, a name that appears somewhere unexpected). A directory that does
-- not exist yet (`/dev/serial/by-id` disappears with the last serial device) is
-- waited for from its nearest existing parent. Without inotify, or with the
-- environment variable `HWFOTA_NO_INOTIFY` set (non-empty, not "0"), `subscribe`
-- fails `ENOTSUP` and the waiter relies on its back-off alone.
--
-- @module hwfota.pathwatch

local core = require "hwfota.core"
local loop = require "hwfota.loop"

local M = {}

-- The process's one watcher while any subscription is active:
-- {pw =, watcher =, refs = {wd -> count}, subs = {sub -> true}}
local shared

--- Split a path into its directory and last name ("/dev", "ttyUSB2").
-- @tparam string path
-- @treturn string the directory ("." for a bare name)
-- @treturn string the name
function M.split(path)
  path = path:gsub("(.)/+$", "%1")
  local dir, name = path:match("^(.*)/([^/]+)$")
  if not dir then return ".", path end
  if dir == "" then dir = "/" end
  return dir, name
end

local function disabled()
  local v = os.getenv("HWFOTA_NO_INOTIFY")
  return v ~= nil and v ~= "" and v ~= "0"
end

local function release(sub)
  for _, a in ipairs(sub.armed) do
    local n = (shared.refs[a.wd] or 1) - 1
    if n <= 0 then
      shared.refs[a.wd] = nil
      shared.pw:remove(a.wd)   -- already over when its directory went away: fine
    else
      shared.refs[a.wd] = n
    end
  end
  sub.armed = {}
end

-- Watch target {dir =, name =} (name nil: any name), or, while dir does not exist,
-- its nearest existing parent for the next name on the way down.
local function arm_one(sub, t)
  local dir, name, final = t.dir, t.name, true
  for _ = 1, 64 do
    local wd, _, code = shared.pw:add(dir)
    if wd then
      shared.refs[wd] = (shared.refs[wd] or 0) + 1
      sub.armed[#sub.armed + 1] = {wd = wd, name = name, final = final}
      return true
    end
    if code ~= "ENOENT" or dir == "/" or dir == "." then return false end
    dir, name = M.split(dir)
    final = false
  end
  return false
end

local function arm(sub)
  release(sub)
  local n = 0
  for _, t in ipairs(sub.targets) do
    if arm_one(sub, t) then n = n + 1 end
  end
  return n
end

local function close_shared()
  if not shared then return end
  shared.watcher:cancel()
  shared.pw:close()
  shared = nil
end

-- Call every affected subscriber (re-armed first when a directory on the way
-- down appeared or a watched one went away). A callback that raises is the
-- loop's business (hwfota.watch reports it).
local function dispatch(events)
  local hit = {}
  for _, ev in ipairs(events) do
    for sub in pairs(shared.subs) do
      if ev.what == "overflow" then
        hit[sub] = "rearm"
      else
        for _, a in ipairs(sub.armed) do
          if a.wd == ev.wd then
            if ev.what == "dir_gone" then
              hit[sub] = "rearm"
            elseif ev.what == "appeared" and (a.name == nil or a.name == ev.name) then
              if not a.final then hit[sub] = "rearm" else hit[sub] = hit[sub] or "try" end
            end
          end
        end
      end
    end
  end
  for sub, how in pairs(hit) do
    if shared and shared.subs[sub] then
      if how == "rearm" then arm(sub) end
      sub.callback(sub)
    end
  end
end

local function on_ready()
  local events, msg = shared.pw:read()
  if not events then
    -- the watcher broke: every subscriber falls back to its own tries
    local subs = shared.subs
    close_shared()
    for sub in pairs(subs) do
      sub.failed = msg
      sub.callback(sub)
    end
    return
  end
  dispatch(events)
end

local Sub = {}
Sub.__index = Sub

--- Stop this subscription (idempotent); the last one closes the watcher.
-- @treturn boolean whether it was active
function Sub:cancel()
  if not shared or not shared.subs[self] then return false end
  release(self)
  shared.subs[self] = nil
  if next(shared.subs) == nil then close_shared() end
  return true
end

--- Is the subscription still watching?
-- @treturn boolean
function Sub:active()
  return shared ~= nil and shared.subs[self] == true
end

--- What the subscription watches, for a trace: "dir/name, dir/*".
-- @treturn string
function Sub:describe()
  local parts = {}
  for _, t in ipairs(self.targets) do
    parts[#parts + 1] = (t.dir == "/" and "" or t.dir) .. "/" .. (t.name or "*")
  end
  return table.concat(parts, ", ")
end

local function check_targets(targets)
  if type(targets) ~= "table" or #targets == 0 then
    error("bad argument #1 to 'subscribe' (non-empty array of {dir =, name =} expected)", 3)
  end
  for i, t in ipairs(targets) do
    if type(t) ~= "table" or type(t.dir) ~= "string" or t.dir == ""
       or (t.name ~= nil and (type(t.name) ~= "string" or t.name == "" or t.name:find("/"))) then
      error(("bad argument #1 to 'subscribe' (target %d: {dir = string, name = string|nil} expected)")
        :format(i), 3)
    end
  end
end

--- Call `callback(sub)` on the loop whenever one of the targets may have appeared.
-- @tparam table targets array of `{dir = "/dev", name = "ttyUSB2"}`; a nil `name`
--   stands for any name in `dir` (a port found again by USB identity may come
--   back under another name)
-- @tparam function callback called as `callback(sub)` from the loop (not in a
--   task: it must not wait); `sub.failed` is set when the watcher broke (the
--   subscription is over then)
-- @treturn table the subscription (`cancel`, `active`, `describe`)
-- @return or `nil, message, code` (`ENOTSUP`: no inotify, or `HWFOTA_NO_INOTIFY`;
--   `ENOENT`: no target's directory nor any parent could be watched; `ENOSPC` ...)
function M.subscribe(targets, callback)
  check_targets(targets)
  if type(callback) ~= "function" then
    error(("bad argument #2 to 'subscribe' (function expected, got %s)"):format(type(callback)), 2)
  end
  if disabled() then
    return nil, "the path watch is turned off (HWFOTA_NO_INOTIFY)", "ENOTSUP"
  end
  if not shared then
    local pw, msg, code = core.path_watch()
    if not pw then return nil, msg, code end
    local w, wmsg, wcode = loop.watch(pw, "r", on_ready, {keep_alive = false})
    if not w then
      pw:close()
      return nil, wmsg, wcode
    end
    shared = {pw = pw, watcher = w, refs = {}, subs = {}}
  end
  local sub = setmetatable({targets = targets, callback = callback, armed = {}}, Sub)
  shared.subs[sub] = true
  if arm(sub) == 0 then
    sub:cancel()
    return nil, ("cannot watch any of: %s"):format(sub:describe()), "ENOENT"
  end
  return sub
end

--- The targets that tell a serial port is back: its path's name in its directory,
-- the device its link pointed to, and for a port found again by USB identity its
-- by-id link and any new name where its device node was.
-- @tparam string path the port's path (a device node or a link to one)
-- @tparam[opt] table o `real` (what the path resolved to while the port was there),
--   `identity` (from `hwfota.identity.of`)
-- @treturn table array of `{dir =, name =}` for `subscribe`
function M.port_targets(path, o)
  if type(path) ~= "string" or path == "" then
    error(("bad argument #1 to 'port_targets' (path expected, got %s)"):format(type(path)), 2)
  end
  o = o or {}
  local out, seen = {}, {}
  local function add(dir, name)
    local k = dir .. "\0" .. (name or "")
    if not seen[k] then
      seen[k] = true
      out[#out + 1] = {dir = dir, name = name}
    end
  end
  add(M.split(path))
  if type(o.real) == "string" and o.real ~= path then add(M.split(o.real)) end
  local id = o.identity
  if type(id) == "table" then
    if type(id.by_id) == "string" then add(M.split(id.by_id)) end
    if type(id.path) == "string" then add((M.split(id.path)), nil) end
  end
  return out
end

return M
