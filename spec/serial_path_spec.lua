-- libserialport's real path, without hardware: a child lua5.4 runs under the
-- fakedev preload (spec/support/fakedev_preload.c), which presents /dev/ttyUSB2
-- as USB 12d1:1573 backed by a scripted pty; enumeration, open, configuration
-- and I/O all go through libserialport.
local peer = require "support.peer"

local top = os.getenv("HWFOTA_TOP") or "."

-- Run `code` in a child lua5.4 under the preload; returns its stdout and success.
local function run_child(pty, code)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(code)
  f:close()
  local cmd = ("%s/spec/support/fakedev-run.sh -p %q -s SIM0001 lua5.4 %q 2>&1")
              :format(top, pty, name)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  os.remove(name)
  return out, ok
end

describe("libserialport path (fake USB device)", function()
  it("lists the simulated Huawei port and talks to it as kind 'serial'", function()
    local p = peer.start[[
echo on
expect AT+GMR
send 12.815.01.03.00
send OK
]]
    local out, ok = run_child(p.path, [[
local hwfota = require "hwfota"
local found
for _, d in ipairs(assert(hwfota.list_ports())) do
  if d.path == "/dev/ttyUSB2" then found = d end
end
assert(found, "ttyUSB2 not listed")
print("vidpid", ("%04x:%04x"):format(found.vid, found.pid), found.huawei, found.serial)
local port = assert(hwfota.open("/dev/ttyUSB2", {sync = false}))
print("kind", port:kind())
print("gmr", assert(port:command("AT+GMR")).lines[1])
port:close()
]])
    assert.is_true(ok, out)
    assert.matches("vidpid\t12d1:1573\ttrue\tSIM0001", out, 1, true)
    assert.matches("kind\tserial", out, 1, true)
    assert.matches("gmr\t12.815.01.03.00", out, 1, true)
    local fine, err = p:finish()
    assert.is_true(fine, err)
  end)

  it("reports EPORTLOST when the USB device vanishes, and ENOENT while it stays away", function()
    local p = peer.start[[
expect AT
hangup
]]
    local out, ok = run_child(p.path, [[
local hwfota = require "hwfota"
local port = assert(hwfota.open("/dev/ttyUSB2", {sync = false}))
print("kind", port:kind())
local res, msg, code = port:command("AT", {timeout = 5})
print("lost", code)
print("reopen", select(3, port:reopen()))
]])
    assert.is_true(ok, out)
    assert.matches("kind\tserial", out, 1, true)
    assert.matches("lost\tEPORTLOST", out, 1, true)
    -- the pty is gone: the preload's /dev/ttyUSB2 points nowhere, like an unplugged module
    assert.matches("reopen\tENOENT", out, 1, true)
    p:finish()
  end)
end)

describe("USB identity (hwfota.identity)", function()
  it("reads VID:PID, serial and interface, and finds the port by them", function()
    local p = peer.start("sleep 0.5\n")
    local out, ok = run_child(p.path, [[
local identity = require "hwfota.identity"
local id = assert(identity.of("/dev/ttyUSB2"))
print("id", ("%04x:%04x"):format(id.vid, id.pid), id.serial, id.interface, id.role)
print("find", identity.find(id))
id.role = "modem"
print("other-role", identity.find(id))
id.role, id.interface = nil, 3    -- no role known: the interface number decides
print("other-interface", identity.find(id))
id.interface, id.serial = 2, "OTHER"
print("other-serial", identity.find(id))
print("not-a-port", select(3, identity.of("/dev/ttyUSB9")))
]])
    assert.is_true(ok, out)
    assert.matches("id\t12d1:1573\tSIM0001\t2\tpcui", out, 1, true)
    assert.matches("find\t/dev/ttyUSB2", out, 1, true)
    assert.matches("other-role\tnil", out, 1, true)
    assert.matches("other-interface\tnil", out, 1, true)
    assert.matches("other-serial\tnil", out, 1, true)
    assert.matches("not-a-port\tENOENT", out, 1, true)
    p:finish()
  end)
end)
