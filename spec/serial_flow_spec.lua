-- A whole FOTA flow through libserialport's real path: the simulator's pty is
-- presented as USB 12d1:1573 /dev/ttyUSB2 by the fakedev preload (which follows
-- the simulator's symlink at every open, so the module's reset looks like the
-- USB device vanishing and coming back).
local sim = require "support.sim"

local top = os.getenv("HWFOTA_TOP") or "."

describe("libserialport path against the simulator", function()
  it("runs the whole flow on /dev/ttyUSB2 (kind 'serial'), across the module's reset", function()
    local s = sim.start{"--time-scale", "0.05"}
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write[[
local hwfota = require "hwfota"
local port = assert(hwfota.open("/dev/ttyUSB2"))
print("kind", port:kind())
local report = hwfota.run(port, {on_downloaded = function() return "upgrade" end}, {
  apn = "internet", mode = {auto_upgrade = false, resume = true},
  skip_model_check = true, reboot_timeout = 20})
print("status", report.status, report.code, report.message)
print("to", report.to)
print("kind-after", port:kind())
]]
    f:close()
    local p = assert(io.popen(("%s/spec/support/fakedev-run.sh -p %s lua5.4 %s 2>&1")
                              :format(top, s.path, script)))
    local out = p:read("a")
    local ok = p:close()
    os.remove(script)
    local fwup = s:count("AT^FWUP")
    local resets = #s:select(function(e) return e.ev == "reset" end)
    s:stop()
    assert.is_true(ok, out)
    assert.matches("kind\tserial", out, 1, true)
    assert.matches("status\tupgraded", out, 1, true)
    assert.matches("to\t" .. sim.TO, out, 1, true)
    assert.matches("kind-after\tserial", out, 1, true)
    assert.equals(1, fwup)
    assert.equals(1, resets)
  end)
end)
