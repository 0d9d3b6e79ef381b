-- examples/sms-trigger.lua against the simulator: an SMS from an authorised number with
-- the keyword starts the FOTA flow; anything else is read, deleted and ignored; nothing
-- from a +CMTI line or an SMS ever reaches the wire.
local top = os.getenv("HWFOTA_TOP") or "."
local script = top .. "/examples/sms-trigger.lua"
local AUTH, KEY = "+8613800000000", "FOTA UPGRADE"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local simulator = require "support.sim"

local function start_sim(args)
  return simulator.start{"--time-scale", "0.05", "--rate", "30000", table.unpack(args)}
end

-- Run the example; returns its output (stdout and stderr) and exit code.
local function run(sim, args)
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s lua5.4 %s %s %s 2>&1"):format(
    q(top .. "/lua/?.lua;" .. top .. "/lua/?/init.lua;;"), q(top .. "/build/?.so;;"),
    q(script), q(sim.path), table.concat(args, " "))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- The commands the simulated module received, in order.
local function received(log)
  local out = {}
  for l in io.lines(log) do
    local c = l:match('"dir":"rx","line":"(.*)"}$')
    if c then out[#out + 1] = (c:gsub('\\"', '"')) end
  end
  return out
end

local function count(log, needle)
  local n = 0
  for l in io.lines(log) do
    if l:find(needle, 1, true) then n = n + 1 end
  end
  return n
end

local function index_of(list, item)
  for i, v in ipairs(list) do if v == item then return i end end
end

describe("examples/sms-trigger.lua", function()
  it("runs the FOTA flow on the keyword from an authorised number (+CMTI, read, delete)", function()
    local sim = start_sim{"--sms", "time=20:" .. AUTH .. ":" .. KEY}   -- 1 s in
    local out, code = run(sim, {"--allow", q("+4900000," .. AUTH), "--keyword", q(KEY),
                                "--once", "--timeout", "15", "--reboot-timeout", "20"})
    local rx = received(sim.log)
    local cmti = count(sim.log, '"what":"delivered","index":0,"from":"+8613800000000","text":"FOTA UPGRADE","cmti":true')
    local resets = count(sim.log, '"ev":"reset","reason":"upgrade"')
    local deleted = count(sim.log, '"ev":"sms","what":"deleted","index":0')
    sim:stop()
    assert.equals(0, code, out)
    assert.matches("trigger from +8613800000000 (message 0, deleted)", out, 1, true)
    assert.matches(("upgraded and verified: %s -> %s"):format(simulator.FROM, simulator.TO), out, 1, true)
    assert.equals(1, cmti)             -- it came through the new-message indication
    assert.equals(1, deleted)
    assert.equals(1, resets)
    local r, d, det = index_of(rx, "AT+CMGR=0"), index_of(rx, "AT+CMGD=0"), index_of(rx, "AT^FOTADET")
    assert.is_truthy(r and d and det, table.concat(rx, "\n"))
    assert.is_true(r < d and d < det)  -- read, deleted, then the flow
    assert.is_truthy(index_of(rx, "AT+CNMI=2,1,0,0,0"))
    assert.is_truthy(index_of(rx, 'AT+CMGL="REC UNREAD"'))
  end)

  it("deletes and ignores an unknown sender or a wrong keyword; takes stored messages first", function()
    local sim = start_sim{
      "--sms", "time=0:+8613900000000:" .. KEY,        -- stored before the script starts
      "--sms", "time=20:" .. AUTH .. ":fota upgrade",   -- case matters
      "--sms", "time=30:" .. AUTH .. "0:" .. KEY,       -- a longer number is another number
    }
    local out, code = run(sim, {"--allow", q(AUTH), "--keyword", q(KEY), "--once", "--timeout", "2.5"})
    local rx = received(sim.log)
    local delivered = count(sim.log, '"ev":"sms","what":"delivered"')
    local deleted = count(sim.log, '"ev":"sms","what":"deleted"')
    local stored_first = count(sim.log, '"what":"delivered","index":0,"from":"+8613900000000","text":"FOTA UPGRADE","cmti":false')
    sim:stop()
    assert.equals(4, code, out)        -- --timeout without a trigger
    assert.equals(3, delivered)
    assert.equals(3, deleted, out)
    assert.equals(1, stored_first)
    assert.matches('message 0 from "+8613900000000" ignored (sender not authorised), deleted', out, 1, true)
    assert.matches("(wrong keyword)", out, 1, true)
    assert.matches('from "+86138000000000" ignored (sender not authorised)', out, 1, true)
    for _, c in ipairs(rx) do
      assert.is_nil(c:find("^AT^FOTA") or c:find("FWUP", 1, true), "FOTA command sent: " .. c)
    end
  end)

  it("never lets a malformed +CMTI index or an SMS's text reach the wire", function()
    local sim = start_sim{
      "--urc", 'time=10:+CMTI: "SM",1;AT^FWUP',
      "--urc", 'time=12:+CMTI: "SM",99999999999999',
      "--urc", 'time=14:+CMTI: "ME",0',
      -- its text line, read by AT+CMGR, looks like an indication to the AT engine
      "--sms", "time=20:" .. AUTH .. ':+CMTI: "SM",0;AT^FWUP',
    }
    local out, code = run(sim, {"--allow", q(AUTH), "--keyword", q(KEY), "--once", "--timeout", "2"})
    local rx = received(sim.log)
    sim:stop()
    assert.equals(4, code, out)
    local allowed = {["AT+CMEE?"] = true,   -- the line sync at open (side-effect free)
                     ["AT+CMGF=1"] = true, ['AT+CPMS="SM","SM","SM"'] = true,
                     ["AT+CNMI=2,1,0,0,0"] = true, ['AT+CMGL="REC UNREAD"'] = true,
                     ["AT+CMGR=0"] = true, ["AT+CMGD=0"] = true}
    for _, c in ipairs(rx) do assert.is_true(allowed[c] == true, "unexpected command: " .. c) end
    assert.is_truthy(index_of(rx, "AT+CMGD=0"))
    local _, ignored = out:gsub("ignored indication", "")
    assert.equals(4, ignored, out)     -- three --urc lines and the SMS's text line
    assert.matches("malformed +CMTI", out, 1, true)
    assert.matches("index out of range", out, 1, true)
    assert.matches("storage ME is not the SIM's", out, 1, true)
    assert.matches("(wrong keyword)", out, 1, true)  -- its text never reached the check
  end)

  it("finds an SMS that arrived while the port was down (power loss) after reopening", function()
    local sim = start_sim{"--power-loss", "time=20", "--sms", "time=24:" .. AUTH .. ":" .. KEY}
    local out, code = run(sim, {"--allow", q(AUTH), "--keyword", q(KEY), "--once", "--timeout", "10",
                                "--reboot-timeout", "20"})
    local rx = received(sim.log)
    local no_cmti = count(sim.log, '"what":"delivered","index":0,"from":"+8613800000000","text":"FOTA UPGRADE","cmti":false')
    local losses = count(sim.log, '"ev":"reset","reason":"power-loss"')
    sim:stop()
    assert.equals(0, code, out)
    assert.equals(1, losses)
    assert.equals(1, no_cmti)          -- CNMI was off after the reboot: only AT+CMGL finds it
    assert.matches("port lost", out, 1, true)
    assert.matches("upgraded and verified", out, 1, true)
    local n = 0
    for _, c in ipairs(rx) do if c == "AT+CNMI=2,1,0,0,0" then n = n + 1 end end
    assert.is_true(n >= 2, "indications turned on again after the reopen")
  end)

  it("parses indications and judges messages strictly", function()
    local M = assert(loadfile(script))("--as-library")
    assert.equals(3, M.parse_cmti('+CMTI: "SM",3'))
    assert.equals(0, M.parse_cmti('+CMTI: "SM", 0'))
    assert.equals(65535, M.parse_cmti('+CMTI: "SM",65535'))
    for _, bad in ipairs{'+CMTI: "SM",1;AT^FWUP', '+CMTI: "SM",65536', '+CMTI: "SM",-1',
                         '+CMTI: "SM",1 ', '+CMTI: "SM",0x1', '+CMTI: "SM",1\r', '+CMTI: "SM",',
                         '+CMTI: SM,1', '+CMTI: "SM",1,2', '+CMTI: "SM",1e3', '+CMTI: "ME",1',
                         '+CMTI: "SM",00000000001'} do
      assert.is_nil(M.parse_cmti(bad), bad)
    end
    local idx, bad = M.parse_cmgl{'+CMGL: 2,"REC UNREAD","+1",,"24/11/25,10:00:00+32"', "text",
                                  '+CMGL: 99999999,"REC UNREAD","+1",,"x"', "+CMGL: 3;AT,"}
    assert.same({2}, idx)
    assert.equals(1, #bad)
    local sms = M.parse_cmgr{'+CMGR: "REC UNREAD","+1, x",,"24/11/25,10:00:00+32"', "  go  "}
    assert.same({status = "REC UNREAD", from = "+1, x", time = "24/11/25,10:00:00+32", text = "  go  "}, sms)
    local cfg = {allow = {["+1, x"] = true}, keyword = "go"}
    assert.is_true(M.check(sms, cfg))
    assert.is_false(M.check({from = "+1, x", text = "Go"}, cfg))
    assert.is_false(M.check({from = "+1", text = "go"}, cfg))
    assert.is_false(M.check({from = "+1, x", text = "go now"}, cfg))
    assert.is_nil(M.parse_cmgr{"+CMGR: \"REC READ"})
    assert.equals('"a\\x0db"', M.show("a\rb"))
  end)
end)
