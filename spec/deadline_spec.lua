-- Every wait of the driver has a deadline (issue 12.3): a state machine that waits
-- for nothing (no command in flight, no timer, no port to reopen) is stopped after
-- the driver's idle limit, max(5, 2 x command_timeout) s, with EINTERNAL, instead of
-- sleeping in poll() for good. The machine is made to forget its next step by a
-- wrapper around core.fota_new that drops every action after AT^FOTADET's result
-- (a stand-in for a bug like the journal one, where the cancel was refused and
-- nothing was armed). The host runs in a child lua5.4 under timeout(1).
local sim = require "support.sim"
local child = require "support.child"

local function host(path, drop_after)
  return ([[
local core = require "hwfota.core"
local real_new = core.fota_new
core.fota_new = function(o)
  local f, m, c = real_new(o)
  if not f then return f, m, c end
  local dropping = false
  local proxy = setmetatable({}, {__index = function(_, k)
    local v = f[k]
    if type(v) == "function" then return function(_, ...) return v(f, ...) end end
    return v
  end})
  function proxy.feed(_, ev)
    local acts = f:feed(ev)
    if ev.kind == "result" and ev.command == %q then dropping = true end
    if dropping then return {} end
    return acts
  end
  return proxy
end
local hwfota = require "hwfota"
local sim = require "support.sim"
local t0 = hwfota.now()
local r = hwfota.run(%q, {}, sim.opts{skip_model_check = true})
print(("report status=%%s code=%%s phase=%%s elapsed=%%.1f"):format(r.status, tostring(r.code),
      tostring(r.phase), hwfota.now() - t0))
print("message " .. tostring(r.message))
]]):format(drop_after, path)
end

describe("driver deadlines", function()
  local s
  before_each(function() s = sim.start{"--time-scale", "0.03"} end)
  after_each(function() s:stop() end)

  it("stops a machine that waits for nothing with EINTERNAL after the idle limit", function()
    local out, ok = child.run(host(s.path, "AT^FOTADET"), "timeout -s KILL 30 ")
    assert.is_true(ok, "the run hung (killed by timeout(1)):\n" .. out)
    -- (detect, or decide_download when the offer's URC came meanwhile: the machine
    -- itself moves on, only its actions are lost)
    assert.matches("report status=failed code=EINTERNAL phase=d", out, 1, true)
    assert.matches("message hwfota internal error: in phase [%l_]+ the state machine waited 5 s", out)
    -- idle once the last timer armed before the drop (detect_timeout, 5 s) has fired,
    -- then the idle limit (5 s)
    local elapsed = tonumber(out:match("elapsed=([%d.]+)"))
    assert.is_true(elapsed >= 5 and elapsed < 15, out)
  end)

  it("leaves a machine alone that waits for its own timer (a whole run, no drop)", function()
    local out, ok = child.run(host(s.path, "(never)"), "timeout -s KILL 30 ")
    assert.is_true(ok, out)
    assert.matches("report status=upgraded", out, 1, true)
    assert.equal(1, s:count("AT^FWUP"))
  end)
end)
