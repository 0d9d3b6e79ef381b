-- The supported-model table as real ATI output varies (issue 11.5): the simulator's
-- --model plays each Model: line, --version-from the running firmware. A run that
-- passes the model check goes on to detection (here: no new version, exit early);
-- one that fails it ends EUNSUPPORTED before any FOTA command.
local hwfota = require "hwfota"
local sim = require "support.sim"

local SCALE = "0.03"

local function run_on(model, from, extra, sim_args)
  local args = {"--time-scale", SCALE, "--model", model, "--version-from", from,
                "--no-new-version"}
  for _, a in ipairs(sim_args or {}) do args[#args + 1] = a end
  local s = sim.start(args)
  local ok, report = pcall(hwfota.run, s.path, {}, sim.opts(extra))
  local fota = 0
  for _, c in ipairs(s:commands()) do if c:find("FOTA", 1, true) then fota = fota + 1 end end
  s:stop()
  assert(ok, report)
  return report, fota
end

describe("model table: ATI model strings of the supported modules pass", function()
  -- {Model: line, running firmware}: each at (or above) its row's minimum
  local PASS = {
    {"MU509", "12.815.03.01.00"},
    {"MU509-b", "12.815.03.01.00"},
    {"MU509-g", "12.815.03.01.00"},
    {"mu509-B", "12.815.03.05.00"},
    {"MU509-c", "11.815.00.78.00"},
    {"MU509", "11.815.00.78.00"},          -- 11.x firmware: the MU509-c row
    {"MU609", "12.105.29.00.00"},
    {"MU609-b", "12.105.29.00.00"},
    {"MU609 (mini PCIE)", "12.105.29.00.00"},
    {"MU609 (AT&T Special)", "12.107.08.05.457"},
    {"AT&T mini PCIE Special", "12.107.07.05.457"},
    {"MU609", "12.107.07.05.457"},         -- AT&T firmware family, variant not named
  }
  for _, c in ipairs(PASS) do
    it(("%q on %s"):format(c[1], c[2]), function()
      local r, fota = run_on(c[1], c[2])
      assert.equal("no_new_version", r.status, r.message)
      assert.is_true(fota > 0, "FOTA commands sent")
    end)
  end
end)

describe("model table: below the minimum, or not in the table", function()
  local FAIL = {
    {"MU509-b", "12.815.03.00.99", "below 12.815.03.01.00"},
    {"MU509", "12.815.01.03.00", "below 12.815.03.01.00"},   -- the seed's demo version
    {"MU509-c", "11.815.00.77.00", "below 11.815.00.78.00"},
    {"MU609", "12.105.28.00.00", "below 12.105.29.00.00"},
    {"MU609 (AT&T Special)", "12.107.07.05.457", "below 12.107.08.05.457"},
    {"MU609 (AT&T Special)", "12.105.29.00.00", "below 12.107.08.05.457"},
    {"MU709", "11.0.0.0.0", "not in the FOTA support table"},
  }
  for _, c in ipairs(FAIL) do
    it(("%q on %s is refused before any FOTA command"):format(c[1], c[2]), function()
      local r, fota = run_on(c[1], c[2])
      assert.equal("failed", r.status)
      assert.equal("EUNSUPPORTED", r.code)
      assert.matches(c[3], r.message, 1, true)
      assert.matches("models", r.message, 1, true)    -- says how to extend the table
      assert.equal(0, fota)
    end)
  end
end)

describe("model table: the integrator extends it at run time (models = {...})", function()
  it("a model not in the table runs with its row", function()
    local r, fota = run_on("MU709-s", "11.1.0.0.0", {models = {MU709 = "11.0.0.0.0"}})
    assert.equal("no_new_version", r.status, r.message)
    assert.is_true(fota > 0)
  end)

  it("its row's minimum is enforced", function()
    local r, fota = run_on("MU709", "10.9.0.0.0", {models = {MU709 = "11.0.0.0.0"}})
    assert.equal("EUNSUPPORTED", r.code)
    assert.matches("below 11.0.0.0.0", r.message, 1, true)
    assert.equal(0, fota)
  end)

  it("a row overrides the built-in table (the seed's demo versions)", function()
    local r = run_on("MU509", "12.815.01.03.00", {models = {MU509 = "12.815.01.03.00"}})
    assert.equal("no_new_version", r.status, r.message)
  end)

  it("the longest matching key wins", function()
    local r = run_on("MU709-s", "11.5.0.0.0", {models = {MU709 = "11.0.0.0.0", ["MU709-s"] = "12.0.0.0.0"}})
    assert.equal("EUNSUPPORTED", r.code)
    assert.matches("below 12.0.0.0.0", r.message, 1, true)
  end)
end)

describe("model table: the whole flow on a MU609 variant", function()
  it("upgrades \"MU609 (mini PCIE)\" without skip_model_check", function()
    local s = sim.start{"--time-scale", SCALE, "--model", "MU609 (mini PCIE)",
                        "--version-from", "12.105.29.00.00", "--version-to", "12.105.30.00.00"}
    local ok, r = pcall(hwfota.run, s.path, {}, sim.opts())
    s:stop()
    assert(ok, r)
    assert.equal("upgraded", r.status, r.message)
    assert.equal("12.105.30.00.00", r.to)
  end)
end)

describe("hwfota.core.supported_model", function()
  local core = require "hwfota.core"
  it("matches the family and uses the firmware family", function()
    assert.equal("12.815.03.01.00", (core.supported_model("MU509")))
    assert.equal("11.815.00.78.00", (core.supported_model("MU509", "11.815.00.80.00")))
    local min, row = core.supported_model("MU609", "12.107.08.05.460")
    assert.equal("12.107.07.05.457", min)
    assert.equal("MU609 (AT&T mini PCIe special)", row)
    assert.is_nil((core.supported_model("ME909")))
  end)
end)
