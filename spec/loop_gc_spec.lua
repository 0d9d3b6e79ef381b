-- The loop gives the collector a step each time it is about to wait, so garbage
-- goes in time nobody needs instead of the heap growing to twice what is live
-- (issue 15: RSS per module with 1,000 modules in one process).
local hwfota = require "hwfota"

describe("hwfota.loop and the garbage collector", function()
  after_each(function() collectgarbage("restart") end)

  it("collects while it waits, even with the automatic collector stopped", function()
    collectgarbage()
    local live = collectgarbage("count")   -- whatever earlier specs keep alive
    collectgarbage("stop")
    do
      local junk = {}
      for i = 1, 20000 do junk[i] = {i, tostring(i)} end
    end
    local garbage = collectgarbage("count") - live
    assert.is_true(garbage > 1000, "made garbage")
    local waits = 0
    hwfota.spawn(function()
      -- each wait may give the collector one step: as many as a cycle over this heap
      -- takes, bounded (with the collector stopped nothing else would ever collect)
      while collectgarbage("count") - live > garbage / 2 and waits < 2000 do
        hwfota.sleep(0.0005)
        waits = waits + 1
      end
    end)
    assert.same({}, hwfota.loop())
    local left = collectgarbage("count") - live
    assert.is_true(left < garbage / 2,
                   ("%.0f KB of garbage, %.0f KB left after %d waits"):format(garbage, left, waits))
  end)
end)
