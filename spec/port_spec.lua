-- The Lua port API over a scripted pseudo-terminal peer (spec/support/ptypeer.c).
local hwfota = require "hwfota"
local peer = require "support.peer"

-- The scripts give the exact exchange, so the line sync at open (a resync
-- query before the first command) is off here; spec/sync_spec.lua tests it.
local open_peer, finish = peer.open, peer.finish

describe("hwfota module", function()
  it("has a version and the documented functions", function()
    assert.matches("^hwfota %d+%.%d+%.%d+", hwfota._VERSION)
    for _, f in ipairs{"open", "list_ports", "poll", "now"} do
      assert.is_function(hwfota[f], f)
    end
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() hwfota.open(42) end)
    assert.has_error(function() hwfota.open("/dev/null", "fast") end)
    assert.has_error(function() hwfota.open("/dev/null", {bogus = 1}) end)
    assert.has_error(function() hwfota.open("/dev/null", {baudrate = "fast"}) end)
    assert.has_error(function() hwfota.open("/dev/null", {flow = "xonxoff"}) end)
    assert.has_error(function() hwfota.open("/dev/null", {timeout = -1}) end)
  end)

  it("reports a missing port as ENOENT", function()
    local port, msg, code = hwfota.open("/dev/ttyUSB-does-not-exist")
    assert.is_nil(port)
    assert.equals("ENOENT", code)
    assert.matches("ttyUSB%-does%-not%-exist", msg)
  end)

  it("lists ports as an array of tables", function()
    local ports, msg = hwfota.list_ports()
    assert.is_table(ports, msg)
    for _, p in ipairs(ports) do
      assert.is_string(p.path)
      assert.is_boolean(p.huawei)
    end
  end)
end)

describe("port", function()
  it("opens a pty as kind 'pty' and reads the version with echo on and URCs inside", function()
    local p, port = open_peer[[
echo on
raw \r\n^RSSI: 17\r\n
expect AT+GMR
raw \r\n12.815.01.03.00\r\n\r\n^RSSI: 18\r\r\n\r\nOK\r\n
send ^RSSI: 19
]]
    assert.equals("pty", port:kind())
    assert.is_number(port:fileno())
    local rssi = {}
    port:on("^RSSI:", function(line) rssi[#rssi + 1] = line end)
    local res = assert(port:command("AT+GMR"))
    assert.same({"12.815.01.03.00"}, res.lines)
    assert.equals("OK", res.final)
    port:poll(0.5)
    assert.same({"^RSSI: 17", "^RSSI: 18", "^RSSI: 19"}, rssi)
    port:close()
    finish(p)
  end)

  it("returns nil, final line, ECME and the detail on +CME ERROR", function()
    local p, port = open_peer[[
expect AT^FOTADET
send +CME ERROR: FOTA is in collision state
expect AT^FOTADL=1
send +CME ERROR: 3
expect AT^FWUP
send COMMAND NOT SUPPORT
expect AT^FOO
send ERROR
]]
    local res, msg, code, detail = port:command("AT^FOTADET", {expect = "none"})
    assert.is_nil(res)
    assert.equals("+CME ERROR: FOTA is in collision state", msg)
    assert.equals("ECME", code)
    assert.equals("FOTA is in collision state", detail.text)
    res, msg, code, detail = port:command("AT^FOTADL=1")
    assert.equals("ECME", code)
    assert.equals(3, detail.code)
    res, msg, code = port:command("AT^FWUP")
    assert.is_nil(res)
    assert.equals("COMMAND NOT SUPPORT", msg)
    assert.is_string(code)
    res, msg, code = port:command("AT^FOO")
    assert.equals("EERROR", code)
    port:close()
    finish(p)
  end)

  it("keeps only the expected prefixes as response lines", function()
    local p, port = open_peer[[
expect AT^FOTASTATE?
send ^RSSI: 20
send ^FOTASTATE: 10
send ^DSFLOWRPT: 00000010,00000000
send OK
]]
    local seen = {}
    port:on("", function(line) seen[#seen + 1] = line end)
    local res = assert(port:command("AT^FOTASTATE?", {prefix = "^FOTASTATE:"}))
    assert.same({"^FOTASTATE: 10"}, res.lines)
    assert.same({"^RSSI: 20", "^DSFLOWRPT: 00000010,00000000"}, seen)
    port:close()
    finish(p)
  end)

  it("times out, resynchronises, and never hands a late answer to the next command", function()
    local p, port = open_peer[[
expect AT+CGSN
sleep 0.8
send 867530900000001
send OK
expect AT+CMEE?
send +CMEE: 2
send OK
expect AT+GMR
send 12.815.01.03.00
send OK
]]
    local events = {}
    port:on_event(function(e) events[#events + 1] = e.event end)
    local res, msg, code = port:command("AT+CGSN", {timeout = 0.4})
    assert.is_nil(res)
    assert.equals("ETIMEDOUT", code)
    assert.matches("AT%+CGSN", msg)
    res = assert(port:command("AT+GMR", {timeout = 5}))
    assert.same({"12.815.01.03.00"}, res.lines)
    assert.truthy(port:stats().timeouts >= 1)
    local joined = table.concat(events, ",")
    assert.matches("timeout", joined)
    port:close()
    finish(p)
  end)

  it("refuses commands carrying CR, LF or NUL without writing anything", function()
    local p, port = open_peer[[
expect AT
send OK
]]
    for _, bad in ipairs{"AT\rAT+CFUN=0", "AT\nX", "AT\0X", ""} do
      local res, msg, code = port:command(bad)
      assert.is_nil(res)
      assert.equals("EINVAL", code, msg)
    end
    assert(port:command("AT"))
    port:close()
    finish(p)
    assert.same({"AT"}, p:received())
  end)

  it("reports a vanished port as EPORTLOST, without crash or hang", function()
    local p, port = open_peer[[
expect AT
hangup
]]
    local t0 = hwfota.now()
    local res, msg, code = port:command("AT", {timeout = 5})
    assert.is_nil(res)
    assert.equals("EPORTLOST", code, msg)
    assert.is_true(hwfota.now() - t0 < 4)
    assert.is_true(port:is_lost())
    res, msg, code = port:command("AT")
    assert.equals("EPORTLOST", code)
    port:close()
    finish(p)
  end)

  it("refuses a second opener with EBUSY naming ModemManager", function()
    local p, port = open_peer[[
expect AT
send OK
]]
    local second, msg, code = hwfota.open(p.path)
    assert.is_nil(second)
    assert.equals("EBUSY", code)
    assert.matches("ModemManager", msg)
    assert(port:command("AT"))
    port:close()
    finish(p)
  end)

  it("survives a handler that raises and reports it", function()
    local p, port = open_peer[[
expect AT
send ^RSSI: 3
send OK
expect AT+GMR
send 12.815.01.03.00
send OK
]]
    local reported
    port:on_event(function(e) if e.event == "callback_error" then reported = e.detail end end)
    port:on("^RSSI:", function() error("policy bug") end)
    assert(port:command("AT"))
    assert.matches("policy bug", reported)
    assert.same({"12.815.01.03.00"}, assert(port:command("AT+GMR")).lines)
    port:close()
    finish(p)
  end)

  it("lets a handler remove itself", function()
    local p, port = open_peer[[
send ^MODE: 5,4
send ^MODE: 5,5
expect AT
send OK
]]
    local n, id = 0, nil
    id = port:on("^MODE:", function() n = n + 1; port:off(id) end)
    assert(port:command("AT"))
    assert.equals(1, n)
    assert.is_false(port:off(id))
    port:close()
    finish(p)
  end)

  it("sends without waiting and calls back", function()
    local p, port = open_peer[[
expect AT+CSQ
send +CSQ: 20,99
send OK
]]
    local got
    local id = assert(port:send("AT+CSQ", {prefix = "+CSQ:"}, function(res) got = res end))
    assert.is_number(id)
    local deadline = hwfota.now() + 5
    while not got and hwfota.now() < deadline do port:poll(0.5) end
    assert.same({"+CSQ: 20,99"}, got.lines)
    port:close()
    finish(p)
  end)

  it("drives two ports from one poll loop", function()
    local p1, a = open_peer[[
expect AT
sleep 0.2
send OK
]]
    local p2, b = open_peer[[
expect AT
send OK
]]
    local done = {}
    a:send("AT", function(res) done.a = res.final end)
    b:send("AT", function(res) done.b = res.final end)
    local deadline = hwfota.now() + 5
    while not (done.a and done.b) and hwfota.now() < deadline do hwfota.poll({a, b}, 1) end
    assert.same({a = "OK", b = "OK"}, done)
    a:close(); b:close()
    finish(p1); finish(p2)
  end)

  it("closes idempotently, with <close>, and fails later calls with ECLOSED", function()
    local p = peer.start("expect AT\nsend OK\n")
    do
      local port <close> = assert(hwfota.open(p.path, {sync = false}))
      assert(port:command("AT"))
      _G.__hwfota_closed_port = port
    end
    local port = _G.__hwfota_closed_port
    _G.__hwfota_closed_port = nil
    assert.is_true(port:is_lost())
    local res, _, code = port:command("AT")
    assert.is_nil(res)
    assert.equals("ECLOSED", code)
    assert.is_true(port:close())
    assert.is_true(port:close())
    finish(p)
  end)

  it("plays the seed's FOTA command log", function()
    local p, port = open_peer[[
echo on
expect AT+GMR
send 12.815.01.03.00
send OK
expect AT^FOTACFG="1234","","",2
send OK
expect AT^FOTAMODE=0,0,1,1
send OK
expect AT^FOTASTATE?
send ^FOTASTATE: 10
send OK
expect AT^FOTADET
send OK
send ^FOTASTATE: 11
send ^FOTASTATE: 12,12.815.01.04.00,79114,"Support send SMS background"
expect AT^FOTADL=1
send OK
send ^FOTASTATE: 30
expect AT^FOTADLQ
send ^FOTADLQ: 1,"IMAGE",1324,1324
send ^RSSI: 21
send ^FOTADLQ: 2,"XNV",47104,77778
send OK
send ^FOTASTATE: 40
send ^FOTASTATE: 50
sleep 0.2
]]
    local states = {}
    port:on("^FOTASTATE:", function(l) states[#states + 1] = l end)
    assert.same({"12.815.01.03.00"}, assert(port:command("AT+GMR")).lines)
    assert(port:command('AT^FOTACFG="1234","","",2'))
    assert(port:command("AT^FOTAMODE=0,0,1,1"))
    assert.same({"^FOTASTATE: 10"},
                assert(port:command("AT^FOTASTATE?", {prefix = "^FOTASTATE:"})).lines)
    assert(port:command("AT^FOTADET", {expect = "none"}))
    local deadline = hwfota.now() + 5
    while #states < 2 and hwfota.now() < deadline do port:poll(1) end
    assert(port:command("AT^FOTADL=1", {expect = "none"}))
    local q = assert(port:command("AT^FOTADLQ", {prefix = "^FOTADLQ:"}))
    assert.same({'^FOTADLQ: 1,"IMAGE",1324,1324', '^FOTADLQ: 2,"XNV",47104,77778'}, q.lines)
    while #states < 5 and hwfota.now() < deadline do port:poll(1) end
    assert.same({"^FOTASTATE: 11",
                 '^FOTASTATE: 12,12.815.01.04.00,79114,"Support send SMS background"',
                 "^FOTASTATE: 30", "^FOTASTATE: 40", "^FOTASTATE: 50"}, states)
    port:close()
    finish(p)
  end)
end)
