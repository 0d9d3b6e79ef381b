-- Time math at the limits of the binding's waits: port:poll and hwfota.core.poll
-- accept up to 30 days (2592000 s), more milliseconds than poll() takes in an int.
-- A child lua5.4 runs under spec/support/polltimeout_preload.c, which answers
-- long waits at once (printing the timeout it was given) and stops the process
-- on a negative one (an infinite wait).

local child = require "support.child"

local function run_child(code)
  return child.run(code, child.preload("polltimeout_preload"))
end

describe("poll timeouts", function()
  local cases = {
    {"a 30-day hwfota.core.poll reaches poll() as the longest int wait, not a negative one",
     seconds = 2592000, ms = 2147483647, events = true},
    {"a wait just below INT_MAX milliseconds is passed unchanged",
     seconds = 2000000, ms = 2000000000},
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local out, ok = run_child(([[
local core = require "hwfota.core"
print("events", core.poll({}, %d))
]]):format(c.seconds))
      assert.is_true(ok, out)
      assert.matches("poll%-timeout%-ms " .. c.ms, out)
      if c.events then
        assert.matches("events\t0", out)
        assert.not_matches("negative", out)
      end
    end)
  end
end)

describe("hwfota.core.poll misuse", function()
  it("raises on a ports table whose __len is negative (it never reaches poll())", function()
    local core = require "hwfota.core"
    local ports = setmetatable({}, {__len = function() return -1 end})
    local ok, err = pcall(core.poll, ports, 0)
    assert.is_false(ok)
    assert.matches("bad argument #1 to .*negative length", err)
  end)
end)
