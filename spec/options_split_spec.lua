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
