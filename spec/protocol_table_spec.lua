-- Issue 14 (items 1, 2): the FOTA protocol has one home, the C command table
-- (csrc/fota_cmds.c). The Lua layer builds no AT command and parses no answer itself:
-- it asks the core (core.fota_command, core.fota_parse, core.setup_commands), so one
-- parameter rule, one set of parsers and one version order hold on every path.
local hwfota = require "hwfota"
local core = require "hwfota.core"
local policy = require "hwfota.policy"
local sim = require "support.sim"

local SCALE = "0.03"

-- Lines of lua/hwfota/*.lua that hold an AT command literal ("AT..., 'AT..., [[AT...)
-- outside a comment and outside the `at` command (its pass-through and usage text).
local function at_literals(top)
  local found = {}
  local p = io.popen("ls " .. top .. "/lua/hwfota/*.lua")
  for path in p:lines() do
    local in_at = false
    local n = 0
    for line in io.lines(path) do
      n = n + 1
      if line:match("^function CMD%.at%(") then in_at = true
      elseif in_at and line:match("^end") then in_at = false end
      local code = line:gsub("%-%-.*$", "")   -- a comment, or the rest of the line
      if not in_at and (code:find('"AT', 1, true) or code:find("'AT", 1, true) or
                        code:find("[[AT", 1, true)) then
        found[#found + 1] = ("%s:%d: %s"):format(path:match("[^/]+$"), n, line)
      end
    end
  end
  p:close()
  return found
end

describe("no AT strings in Lua outside `hwfota at`", function()
  it("lua/hwfota/*.lua builds no AT command itself", function()
    local found = at_literals(sim.top)
    assert.same({}, found, "AT literals outside the command table:\n" .. table.concat(found, "\n"))
  end)

  it("the check finds a literal where one is written", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/lua/hwfota"))
    local f = assert(io.open(dir .. "/lua/hwfota/x.lua", "w"))
    f:write('-- "AT^FOTADL=0" in a comment is documentation\n',
            'local x = port:command("AT^FOTADL=0")\n',
            'function CMD.at(self)\n  print("AT+GMR")\nend\n')
    f:close()
    local found = at_literals(dir)
    os.execute("rm -rf " .. dir)
    assert.equal(1, #found)
    assert.matches("x.lua:2:", found[1], 1, true)
  end)
end)

describe("core.fota_command", function()
  it("builds the state machine's texts from the command table", function()
    assert.equal("AT^FOTADL=0", core.fota_command("dl_stop").text)
    assert.equal("AT^FOTASTATE?", core.fota_command("state").text)
    assert.equal("^FOTASTATE:", core.fota_command("state").prefix)
    assert.equal('AT^FOTACFG="internet","u","",2',
                 core.fota_command("fotacfg", {apn = "internet", user = "u", auth = 2}).text)
    assert.equal("AT^FOTAMODE=0,0,1,1,30", core.fota_command("fotamode",
      {auto_upgrade = true, resume = true, period = 30}).text)
    assert.same({"ATE0", "AT+CMEE=2"}, core.setup_commands())
  end)

  it("never resends what is not idempotent", function()
    for _, name in ipairs{"fotadet", "dl_start", "dl_pause", "dl_stop", "fwup"} do
      local c = core.fota_command(name)
      assert.is_false(c.idempotent, name)
      assert.are_not.equal("resend", c.on_timeout, name)
    end
    assert.equal("never", core.fota_command("fwup").on_timeout)
    assert.equal("resend", core.fota_command("state").on_timeout)
  end)

  it("checks parameters with the one C rule (EINVAL), raises on misuse", function()
    local _, want = core.check_at_param("apn", ("\8"):rep(3))
    local c, msg, code = core.fota_command("fotacfg", {apn = ("\8"):rep(3)})
    assert.is_nil(c)
    assert.equal("EINVAL", code)
    assert.equal(want, msg)
    assert.is_nil((core.fota_command("fotacfg", {auth = 3})))
    assert.is_nil((core.fota_command("fotamode", {period = 0})))
    assert.is_nil((core.fota_command("fotamode", {period = 1.5})))
    assert.has_error(function() core.fota_command("nope") end)
    assert.has_error(function() core.fota_command("fotacfg", {apn = 42}) end)
    assert.has_error(function() core.fota_command("fotamode", {resume = 1}) end)
  end)
end)

describe("core.fota_parse", function()
  it("reads answers with the state machine's parsers", function()
    local a = core.fota_parse("ati", {"Manufacturer: huawei", "Model: MU509-b",
                                      "Revision: 12.815.03.01.00", "IMEI: 351234567890123"})
    assert.same({manufacturer = "huawei", model = "MU509-b", revision = "12.815.03.01.00",
                 firmware = "12.815.03.01.00", imei = "351234567890123"}, a)
    local r, msg, code = core.fota_parse("ati", {"Model: MU509"})
    assert.is_nil(r)
    assert.equal("EMODULE", code)
    assert.matches("Revision", msg)
    assert.equal("MU509", core.fota_parse("ati", {"Model: MU509"}, true).model)
    local st = core.fota_parse("state", {"^FOTASTATE: 12,12.1.2,10,\"x\"", "^FOTASTATE: 12"})
    assert.equal(12, st.state.state)
    assert.equal("12.1.2", st.state.version)   -- the URC before the bare answer names it
    local p = core.fota_parse("dlq", {'^FOTADLQ: 1,"A",150,100', '^FOTADLQ: 2,"B",0,100'})
    assert.same({100, 200, 50}, {p.done, p.total, p.percent})   -- clamped as the machine does
    local cfg = core.fota_parse("fotacfg_read", {'^FOTACFG: "apn","me","secret",2'}).fotacfg
    assert.same({apn = "apn", user = "me", password_set = true, auth = 2}, cfg)
    assert.is_nil((core.fota_parse("fotacfg_read", {"garbage"})))
  end)
end)

describe("one validator and one version order on every path", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  it("s:configure refuses a control character with the C rule's message, nothing sent", function()
    s = sim.start{"--time-scale", SCALE}
    local ss = assert(hwfota.session(s.path, {setup = {}}))
    local ok, msg, code = ss:configure{apn = ("\8"):rep(3)}
    local _, want = core.check_at_param("apn", ("\8"):rep(3))
    assert.is_nil(ok)
    assert.equal("EINVAL", code)
    assert.equal(want, msg)
    local okm, mmsg, mcode = ss:mode{period = 0}
    assert.is_nil(okm)
    assert.equal("EINVAL", mcode)
    assert.is_string(mmsg)
    ss:close()
    assert.same({}, s:commands())
  end)

  it("session steps send the command table's texts", function()
    s = sim.start{"--time-scale", SCALE}
    local ss = assert(hwfota.session(s.path, {setup = {}}))
    assert(ss:configure{apn = "internet", auth = "chap"})
    assert(ss:mode{auto_query = false, auto_download = false, auto_upgrade = false, resume = true})
    assert.equal(10, assert(ss:state()).code)
    local info = assert(ss:info())
    assert.is_string(info.model)
    assert.is_string(info.revision)
    assert(ss:cancel())
    ss:close()
    local want = {
      core.fota_command("fotacfg", {apn = "internet", auth = 2}).text,
      core.fota_command("fotamode", {resume = true}).text,
      core.fota_command("state").text,
      core.fota_command("ati").text,
      core.fota_command("dl_stop").text,
    }
    local got = s:commands()
    for _, w in ipairs(want) do
      local seen = false
      for _, g in ipairs(got) do seen = seen or g == w end
      assert.is_true(seen, w .. " not in " .. table.concat(got, " | "))
    end
  end)

  it('policy.version_compare("1.2a", "1.2") refuses like hwfota.version_compare', function()
    local r, msg, code = policy.version_compare("1.2a", "1.2")
    local hr, hmsg, hcode = hwfota.version_compare("1.2a", "1.2")
    assert.is_nil(r)
    assert.is_nil(hr)
    assert.equal(hmsg, msg)
    assert.equal(hcode, code)
    assert.equal("reject", (policy.gate{}.on_new_version{from = "1.2", version = "1.2a"}))
  end)
end)
