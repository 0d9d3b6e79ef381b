-- hwfota.poll over several ports: a callback of one port may act on another
-- port of the same call (here: find it lost and reopen it elsewhere). What
-- poll() said about the old file descriptor must not be applied to the new one.
local hwfota = require "hwfota"
local peer = require "support.peer"

describe("hwfota.poll and callbacks that reopen another port", function()
  it("a port reopened by another port's handler is not marked lost by a stale hang-up", function()
    local pa = peer.start[[
sleep 0.5
send ^TEST: 1
sleep 3
]]
    local pb = peer.start[[
sleep 0.3
hangup
]]
    local pc = peer.start[[
sleep 3
]]
    local A = assert(hwfota.open(pa.path, {sync = false}))   -- scripted peers: exact exchange
    local B = assert(hwfota.open(pb.path, {sync = false}))
    local seen = {}
    A:on("^TEST", function()
      -- B's peer hung up: its first write fails, then B moves to another pty
      local _, _, code = B:command("AT", {timeout = 1})
      seen.code = code
      seen.reopened = B:reopen(pc.path)
    end)
    os.execute("sleep 1")          -- A's line and B's hang-up both wait for one poll
    hwfota.poll({A, B}, 2)
    assert.equals("EPORTLOST", seen.code)
    assert.is_true(seen.reopened)
    assert.is_false(B:is_lost())
    assert.equals(pc.path, B:path())
    A:close(); B:close()
    pa:finish(); pb:finish(); pc:finish()
  end)
end)
