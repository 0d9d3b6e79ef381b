-- End to end against hwfota-sim: the seed's flow with exactly the seed's commands,
-- and the default flow (every check on) with and without automatic upgrade.
-- Each case checks the report AND what the simulator received (its JSON-lines log).
local hwfota = require "hwfota"
local sim = require "support.sim"

local SCALE = "0.03"
-- the seed log's demo versions (the simulator's defaults pass the supported table)
local SEED_FROM, SEED_TO = "12.815.01.03.00", "12.815.01.04.00"

-- The seed's log (../shared/huawei-fota-protocol.md, "The normal flow"), polls collapsed.
local SEED = {
  "AT+GMR",
  'AT^FOTACFG="1234","","",2',
  "AT^FOTAMODE=0,0,1,1",
  "AT^FOTASTATE?",
  "AT^FOTADET",
  "AT^FOTADL=1",
  "AT^FOTADLQ",
  -- the module upgrades and resets by itself (automatic upgrade); after the reset:
  "AT+GMR",
}

describe("flow: the seed's sequence", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  -- Both behaviours of a closed port: a real USB port loses what the module sends while
  -- no host holds it (drop, the simulator's default), a pty keeps it (keep).
  for _, closed in ipairs{"drop", "keep"} do
    it("sends exactly the seed's commands and ends upgraded with the new version (closed port: "
       .. closed .. ")", function()
      -- --boot-time 0.1: the 90 is sent right after the boot, usually before the host
      -- reopens the port: kept for it (keep) or lost (drop). The seed's own demo
      -- versions (below the supported table: skip_model_check, which also makes the
      -- version read the seed's AT+GMR)
      s = sim.start{"--time-scale", SCALE, "--boot-time", "0.1", "--closed-port", closed,
                    "--version-from", SEED_FROM, "--version-to", SEED_TO}
      local report = hwfota.run(s.path, {}, sim.opts{
        -- setup = {}: no ATE0 / AT+CMEE=2 after open and after the reset (driver.lua's
        -- `setup` is the list of commands sent after every (re)open); echo stays on and
        -- the AT engine drops it
        setup = {}, skip_model_check = true, check_prereq = false, read_imei = false,
        mode = {auto_query = false, auto_download = false, auto_upgrade = true, resume = true},
      })
      assert.equal("upgraded", report.status, report.message)
      assert.equal(SEED_FROM, report.from)
      assert.equal(SEED_TO, report.to)
      -- the seed polls AT^FOTADLQ once; we poll while downloading (collapsed here).
      -- Added to the seed's: the line sync after each open (AT+CMEE?, a side-effect-free
      -- query whose answer is recognisable: a previous process's late answer is never
      -- taken for the first command's; issue 11.6), before the first AT+GMR and after
      -- the reset.
      local expected = {"AT+CMEE?"}
      for i, c in ipairs(SEED) do
        if i == #SEED then expected[#expected + 1] = "AT+CMEE?" end
        expected[#expected + 1] = c
      end
      -- What the FSM adds for verify: after the reset it reads the version (the seed's
      -- AT+GMR), then AT^FOTASTATE? only when no ^FOTASTATE came since the port
      -- returned. When the 90 reached the host (kept in the port's buffer, or sent
      -- after the reopen) the sequence is the seed's exactly; when the module sent it
      -- while no host held the port (lost, as on a real USB port), the host asks.
      local lost90 = s:wait_for({ev = "lost", line = "^FOTASTATE: 90"}, 0)
      if lost90 then expected[#expected + 1] = "AT^FOTASTATE?" end
      if closed == "keep" then assert.is_nil(lost90, "keep loses nothing") end
      assert.same(expected, sim.squeeze(s:commands()))
      assert.is_true(s:count("AT^FOTADLQ") >= 1, "AT^FOTADLQ polled")
      assert.equal(0, s:count("AT^FWUP"))
      assert.same({11, 12, 30, 40, 50, 90}, s:states())
      assert.is_not_nil(s:wait_for({ev = "boot", version = SEED_TO}, 0))
    end)
  end
end)

describe("flow: default options (model, IMEI, SIM and registration checks)", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  -- the simulator's default versions pass the model check (the seed's are below it)
  local ARGS = {"--time-scale", SCALE}

  it("sends AT^FWUP exactly once, in state 40, when automatic upgrade is off", function()
    s = sim.start(ARGS)
    local events = {}
    local report = hwfota.run(s.path, {
      on_event = function(e) if e.event == "phase" then events[#events + 1] = e.phase end end,
    }, sim.opts())
    assert.equal("upgraded", report.status, report.message)
    assert.equal(sim.FROM, report.from)
    assert.equal(sim.TO, report.to)
    assert.equal("867530900000009", report.imei)
    assert.equal(1, s:count("AT^FWUP"))
    -- AT^FWUP only after the module said 40, and the 50 only after AT^FWUP
    local i40 = s:index{ev = "state", state = 40}
    local ifw = s:index{dir = "rx", line = "AT^FWUP"}
    local i50 = s:index{ev = "state", state = 50}
    assert.is_true(i40 > 0 and i40 < ifw and ifw < i50, "40 < FWUP < 50 in the log")
    local cmds = s:commands()
    assert.equal("AT+CMEE?", cmds[1])   -- the line sync at open
    assert.equal("ATE0", cmds[2])
    assert.equal("AT+CMEE=2", cmds[3])
    assert.equal("ATI", cmds[4])
    for _, c in ipairs{"AT+CPIN?", "AT+CREG?", "AT+CGREG?", "AT^FOTAMODE=0,0,0,1"} do
      assert.equal(1, s:count(c), c)
    end
    -- the IMEI is read before and checked again after the reset
    assert.equal(2, s:count("AT+CGSN"))
    assert.same({"probe", "prepare", "configure", "detect", "decide_download", "download",
                 "downloaded", "decide_upgrade", "upgrade", "reboot", "verify"}, events)
  end)

  it("keeps a run of download-progress events in the report as its latest only", function()
    s = sim.start(ARGS)
    local polls = 0
    local report = hwfota.run(s.path, {on_progress = function() polls = polls + 1 end},
                              sim.opts())
    assert.equal("upgraded", report.status, report.message)
    assert.is_true(s:count("AT^FOTADLQ") >= 3 and polls >= 3, "several progress polls")
    local kept, last_kept = 0, nil
    for i, e in ipairs(report.events) do
      if e.event == "progress" then
        kept = kept + 1
        last_kept = e
        assert.is_true(i == 1 or report.events[i - 1].event ~= "progress",
                       "no two progress events in a row")
      end
    end
    assert.is_true(kept >= 1 and kept < polls, ("%d kept of %d"):format(kept, polls))
    -- the one kept is the last poll's (the download's progress never goes back)
    for _, e in ipairs(report.events) do
      if e.event == "progress" then assert.is_true(e.done <= last_kept.done) end
    end
  end)

  it("never sends AT^FWUP when automatic upgrade is on (the module upgrades itself)", function()
    s = sim.start(ARGS)
    local report = hwfota.run(s.path, {}, sim.opts{
      mode = {auto_query = false, auto_download = false, auto_upgrade = true, resume = true},
    })
    assert.equal("upgraded", report.status, report.message)
    assert.equal(sim.TO, report.to)
    assert.equal(0, s:count("AT^FWUP"))
    assert.equal(1, s:count("AT^FOTAMODE=0,0,1,1"))
    assert.same({11, 12, 30, 40, 50, 90}, s:states())
  end)

  it("refuses an unsupported firmware before touching FOTA (EUNSUPPORTED)", function()
    -- the seed's 12.815.01.03.00 is below the MU509-b minimum
    s = sim.start{"--time-scale", SCALE, "--version-from", SEED_FROM, "--version-to", SEED_TO}
    local report = hwfota.run(s.path, {}, sim.opts())
    assert.equal("failed", report.status)
    assert.equal("EUNSUPPORTED", report.code)
    assert.matches("option models", report.message, 1, true)   -- says how to extend the table
    for _, c in ipairs(s:commands()) do
      assert.is_nil(c:find("FOTA", 1, true), "no FOTA command: " .. c)
    end
  end)
end)
