--- hwfota.identity: find a module again by its USB identity.
--
-- After the reset that applies an update, a USB module re-enumerates and its AT
-- port may come back under another ttyUSB number. A port is identified by the
-- USB vendor and product IDs, the USB serial string and the interface number
-- (a Huawei module exposes several ttys with the same IDs and serial; the
-- interface tells the AT port from the modem or diagnostics ports). The
-- identity is read from sysfs and `hwfota.list_ports()` (libserialport).
-- The caller confirms the module with its IMEI (`AT+CGSN`) afterwards.
--
-- @module hwfota.identity

local core = require "hwfota.core"

local M = {}

local SYSFS = "/sys/class/tty/"

local function read_line(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("l")
  f:close()
  return s and s:match("^%s*(.-)%s*$")
end

-- The USB interface number of a tty (usb-serial: device/../; cdc-acm: device/).
local function interface_of(name)
  local dev = SYSFS .. name .. "/device"
  local n = read_line(dev .. "/../bInterfaceNumber") or read_line(dev .. "/bInterfaceNumber")
  return n and tonumber(n, 16)
end

local function tty_name(path)
  local real = core.realpath(path) or path
  return real:match("([^/]+)$"), real
end

--- The USB identity of the port at `path`.
-- @tparam string path e.g. "/dev/ttyUSB2" or a /dev/serial/by-id link
-- @treturn table `{vid =, pid =, serial =, interface =, path =}`
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
      return {vid = p.vid, pid = p.pid, serial = p.serial, interface = interface_of(name),
              path = p.path}
    end
  end
  return nil, path .. " is not among the serial ports of this machine", "ENOENT"
end

--- Find the port that has identity `id` now.
-- @tparam table id from `of`
-- @treturn string|nil the path, or nil when no port matches (yet)
-- @treturn[2] string why not, when several match (ambiguous)
function M.find(id)
  if type(id) ~= "table" then
    error(("bad argument #1 to 'find' (table expected, got %s)"):format(type(id)), 2)
  end
  local ports = core.list_ports()
  local found = {}
  for _, p in ipairs(ports or {}) do
    if p.vid == id.vid and p.pid == id.pid and p.serial == id.serial then
      local name = p.path:match("([^/]+)$")
      if id.interface == nil or interface_of(name) == id.interface then
        found[#found + 1] = p.path
      end
    end
  end
  if #found == 1 then return found[1] end
  if #found > 1 then
    return nil, ("%d ports match %04x:%04x serial %s: %s"):format(#found, id.vid, id.pid,
                tostring(id.serial), table.concat(found, ", "))
  end
  return nil
end

return M
