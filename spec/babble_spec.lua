-- A port that never stops talking must not freeze the binding: reading is bounded
-- per step, so timeouts still fire. A child lua5.4 runs under
-- spec/support/babble_preload.c (every tty read returns a full buffer of ^RSSI
-- lines, poll() always reports input) against a pty from support.peer; the
-- child itself is bounded by timeout(1), so a hang fails the test.
local peer = require "support.peer"

local child = require "support.child"

local function run_child(code)
  return child.run(code, child.preload("babble_preload") .. "timeout 20 ")
end

describe("a babbling port", function()
  it("a command still times out while the port floods the host with lines", function()
    local p = peer.start[[
sleep 2
]]
    local out, ok = run_child(([[
local hwfota = require "hwfota"
local port = assert(hwfota.open(%q, {sync = false}))
local rssi = 0
port:on("^RSSI:", function() rssi = rssi + 1 end)
local t0 = hwfota.now()
local res, msg, code = port:command("AT", {timeout = 0.3})
print("result", res, code, ("%%.1f"):format(hwfota.now() - t0), rssi > 0)
port:close()
]]):format(p.path))
    p:finish()
    assert.is_true(ok, out)
    local elapsed = out:match("result\tnil\tETIMEDOUT\t(%d+%.%d)\ttrue")
    assert.is_truthy(elapsed, out)
    -- in time: long before the peer hangs up (2 s), which used to end the flood
    assert.is_true(tonumber(elapsed) < 1.5, out)
  end)
end)
