-- Issue 12 (items 1, 4, 5, 6, 11): the module behind a reopened port is confirmed
-- before anything changes it (hwfota-sim --port-swap: the same path comes back as
-- another module); one FOTA operation per module in a process (EBUSY); `setup`
-- commands and AT parameters cannot smuggle commands onto the wire (EINVAL).
local hwfota = require "hwfota"
local cli = require "hwfota.cli"
local core = require "hwfota.core"
local sim = require "support.sim"

local SCALE = "0.03"
local LUA = os.getenv("LUA") or "lua5.4"
local CHILD = sim.top .. "/spec/support/flow_child.lua"

-- What the module that appeared at the swap received, and the states it went through.
local function swapped(s)
  local cmds = {}
  for _, e in ipairs(s:select({dir = "rx", swapped = true})) do cmds[#cmds + 1] = e.line end
  local at = s:index({ev = "fault", fault = "port-swap"})
  local states = {}
  for i, e in ipairs(s:read()) do
    if i > at and e.m == 0 and e.ev == "state" then states[#states + 1] = e.state end
  end
  return cmds, states
end

-- Only identity queries (and the port setup, with the line sync's queries at every
-- open) may reach another module.
local HARMLESS = {["ATE0"] = true, ["AT+CMEE=2"] = true, ["AT+CGSN"] = true,
                  ["ATI"] = true, ["AT+GMR"] = true,
                  ["AT+CMEE?"] = true, ["AT+CSQ"] = true, ["AT+CSCS?"] = true, ["AT"] = true}

local function assert_only_identity(cmds)
  assert.is_true(#cmds > 0, "the other module was reached (the swap happened)")
  for _, c in ipairs(cmds) do
    assert.is_true(HARMLESS[c] == true, "the other module received " .. c)
  end
end

local function imeis(s)
  local a = s:select({ev = "boot"})[1].imei
  local b = s:select({ev = "fault", fault = "port-swap"})[1].imei
  return a, b
end

describe("identity after every reopen (hwfota-sim --port-swap)", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  it("swap during the download: EIDENTITY, the other module (in 40) gets only identity queries, journal untouched", function()
    s = sim.start{"--time-scale", SCALE, "--port-swap", "byte=20000"}
    local journal = s.dir .. "/journal"
    local report = hwfota.run(s.path, {}, sim.opts{journal = journal, skip_model_check = true})
    assert.equal("failed", report.status)
    assert.equal("EIDENTITY", report.code, tostring(report.message))
    local cmds, states = swapped(s)
    assert_only_identity(cmds)
    assert.same({40}, states)             -- the swap itself; nothing changed it after
    local a, b = imeis(s)
    assert.matches(a, report.message, 1, true)
    assert.matches(b, report.message, 1, true)
    assert.matches(journal, report.message, 1, true)
    local j = sim.read_file(journal)
    assert.is_string(j, "the journal is left for the module it names")
    assert.matches("\nphase=download\n", j, 1, true)
    assert.matches("\nimei=" .. a .. "\n", j, 1, true)
    assert.equal(0, s:count("AT^FWUP"))
  end)

  it("swap during the download into an idle module: nothing is detected or downloaded there", function()
    s = sim.start{"--time-scale", SCALE, "--port-swap", "byte=20000", "--swap-state", "10"}
    local report = hwfota.run(s.path, {}, sim.opts{skip_model_check = true})
    assert.equal("EIDENTITY", report.code, tostring(report.message))
    local cmds, states = swapped(s)
    assert_only_identity(cmds)
    assert.same({10}, states)
  end)

  it("swap during the upgrade reset (after AT^FWUP): EIDENTITY, AT^FWUP once, journal untouched", function()
    s = sim.start{"--time-scale", SCALE, "--port-swap", "state=50"}
    local journal = s.dir .. "/journal"
    local report = hwfota.run(s.path, {}, sim.opts{journal = journal, skip_model_check = true})
    assert.equal("EIDENTITY", report.code, tostring(report.message))
    local cmds, states = swapped(s)
    assert_only_identity(cmds)
    assert.same({40}, states)
    assert.equal(1, s:count("AT^FWUP"))
    local j = sim.read_file(journal)
    assert.is_string(j)
    assert.matches("\nphase=reboot\n", j, 1, true)   -- as written before the reset
    assert.matches("\nfwup_sent=1\n", j, 1, true)
  end)

  -- cmd=CMEE=2: the first process sends only ATE0 as setup, so the swap hits the second
  -- one while it sets the port up (it waits for the port, then meets the other module);
  -- state=40: the module finished its download while no host ran, and the path now
  -- is another module's when the second process starts
  for _, case in ipairs{{trigger = "cmd=CMEE=2", extra = "setup=ATE0"}, {trigger = "state=40"}} do
  it(("journal restore (host killed) with another module on the path (%s): EIDENTITY, journal untouched")
     :format(case.trigger), function()
    s = sim.start{"--time-scale", SCALE, "--port-swap", case.trigger}
    local journal = s.dir .. "/journal"
    local function child(hold, extra)
      local cmd = ("exec %s %s %s %s %s %s 2>&1"):format(LUA, sim.sh_quote(CHILD),
        sim.sh_quote(s.path), sim.sh_quote(journal), hold or "-", extra or "")
      local p = assert(io.popen(cmd, "r"))
      local pid = tonumber((p:read("l") or ""):match("^pid (%d+)$"))
      return p, pid
    end
    local p, pid = child("download", case.extra)
    local held = false
    for line in p:lines() do
      if line == "hold download" then held = true; break end
    end
    os.execute("kill -9 " .. pid)
    p:close()
    assert.is_true(held, "the first process reached the download")
    local before = sim.read_file(journal)
    assert.is_string(before)
    assert.matches("\nphase=download\n", before, 1, true)
    if case.trigger == "state=40" then
      assert.is_not_nil(s:wait_for({ev = "boot", swapped = true}, 5), "the other module is up")
    end
    local p2 = child()
    local out = p2:read("a")
    p2:close()
    assert.matches("\nreport failed EIDENTITY ", "\n" .. out, 1, true)
    local cmds, states = swapped(s)
    assert_only_identity(cmds)
    for _, st in ipairs(states) do assert.equal(40, st) end   -- none changed it after the swap
    assert.equal(before, sim.read_file(journal), "the journal is byte for byte as it was")
    local a, b = imeis(s)
    assert.matches(a, out, 1, true)
    assert.matches(b, out, 1, true)
    assert.matches(journal, out, 1, true)
  end)
  end

  it("a serial port whose USB serial changed across the reopen: not reopened, not a byte sent", function()
    -- libserialport's real path (fakedev preload, /dev/ttyUSB2 = USB 12d1:1573, serial
    -- 0123456789ABCDEF); while the module resets the script makes the USB device at
    -- that place report another serial, as another module's would: identity.reopen
    -- opens only a port with our module's identity, so the run waits for it
    s = sim.start{"--time-scale", "0.05", "--port-swap", "state=50"}
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write[[
local hwfota = require "hwfota"
local port = assert(hwfota.open("/dev/ttyUSB2"))
local report = hwfota.run(port, {on_event = function(e)
  if e.event == "phase" and e.phase == "reboot" then
    local w = assert(io.open("/sys/devices/hwfota-fakedev/usb1/1-1/serial", "w"))
    w:write("FEDCBA9876543210\n")
    w:close()
  end
end}, {apn = "internet", mode = {auto_upgrade = false, resume = true},
       skip_model_check = true, reboot_timeout = 1.5})
print("report", report.status, report.code, report.message)
]]
    f:close()
    local p = assert(io.popen(("%s/spec/support/fakedev-run.sh -p %s lua5.4 %s 2>&1")
                              :format(sim.top, s.path, script)))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("report\tfailed\t", out, 1, true)
    assert.is_not_nil(s:wait_for({ev = "fault", fault = "port-swap"}, 0))
    assert.is_not_nil(s:wait_for({ev = "boot", swapped = true}, 2), "the other module came up")
    local cmds = swapped(s)
    assert.same({}, cmds)                 -- not even ATE0
    assert.equal(1, s:count("AT^FWUP"))
  end)

  for _, read_imei in ipairs{true, false} do
    it(("the retry's reopen in run (read_imei=%s): the carried machine is not trusted on another module")
       :format(tostring(read_imei)), function()
      -- the port goes away during the download for longer than reboot_timeout: the
      -- attempt fails (ETIMEDOUT) carrying its machine (a version, state 30); the retry
      -- waits, reopens, and finds another module in 40 at the path
      s = sim.start{"--time-scale", SCALE, "--port-swap", "byte=20000", "--reset-gap", "200"}
      local codes = {}
      local report = hwfota.run(s.path, {
        on_failure = function(err, attempt)
          codes[#codes + 1] = err.code
          if attempt == 1 then return 3 end
        end,
      }, sim.opts{skip_model_check = true, read_imei = read_imei, reboot_timeout = 2})
      assert.equal("ETIMEDOUT", codes[1])
      assert.equal(2, report.attempts)
      assert.equal("EIDENTITY", report.code, tostring(report.message))
      local cmds = swapped(s)
      assert.is_true(#cmds > 0, "the retry reached the other module")
      for _, c in ipairs(cmds) do
        assert.is_true(HARMLESS[c] == true or c == "AT^FOTASTATE?", "the other module received " .. c)
      end
      assert.equal(0, s:count("AT^FWUP"))
    end)
  end

  it("read_imei = false: after the port came back nothing that changes the module goes out", function()
    s = sim.start{"--time-scale", SCALE, "--port-swap", "byte=20000"}
    local report = hwfota.run(s.path, {}, sim.opts{skip_model_check = true, read_imei = false})
    assert.equal("EIDENTITY", report.code, tostring(report.message))
    assert.matches("read_imei", report.message, 1, true)
    local cmds = swapped(s)
    for _, c in ipairs(cmds) do
      assert.is_true(HARMLESS[c] == true or c == "AT^FOTASTATE?", "the other module received " .. c)
    end
  end)
end)

describe("one FOTA operation per module in a process", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  it("two spawned runs on one port: one AT^FWUP, the other run EBUSY", function()
    s = sim.start{"--time-scale", SCALE}
    local port = assert(hwfota.open(s.path))
    local reports = {}
    for i = 1, 2 do
      hwfota.spawn(function()
        reports[i] = hwfota.run(port, {}, sim.opts{skip_model_check = true})
      end)
    end
    hwfota.loop()
    port:close()
    local statuses = {reports[1].status, reports[2].status}
    table.sort(statuses)
    assert.same({"failed", "upgraded"}, statuses)
    local busy = reports[1].status == "failed" and reports[1] or reports[2]
    assert.equal("EBUSY", busy.code)
    assert.matches("one FOTA operation per module", busy.message, 1, true)
    assert.equal(1, s:count("AT^FWUP"))
    assert.equal(1, s:count("AT^FOTADET"))
  end)

  it("a second session on the same port (or a run while a session holds it) is EBUSY until close", function()
    s = sim.start{"--time-scale", SCALE}
    local port = assert(hwfota.open(s.path))
    local s1 = assert(hwfota.session(port, {skip_model_check = true}))
    local s2, msg, code = hwfota.session(port)
    assert.is_nil(s2)
    assert.equal("EBUSY", code)
    assert.matches("hwfota.session", msg, 1, true)
    local r = hwfota.run(port, {}, sim.opts{skip_model_check = true})
    assert.equal("EBUSY", r.code)
    assert.same({}, s:commands())         -- nothing reached the module
    s1:close()
    local s3 = assert(hwfota.session(port))
    s3:close()
    port:close()
  end)
end)

describe("setup commands are checked before the port is touched", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  local BAD = {"AT^FWUP", "at^fwup", "AT^FOTADL=1", 'AT^FOTACFG="x","","",0', "AT^FOTAMODE=0,0,1,1",
               "AT^FOTADET", "AT+CFUN=1,1", "ATZ", "AT&F", "ATE0;^FWUP", "AT+CMEE=2;+CFUN=0",
               "ATE0^FWUP", "ATE0Z", "AT+CMEE=2^FWUP", "XXAT^FWUP", "A/", "AT^RESET",
               "AT^GETPORTMODE", "ATE0\r", "AT\27", "AT+CSCS=\"IRA\"^FWUP"}
  local GOOD = {"ATE0", "ATE0V1", "AT+CMEE=2", "AT^CURC=0", "AT+CREG=2", "AT", "XX",
                'AT+CSCS="IRA"', "AT&C1"}

  it("refused forms: EINVAL from run and session, nothing on the wire", function()
    s = sim.start{"--time-scale", SCALE}
    for _, c in ipairs(BAD) do
      local r = hwfota.run(s.path, {}, sim.opts{skip_model_check = true, setup = {"ATE0", c}})
      assert.equal("failed", r.status, c)
      assert.equal("EINVAL", r.code, c)
      local ss, msg, code = hwfota.session(s.path, {setup = {c}})
      assert.is_nil(ss, c)
      assert.equal("EINVAL", code, c)
      assert.is_string(msg)
    end
    assert.same({}, s:commands())
  end)

  it("harmless forms are accepted", function()
    local check = require("hwfota.options").check_setup_command
    for _, c in ipairs(GOOD) do
      assert.is_true(check(c), c)
    end
    for _, c in ipairs(BAD) do
      assert.is_false(check(c), c)
    end
  end)
end)

describe("AT parameters: one validator (C) on every path", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  local BYTES = {"\8", "\26", "\27", "\127", "\0", "\1", "\31", "\r", "\n", '"', ";"}

  it("every control byte is refused by configure, run and the command, with nothing on the wire", function()
    s = sim.start{"--time-scale", SCALE}
    for _, b in ipairs(BYTES) do
      for _, field in ipairs{"apn", "user", "password"} do
        local v = b:rep(12) .. "+CFUN=1,1"
        local ok, msg, code = core.check_at_param(field, v)
        assert.is_nil(ok)
        assert.equal("EINVAL", code)
        assert.matches(field, msg, 1, true)
        -- Session:configure
        local ss = assert(hwfota.session(s.path))
        local r1, _, c1 = ss:configure{[field] = v, apn = field == "apn" and v or "internet"}
        ss:close()
        assert.is_nil(r1, ("configure %s %q"):format(field, b))
        assert.equal("EINVAL", c1)
        -- hwfota.run
        local o = sim.opts{skip_model_check = true}
        o[field] = v
        local r2 = hwfota.run(s.path, {}, o)
        assert.equal("EINVAL", r2.code, ("run %s %q"):format(field, b))
        -- the command: a usage error (exit 2)
        local err = {}
        local rc = cli.main({"--port", s.path, "check", "--skip-model-check", "--apn",
                             field == "apn" and v or "internet", "--" .. field, v},
                            {stdout = function() end, stderr = function(x) err[#err + 1] = x end,
                             isatty = function() return false end, getenv = function() end,
                             syslog = function() end})
        assert.equal(2, rc, ("hwfota --%s %q: %s"):format(field, b, table.concat(err)))
      end
    end
    assert.same({}, s:commands())
  end)
end)
