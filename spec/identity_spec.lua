-- hwfota.identity.reopen's choice of the path to reopen after a reset, against a
-- scripted port list (core.list_ports replaced for the test) and a port object that
-- records what it was asked to reopen. The end-to-end flows are in multitty_spec.lua.
local core = require "hwfota.core"
local identity = require "hwfota.identity"

local function port_at(path)
  local p = {at = path, calls = {}}
  function p:path() return self.at end
  function p:reopen(to)
    self.calls[#self.calls + 1] = to or "(old name)"
    if to then self.at = to end
    return true
  end
  return p
end

local function tty(path, role, interface, serial)
  return {path = path, vid = 0x12d1, pid = 0x1573, serial = serial, role = role,
          interface = interface, huawei = true}
end

describe("identity.reopen", function()
  local real_list
  local listing
  before_each(function()
    real_list = core.list_ports
    core.list_ports = function() return listing end
  end)
  after_each(function() core.list_ports = real_list end)

  local pcui = {vid = 0x12d1, pid = 0x1573, serial = "S1", role = "pcui", interface = 2,
                path = "/dev/ttyUSB2"}

  it("opens the tty with the same role where it is now", function()
    listing = {tty("/dev/ttyUSB4", "modem", 0, "S1"), tty("/dev/ttyUSB6", "pcui", 2, "S1")}
    local p = port_at("/dev/ttyUSB2")
    assert.equals("/dev/ttyUSB6", identity.reopen(p, pcui))
    assert.same({"/dev/ttyUSB6"}, p.calls)
  end)

  it("never opens the old name when it is another tty of the module now", function()
    listing = {tty("/dev/ttyUSB1", "modem", 1, "S1"), tty("/dev/ttyUSB2", "diag", 2, "S1")}
    local p = port_at("/dev/ttyUSB2")
    local ok, msg, code = identity.reopen(p, pcui)
    assert.is_nil(ok)
    assert.equals("ENOENT", code)
    assert.matches("/dev/ttyUSB2", msg, 1, true)
    assert.same({}, p.calls)
  end)

  it("prefers the role to the interface number (a new firmware's layout)", function()
    listing = {tty("/dev/ttyUSB1", "pcui", 1, "S1"), tty("/dev/ttyUSB2", "diag", 2, "S1")}
    local p = port_at("/dev/ttyUSB2")
    assert.equals("/dev/ttyUSB1", identity.reopen(p, pcui))
  end)

  it("among identical modules takes the old name only when it is one of the matches", function()
    local noserial = {vid = 0x12d1, pid = 0x1573, role = "pcui", path = "/dev/ttyUSB2"}
    listing = {tty("/dev/ttyUSB2", "pcui", 2), tty("/dev/ttyUSB6", "pcui", 2)}
    local p = port_at("/dev/ttyUSB2")
    assert.equals("/dev/ttyUSB2", identity.reopen(p, noserial))
    assert.same({"/dev/ttyUSB2"}, p.calls)
    listing = {tty("/dev/ttyUSB6", "pcui", 2), tty("/dev/ttyUSB10", "pcui", 2)}
    p = port_at("/dev/ttyUSB2")
    local ok, msg, code = identity.reopen(p, noserial)
    assert.is_nil(ok)
    assert.equals("EAMBIGUOUS", code)
    assert.matches("/dev/ttyUSB6, /dev/ttyUSB10", msg, 1, true)
    assert.same({}, p.calls)
  end)

  it("without a role, interface or by-id name tries the old name first", function()
    listing = {tty("/dev/ttyUSB2"), tty("/dev/ttyUSB3")}
    local p = port_at("/dev/ttyUSB2")
    assert.equals("/dev/ttyUSB2", identity.reopen(p, {vid = 0x12d1, pid = 0x1573}))
    assert.same({"(old name)"}, p.calls)
    assert.equals("/dev/ttyUSB2", identity.reopen(port_at("/dev/ttyUSB2"), nil))
    assert.has_error(function() identity.reopen(p, "pcui") end)
  end)
end)
