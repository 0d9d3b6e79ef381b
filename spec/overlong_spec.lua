-- An over-long line (noise without a line end before an answer) is dropped, counted
-- and reported; the command in flight still gets its own answer (issue 12.7: it
-- used to fail as EOVERFLOW, read as "the module refused AT+CGSN").
local hwfota = require "hwfota"
local sim = require "support.sim"

local IMEI = "867530900000009"   -- module 0 of the simulator's default --imei-base

describe("an over-long line while a command waits", function()
  local s
  after_each(function() if s then s:stop() end s = nil end)

  for _, n in ipairs{5000, 60000} do
    it(("port API: %d noise bytes before AT+CGSN's answer"):format(n), function()
      s = sim.start{"--time-scale", "0.03", "--long-line", "cmd=CGSN:" .. n}
      local p <close> = assert(hwfota.open(s.path))
      local ev = {}
      p:on_event(function(e) ev[#ev + 1] = e.event .. ":" .. tostring(e.detail) end)
      local res, msg, code = p:command("AT+CGSN", {timeout = 5})
      assert.is_table(res, tostring(msg) .. " " .. tostring(code))
      assert.same({IMEI}, res.lines)
      assert.equals("OK", res.final)
      assert.equals(1, p:stats().overflows)
      local seen = false
      for _, e in ipairs(ev) do if e == "overflow:" .. n then seen = true end end
      assert.is_true(seen, table.concat(ev, " | "))
      assert.is_not_nil(s:wait_for({ev = "fault", fault = "long-line"}, 0))
    end)
  end

  it("a session's probe (ATI) reads through it", function()
    s = sim.start{"--time-scale", "0.03", "--long-line", "cmd=ATI:8000"}
    local o = sim.opts{skip_model_check = true}
    o.apn, o.user, o.password, o.auth, o.mode = nil, nil, nil, nil, nil
    local ses <close> = assert(hwfota.session(s.path, o))
    local info, msg = ses:info()
    assert.is_table(info, msg)
    assert.equals(IMEI, info.imei)
    assert.equals("MU509-b", info.model)
    assert.equals(sim.FROM, info.revision)
    assert.is_not_nil(s:wait_for({ev = "fault", fault = "long-line"}, 0))
  end)
end)
