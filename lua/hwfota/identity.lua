--- hwfota.identity: find a module again by its USB identity.
--
-- After the reset that applies an update, a USB module re-enumerates and its AT
-- port may come back under another ttyUSB number. A port is identified by the
-- USB vendor and product IDs, the USB serial string and the interface number
-- (a Huawei module exposes several ttys with the same IDs and serial; the
-- role its interface's class triple tells, or else the interface number, tells
-- the AT port from the modem, diagnostics or GPS ports). The identity is read
-- from `hwfota.list_ports()` (libserialport and sysfs).
-- The caller confirms the module with its IMEI (`AT+CGSN`) afterwards.
--
-- @module hwfota.identity

local core = require "hwfota.core"

local M = {}

local function tty_name(path)
  local real = core.realpath(path) or path
  return real:match("([^/]+)$"), real
end

--- The USB identity of the port at `path`.
-- @tparam string path e.g. "/dev/ttyUSB2" or a /dev/serial/by-id link
-- @treturn table `{vid =, pid =, serial =, interface =, role =, by_id =, path =}`:
--   `interface` the USB interface number, `role` what the interface's class triple
--   says ("pcui", "modem", "diag", "gps"; see `hwfota.list_ports`), `by_id` the
--   /dev/serial/by-id name; each nil when unknown
-- @return or `nil, message, code` when the port is not a USB port libserialport knows
function M.of(path)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'of' (string expected, got %s)"):format(type(path)), 2)
  end
  local name, real = tty_name(path)
  local ports, msg, code = core.list_ports()
  if not ports then return nil, msg, code end
  for _, p in ipairs(ports) do
    if p.path == real or p.path == "/dev/" .. name then
      if not (p.vid and p.pid) then
        return nil, path .. " is not a USB port: it has no USB identity", "ENOTUSB"
      end
      return {vid = p.vid, pid = p.pid, serial = p.serial, interface = p.interface,
              role = p.role, by_id = p.by_id, path = p.path}
    end
  end
  return nil, path .. " is not among the serial ports of this machine", "ENOENT"
end

--- True when `id` tells one tty of its module from the others (it has a role, an
-- interface number or a by-id name): then `find` alone says where the port is.
-- @tparam table id from `of`
-- @treturn boolean
function M.distinct(id)
  return type(id) == "table" and (id.role ~= nil or id.interface ~= nil or id.by_id ~= nil)
end

-- The same tty of the module: the role first (the class triple survives a new
-- interface layout), else the interface number, else the by-id name.
local function same_tty(p, id)
  if id.role then return p.role == id.role end
  if id.interface then return p.interface == id.interface end
  if id.by_id then return p.by_id == id.by_id end
  return true
end

-- Paths of the ports with identity id now.
local function matches(id)
  local found = {}
  for _, p in ipairs(core.list_ports() or {}) do
    if p.vid == id.vid and p.pid == id.pid and p.serial == id.serial and same_tty(p, id) then
      found[#found + 1] = p.path
    end
  end
  return found
end

local function ambiguous(id, found)
  return ("%d ports match %04x:%04x serial %s: %s"):format(#found, id.vid, id.pid,
         tostring(id.serial), table.concat(found, ", "))
end

--- Find the port that has identity `id` now.
-- @tparam table id from `of`
-- @treturn string|nil the path, or nil when no port matches (yet)
-- @treturn[2] string why not, when several match (ambiguous)
function M.find(id)
  if type(id) ~= "table" then
    error(("bad argument #1 to 'find' (table expected, got %s)"):format(type(id)), 2)
  end
  local found = matches(id)
  if #found == 1 then return found[1] end
  if #found > 1 then return nil, ambiguous(id, found) end
  return nil
end

--- Reopen a lost `port` where the module's tty with identity `id` is now.
-- After a reset the module's ttys may come back under other numbers, and its old
-- name may then be another of its ttys: with an identity that tells its ttys apart
-- (`distinct`) only the port found by identity is opened, never the old name
-- blindly (when several ports match, as identical modules without a USB serial
-- do, the old name only if it is one of them); without one, the old name first,
-- then a single match by identity.
-- The caller still confirms the module (IMEI) before sending anything that
-- changes its state.
-- @param port a lost port (`hwfota.open`)
-- @tparam[opt] table id from `of`
-- @treturn string|nil the path opened
-- @return or `nil, message, code` (ENOENT: not back yet; EAMBIGUOUS: several match)
function M.reopen(port, id)
  if id ~= nil and type(id) ~= "table" then
    error(("bad argument #2 to 'reopen' (table expected, got %s)"):format(type(id)), 2)
  end
  if M.distinct(id) then
    local found, path = matches(id), nil
    if #found == 1 then
      path = found[1]
    else
      -- several (identical modules without a USB serial): the old name if it is one
      -- of them (the IMEI check tells whether it is still our module)
      for _, f in ipairs(found) do if f == port:path() then path = f end end
    end
    if not path then
      if #found > 1 then return nil, ambiguous(id, found), "EAMBIGUOUS" end
      return nil, ("no port with the identity of %s yet"):format(tostring(id.path)), "ENOENT"
    end
    local ok, msg, code = port:reopen(path)
    if not ok then return nil, msg, code end
    return path
  end
  local ok, msg, code = port:reopen()
  if ok then return port:path() end
  if code == "ECLOSED" or not id then return nil, msg, code end
  local path = M.find(id)
  if path and path ~= port:path() and port:reopen(path) then return path end
  return nil, msg, code
end

return M
