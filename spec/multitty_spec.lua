-- Several ttys per module, one AT port; re-finding it after the module's reset.
-- hwfota-sim --ttys publishes a module's modem, diagnostics, PCUI and GPS ttys (with
-- their USB interface and class triple in sidecar files); the fakedev preload in
-- directory mode (HWFOTA_FAKEDEV_DIR) presents each as /dev/ttyUSBn of one USB device
-- 12d1:1573 in a fake sysfs with /dev/serial/by-id links, and follows the simulator
-- when the module comes back under other names (--reenumerate next) or with another
-- interface layout (--ttys-after). Everything runs through libserialport's real path.
local sim = require "support.sim"

local top = os.getenv("HWFOTA_TOP") or "."
local q = sim.sh_quote
local LAYOUT = {"--ttys", "modem,diag,pcui,gps", "--name", "ttyUSB0", "--time-scale", "0.05"}

local function args(extra)
  local t = {}
  for _, a in ipairs(LAYOUT) do t[#t + 1] = a end
  for _, a in ipairs(extra or {}) do t[#t + 1] = a end
  return t
end

-- Shell prefix that runs a command under the preload on the simulator's directory.
local function under(s, env)
  local e = ("HWFOTA_FAKEDEV_DIR=%s "):format(q(s.dir))
  for k, v in pairs(env or {}) do e = e .. ("%s=%s "):format(k, q(v)) end
  return e .. q(top .. "/spec/support/fakedev-run.sh") .. " "
end

-- Run a shell command; returns its output (stdout and stderr) and exit code.
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- Run Lua code in a child under the preload; the code sees `top`.
local function lua_child(s, code, env)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(("local top = %q\npackage.path = top .. '/spec/?.lua;' .. package.path\n"):format(top))
  f:write(code)
  f:close()
  local out, rc = sh(under(s, env) .. "lua5.4 " .. q(name))
  os.remove(name)
  return out, rc
end

-- The hwfota command in a child under the preload.
local function hwfota_cmd(s, cmdline, env)
  return sh(under(s, env) .. "lua5.4 " .. q(top .. "/lua/bin/hwfota") .. " " .. cmdline)
end

-- Lines the simulator's other ttys received, as "role:line".
local function aux_rx(s)
  local out = {}
  for _, e in ipairs(s:select({ev = "aux", what = "rx"})) do
    out[#out + 1] = e.role .. ":" .. e.line
  end
  return out
end

local LIST = [[
local hwfota = require "hwfota"
local core = require "hwfota.core"
for _, p in ipairs(assert(hwfota.list_ports())) do
  print(("port %s if=%s class=%s role=%s huawei=%s"):format(p.path, tostring(p.interface),
    p.usb_class and ("%02x/%02x/%02x"):format(p.usb_class, p.usb_subclass, p.usb_protocol)
    or "nil", tostring(p.role), tostring(p.huawei)))
  if p.by_id then print(("byid %s -> %s"):format(p.by_id, tostring(core.realpath(p.by_id)))) end
end
]]

describe("several ttys per module (hwfota-sim --ttys, fakedev directory mode)", function()
  it("list_ports tells each tty's interface, class triple, by-id name and role", function()
    local s = sim.start(args())
    local out, rc = lua_child(s, LIST)
    local listed, lrc = hwfota_cmd(s, "list")
    local js, jrc = sh(under(s) .. "lua5.4 " .. q(top .. "/lua/bin/hwfota") .. " list --json")
    local hidden = lua_child(s, LIST, {HWFOTA_FAKEDEV_HIDE = "class"})
    s:stop()
    assert.equals(0, rc, out)
    assert.matches("port /dev/ttyUSB0 if=0 class=ff/01/01 role=modem huawei=true", out, 1, true)
    assert.matches("port /dev/ttyUSB1 if=1 class=ff/01/03 role=diag huawei=true", out, 1, true)
    assert.matches("port /dev/ttyUSB2 if=2 class=ff/01/02 role=pcui huawei=true", out, 1, true)
    assert.matches("port /dev/ttyUSB3 if=3 class=ff/01/05 role=gps huawei=true", out, 1, true)
    for i = 0, 3 do
      assert.matches(("byid /dev/serial/by%%-id/usb%%-[^ ]+%%-if%02x%%-port0 %%-> /dev/ttyUSB%d\n")
                     :format(i, i), out)
    end
    assert.equals(0, lrc, listed)
    assert.matches("/dev/ttyUSB2%s+12d1:1573.-huawei  if02 pcui", listed)
    assert.matches("/dev/ttyUSB3%s+12d1:1573.-huawei  if03 gps", listed)
    assert.equals(0, jrc, js)
    local doc = assert(require("dkjson").decode(js), js)
    local pcui = doc.ports[3]
    assert.equals("/dev/ttyUSB2", pcui.path)
    assert.equals("pcui", pcui.role)
    assert.equals(2, pcui.interface)
    assert.equals("ff/01/02", pcui.class)
    assert.matches("^/dev/serial/by%-id/usb%-.*%-if02%-port0$", pcui.by_id)
    -- without the class triple the role is unknown; the interface number stays
    assert.matches("port /dev/ttyUSB2 if=2 class=nil role=nil huawei=true", hidden, 1, true)
  end)

  it("hwfota without --port upgrades through the PCUI, across a re-enumeration", function()
    local s = sim.start(args{"--reenumerate", "next"})
    local out, rc = hwfota_cmd(s, "upgrade --yes --skip-model-check --poll 0.2 " ..
                                  "--reboot-timeout 30 --json")
    local ups = s:select({ev = "port", what = "up"})
    local fwup, aux = s:count("AT^FWUP"), aux_rx(s)
    s:stop()
    assert.equals(0, rc, out)
    assert.matches('"status":"upgraded"', out, 1, true)
    assert.matches(sim.TO, out, 1, true)
    assert.equals(1, fwup)
    -- no line reached the modem, diagnostics or GPS tty: chosen by class triple
    assert.same({}, aux)
    -- the module came back as ttyUSB6 (its PCUI; the host still held ttyUSB2)
    assert.equals(2, #ups)
    assert.matches("/ttyUSB6$", ups[2].path)
    -- the run went on there: the new firmware verified on ttyUSB6 (status upgraded)
  end)

  it("probes with a plain AT when no role is known, never a busy port", function()
    local s = sim.start(args())
    local hide = {HWFOTA_FAKEDEV_HIDE = "class,interface,by-id"}
    -- the modem port is held (as pppd or ModemManager would): never probed. The
    -- holder keeps it until its stdin closes.
    local mark = s.dir .. "/held"
    local holder = assert(io.popen(under(s, hide) .. "lua5.4 -e " .. q(([[
local p = assert(require("hwfota").open("/dev/ttyUSB0"))
io.open(%q, "w"):close()
io.read("a")
p:close()
]]):format(mark)) .. " >/dev/null 2>&1", "w"))
    local deadline = os.time() + 10
    while not sim.read_file(mark) and os.time() < deadline do os.execute("sleep 0.05") end
    assert.is_truthy(sim.read_file(mark), "the holder took the modem port")
    local out, rc = hwfota_cmd(s, "info --json", hide)
    local probed = aux_rx(s)
    local getportmode = s:count("AT^GETPORTMODE")   -- crashes an MU609 (12d1:1573)
    holder:close()
    -- with the modem port free, both it and the PCUI answer AT: no guess
    local out2, rc2 = hwfota_cmd(s, "info --json", hide)
    s:stop()
    assert.equals(0, rc, out)
    assert.matches('"port":"/dev/ttyUSB2"', out, 1, true)
    assert.matches("answered AT", out, 1, true)
    table.sort(probed)
    assert.same({"diag:AT", "gps:AT"}, probed)   -- one plain AT each, nothing else
    assert.equals(0, getportmode)
    assert.equals(2, rc2, out2)
    assert.matches("several Huawei ports answered AT", out2, 1, true)
    assert.matches("/dev/ttyUSB0", out2, 1, true)
  end)
end)

describe("re-finding the AT port by USB identity after the module's reset", function()
  local RUN = [[
local hwfota = require "hwfota"
local sim = require "support.sim"
local path
for _, p in ipairs(assert(hwfota.list_ports())) do
  if p.role == "pcui" then path = p.path end
end
print("found", path)
local port = assert(hwfota.open(path))
local report = hwfota.run(port, {on_downloaded = function() return "upgrade" end},
  sim.opts{reboot_timeout = 30, skip_model_check = true})
print("status", report.status, report.code, report.message)
print("to", report.to)
print("path-after", port:path())
]]
  -- RUN's output: it found the PCUI at ttyUSB2, upgraded, and its port is at `after` now
  local function upgraded(out, rc, after)
    assert.equals(0, rc, out)
    assert.matches("found\t/dev/ttyUSB2", out, 1, true)
    assert.matches("status\tupgraded", out, 1, true)
    assert.matches("to\t" .. sim.TO, out, 1, true)
    assert.matches("path-after\t" .. after, out, 1, true)
  end

  for _, closed in ipairs{"keep", "drop"} do
    it("hwfota.run on the found PCUI follows it to another ttyUSB name and confirms the IMEI " ..
       "(--closed-port " .. closed .. ")", function()
      local s = sim.start(args{"--reenumerate", "next", "--closed-port", closed})
      local out, rc = lua_child(s, RUN)
      local up2 = s:index({ev = "port", what = "up", path = s.dir .. "/ttyUSB6"})
      local cgsn_after = 0
      for i, e in ipairs(s:read()) do
        if i > up2 and up2 > 0 and e.m == 0 and e.dir == "rx" and e.line == "AT+CGSN" then
          cgsn_after = cgsn_after + 1
        end
      end
      local aux = aux_rx(s)
      s:stop()
      upgraded(out, rc, "/dev/ttyUSB6")
      assert.is_true(up2 > 0, "the module came back as ttyUSB6")
      assert.is_true(cgsn_after >= 1, "the IMEI was read again on the new port")
      assert.same({}, aux)
    end)
  end

  it("never reopens the old name when it is another tty now (a new firmware's layout)", function()
    -- after the upgrade the module's AT port is interface 1 (ttyUSB1) and ttyUSB2
    -- is its diagnostics port: reopening the old name would talk to the wrong tty
    local s = sim.start(args{"--ttys-after", "modem,pcui,diag,gps"})
    local out, rc = lua_child(s, RUN)
    local aux = aux_rx(s)
    s:stop()
    upgraded(out, rc, "/dev/ttyUSB1")
    assert.same({}, aux)    -- not a byte to the diagnostics port that took the old name
  end)
end)
