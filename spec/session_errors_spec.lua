-- Misuse of Session methods raises at the caller's line (error levels), so the
-- message points at the code to fix, not inside hwfota or one frame too far up.
local hwfota = require "hwfota"
local simh = require "support.sim"

describe("session misuse errors", function()
  local s, sim
  setup(function()
    sim = simh.start{"--time-scale", "0.05"}
    s = assert(hwfota.session(sim.path))
  end)
  teardown(function()
    if s then s:close() end
    if sim then sim:stop() end
  end)

  -- fn is a one-line function whose body calls the method: the error must name
  -- that line (where the misuse is), not a line inside hwfota or above fn.
  local function raised_at(fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    return debug.getinfo(fn, "S").linedefined, err
  end

  it("configure{apn = 42} names the option and blames the caller's line", function()
    local line, err = raised_at(function() s:configure{apn = 42} end)
    assert.matches("bad option 'apn' %(string expected, got number%)", err)
    assert.matches("session_errors_spec%.lua:" .. line .. ":", err)
  end)

  it("configure{bogus = 1} blames the caller's line too", function()
    local line, err = raised_at(function() s:configure{bogus = 1} end)
    assert.matches("bad option 'bogus'", err)
    assert.matches("session_errors_spec%.lua:" .. line .. ":", err)
  end)
end)
