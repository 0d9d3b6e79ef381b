-- The loop gives the collector a step each time it is about to wait, so garbage
-- goes in time nobody needs instead of the heap growing to twice what is live
-- (issue 15: RSS per module with 1,000 modules in one process).
local hwfota = require "hwfota"

describe("hwfota.loop and the garbage collector", function()
  after_each(function() collectgarbage("restart") end)

  it("collects while it waits, even with the automatic collector stopped", function()
    collectgarbage()
    collectgarbage("stop")
    do
      local junk = {}
      for i = 1, 20000 do junk[i] = {i, tostring(i)} end
    end
    local before = collectgarbage("count")
    hwfota.spawn(function()
      for _ = 1, 10 do hwfota.sleep(0.001) end
    end)
    assert.same({}, hwfota.loop())
    local after = collectgarbage("count")
    assert.is_true(after < before / 2, ("%.0f KB before, %.0f KB after"):format(before, after))
  end)
end)
