-- URC routing follows subscriptions: port:on(prefix) registers the prefix with
-- the AT engine (counted), so a subscribed code that is not built in, arriving
-- inside a command that takes every line, reaches its handler instead of the
-- response; port:off unregisters it. The engine itself knows no FOTA code.
local hwfota = require "hwfota"
local peer = require "support.peer"

local function open_peer(script)
  local p = peer.start(script)
  local port, msg, code = hwfota.open(p.path, {sync = false})
  assert(port, ("open %s: %s (%s)"):format(p.path, tostring(msg), tostring(code)))
  return p, port
end

local function finish(p)
  local ok, err = p:finish()
  assert(ok, "peer script failed: " .. tostring(err))
end

local function gmr_with(line)
  return "expect AT+GMR\nsend " .. line .. "\nsend 12.815.03.01.00\nsend OK\n"
end

describe("URC routing follows subscriptions", function()
  it("a subscribed prefix inside a command's answer goes to its handler", function()
    local p, port = open_peer(gmr_with("+CUSD: 1,\"balance\",15") .. gmr_with("+CUSD: 2"))
    local seen = {}
    local id = assert(port:on("+CUSD:", function(line) seen[#seen + 1] = line end))
    local res = assert(port:command("AT+GMR"))
    assert.same({"12.815.03.01.00"}, res.lines)
    assert.same({"+CUSD: 1,\"balance\",15"}, seen)
    assert.is_true(port:off(id))
    res = assert(port:command("AT+GMR"))   -- unsubscribed: response again
    assert.same({"+CUSD: 2", "12.815.03.01.00"}, res.lines)
    assert.equal(1, #seen)
    port:close()
    finish(p)
  end)

  it("counts subscribers: one leaving keeps the other's routing", function()
    local p, port = open_peer(gmr_with("+CUSD: 1") .. gmr_with("+CUSD: 2"))
    local a, b = {}, {}
    local ida = assert(port:on("+CUSD:", function(l) a[#a + 1] = l end))
    local idb = assert(port:on("+CUSD:", function(l) b[#b + 1] = l end))
    assert(port:command("AT+GMR"))
    assert.is_true(port:off(ida))
    local res = assert(port:command("AT+GMR"))
    assert.same({"12.815.03.01.00"}, res.lines)
    assert.same({"+CUSD: 1"}, a)
    assert.same({"+CUSD: 1", "+CUSD: 2"}, b)
    assert.is_true(port:off(idb))
    assert.is_false(port:off(idb))
    port:close()
    finish(p)
  end)

  it("the engine holds no FOTA fact: ^FOTASTATE: is unsolicited only once registered", function()
    local p, port = open_peer(gmr_with("^FOTASTATE: 10") .. gmr_with("^FOTASTATE: 11"))
    local res = assert(port:command("AT+GMR"))
    assert.same({"^FOTASTATE: 10", "12.815.03.01.00"}, res.lines)
    local s = assert(hwfota.session(port))   -- the FOTA layer registers its code
    res = assert(port:command("AT+GMR"))
    assert.same({"12.815.03.01.00"}, res.lines)
    s:close()
    port:close()
    finish(p)
  end)

  it("a catch-all subscription does not take response lines", function()
    local p, port = open_peer(gmr_with("^RSSI: 20"))
    local seen = {}
    assert(port:on("", function(l) seen[#seen + 1] = l end))
    local res = assert(port:command("AT+GMR"))
    assert.same({"12.815.03.01.00"}, res.lines)
    assert.same({"^RSSI: 20"}, seen)
    port:close()
    finish(p)
  end)

  it("refuses a prefix with NUL", function()
    local p, port = open_peer("")
    assert.has_error(function() port:on("+X\0:", function() end) end)
    port:close()
    p:finish()
  end)
end)
