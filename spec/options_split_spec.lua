-- hwfota.options.split: the state machine's part of an options table is shared by
-- the runs made with that table (one copy for 1,000 modules, not one per run), and
-- made again as soon as the table changed.
local options = require "hwfota.options"

describe("options.split", function()
  it("separates the session's own options from the state machine's", function()
    local o = options.split{journal = "/tmp/j", command_timeout = 5, apn = "a", force = true}
    assert.equal("/tmp/j", o.journal)
    assert.equal(5, o.command_timeout)
    assert.same({apn = "a", force = true}, o.fsm)
    assert.same({}, options.split(nil).fsm)
  end)

  it("shares the state machine's part between runs of one options table", function()
    local opts = {apn = "a", mode = {auto_upgrade = true}, trace = print}
    local a, b = options.split(opts), options.split(opts)
    assert.are_not.equal(a, b)              -- each run has its own table (owner, hooks)
    assert.equal(a.fsm, b.fsm)
    assert.equal(opts.mode, a.fsm.mode)     -- shallow, as before
    assert.is_nil(a.fsm.trace)
  end)

  it("makes it again when the options table changed", function()
    local opts = {apn = "a", force = true}
    local first = options.split(opts).fsm
    opts.apn = "b"
    local second = options.split(opts).fsm
    assert.are_not.equal(first, second)
    assert.equal("b", second.apn)
    assert.equal("a", first.apn)            -- what an earlier run got stays as it was
    opts.force = nil
    local third = options.split(opts).fsm
    assert.same({apn = "b"}, third)
    opts.read_imei = false
    assert.same({apn = "b", read_imei = false}, options.split(opts).fsm)
    opts.journal = "/tmp/x"                 -- not the machine's: the part stays
    local fourth = options.split(opts).fsm
    assert.equal(fourth, options.split(opts).fsm)
    assert.same({apn = "b", read_imei = false}, fourth)
  end)
end)

describe("options.check", function()
  local core = require "hwfota.core"
  local real = core.fota_new
  local built
  before_each(function()
    built = 0
    core.fota_new = function(...) built = built + 1; return real(...) end
  end)
  after_each(function() core.fota_new = real end)

  it("builds a machine to check one options table once, not once per run", function()
    local opts = {apn = "a", poll_interval = 5, journal = "/tmp/j"}
    assert.is_true(options.check(opts, 1))
    assert.is_true(options.check(opts, 1))
    assert.equal(1, built)
    opts.poll_interval = 6                  -- changed: checked again
    assert.is_true(options.check(opts, 1))
    assert.equal(2, built)
    opts.poll_interval = -1                 -- and refused
    local ok, msg, code = options.check(opts, 1)
    assert.is_nil(ok)
    assert.equal("EINVAL", code)
    assert.is_string(msg)
    local ok2, _, code2 = options.check(opts, 1)   -- refused every time, never cached
    assert.is_nil(ok2)
    assert.equal("EINVAL", code2)
    assert.equal(4, built)
  end)
end)
