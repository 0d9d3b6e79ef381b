-- End to end against hwfota-sim (issue 11.3, guide 2.3.3): a module continues a
-- download pending in 31 only after AT^FOTAMODE enabled resumable transfer since its
-- boot. The simulator's default (--resume-needs-mode on) downloads from zero
-- otherwise, silently. hwfota sends the mode before every AT^FOTADL=1 since the port
-- last came back: after a power loss, after a host restart from the journal, and
-- in hwfota.run without a `mode` option. Proven against both simulator variants.
local hwfota = require "hwfota"
local core = require "hwfota.core"
local sim = require "support.sim"
local killable = require "support.killable"

-- Every AT^FOTADL=1 the module received follows an AT^FOTAMODE with resume on
-- received since the module last booted or its port last came back. Returns how
-- many AT^FOTADL=1 there were.
local function mode_before_each_download(s)
  local armed, n = false, 0
  for _, e in ipairs(s:read()) do
    if e.m == 0 then
      if e.ev == "boot" or (e.ev == "port" and e.what == "up") then
        armed = false
      elseif e.dir == "rx" and e.line:match("^AT%^FOTAMODE=%d,%d,%d,1") then
        armed = true
      elseif e.dir == "rx" and e.line == "AT^FOTADL=1" then
        n = n + 1
        assert.is_true(armed, ("AT^FOTADL=1 number %d without AT^FOTAMODE (resume on) "
                               .. "since the module's boot"):format(n))
      end
    end
  end
  return n
end

-- The download resumed where it stopped, never from zero.
local function resumed(s)
  assert.is_not_nil(s:wait_for({ev = "fault", fault = "power-loss"}, 0), "the power loss happened")
  assert.equal(0, #s:select{ev = "resume", what = "from-zero"}, "downloaded from zero again")
  assert.is_true(#s:select{ev = "resume", what = "continued"} >= 1, "resumed from 31")
end

local function no_mode_opts(extra)
  local o = sim.opts(extra)
  o.mode = nil
  return o
end

for _, variant in ipairs{"on", "off"} do
  describe(("flow: resume after a power loss (--resume-needs-mode %s)"):format(variant), function()
    local s
    after_each(function() if s then s:stop(); s = nil end end)

    local function start(extra)
      local args = {"--time-scale", "0.03", "--resume-needs-mode", variant}
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      s = sim.start(args)
    end

    it("with the caller's mode: AT^FOTAMODE again after the boot, then the resume", function()
      start{"--power-loss", "byte=40000"}
      local report = hwfota.run(s.path, {}, sim.opts{skip_model_check = true})
      assert.equal("upgraded", report.status, report.message)
      assert.equal(2, mode_before_each_download(s))
      resumed(s)
      assert.equal(2, s:count("AT^FOTAMODE=0,0,0,1"))   -- configure, and after the boot
      assert.equal(1, s:count("AT^FOTADET"))
      assert.equal(1, s:count("AT^FWUP"))
    end)

    it("hwfota.run without `mode`: AT^FOTAMODE=0,0,0,1 before each AT^FOTADL=1", function()
      start{"--power-loss", "byte=40000"}
      local report = hwfota.run(s.path, {}, no_mode_opts{skip_model_check = true})
      assert.equal("upgraded", report.status, report.message)
      assert.equal(2, mode_before_each_download(s))
      resumed(s)
      assert.equal(2, s:count("AT^FOTAMODE=0,0,0,1"))
      assert.equal(1, s:count("AT^FWUP"))
    end)
  end)
end

describe("flow: the mode hwfota.run sends without `mode`", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  it("auto_upgrade_ok and no on_downloaded: 0,0,1,1, the module upgrades itself", function()
    s = sim.start{"--time-scale", "0.03"}
    local report = hwfota.run(s.path, {}, no_mode_opts{skip_model_check = true,
                                                       auto_upgrade_ok = true})
    assert.equal("upgraded", report.status, report.message)
    assert.equal(1, mode_before_each_download(s))
    assert.equal(1, s:count("AT^FOTAMODE=0,0,1,1"))
    assert.equal(0, s:count("AT^FWUP"))
  end)

  it("auto_upgrade_ok with an on_downloaded hook: 0,0,0,1, the policy is asked", function()
    s = sim.start{"--time-scale", "0.03"}
    local asked = 0
    local report = hwfota.run(s.path, {on_downloaded = function() asked = asked + 1; return "upgrade" end},
                              no_mode_opts{skip_model_check = true, auto_upgrade_ok = true})
    assert.equal("upgraded", report.status, report.message)
    assert.equal(1, asked)
    assert.equal(1, s:count("AT^FOTAMODE=0,0,0,1"))
    assert.equal(0, s:count("AT^FOTAMODE=0,0,1,1"))
    assert.equal(1, s:count("AT^FWUP"))
  end)
end)

describe("flow: host killed in the download, module power loss, new host from the journal", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  for _, extra in ipairs{{}, {"mode=none"}} do
    it(("resumes with AT^FOTAMODE first (%s)"):format(extra[1] or "mode option"), function()
      s = sim.start{"--time-scale", "0.1", "--power-loss", "byte=60000"}
      local journal = s.dir .. "/journal"
      local jtext = killable.kill_at(s, journal, "download", extra)
      assert.matches("\nphase=download\n", jtext, 1, true)
      -- the module loses power while no host runs, and boots in 31
      assert.is_not_nil(s:wait_for({ev = "fault", fault = "power-loss"}, 10), "power loss")
      local lost = s:index{ev = "fault", fault = "power-loss"}
      assert.is_not_nil(s:wait_after(lost, {ev = "port", what = "up"}, 10),
                        "the port came back after the power loss")
      local extra2 = {"settle=0.5"}
      for _, a in ipairs(extra) do extra2[#extra2 + 1] = a end
      local out = killable.finish(s, journal, extra2)
      assert.matches("\nreport upgraded ", "\n" .. out, 1, true)
      assert.equal(2, mode_before_each_download(s))
      resumed(s)
      assert.equal(1, s:count("AT^FOTADET"))
      assert.equal(1, s:count("AT^FWUP"))
      assert.is_nil(sim.read_file(journal), "journal removed after success")
    end)
  end
end)

describe("session: s:resume() between steps after a power loss", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  it("sends the mode (resume on) before AT^FOTADL=1: the download continues", function()
    s = sim.start{"--time-scale", "0.03", "--power-loss", "byte=30000"}
    local ses = assert(hwfota.session(s.path, sim.opts{skip_model_check = true}))
    assert.is_table(ses:detect())
    local port = ses:port_object()
    assert(port:command("AT^FOTADL=1", {expect = "none"}))
    assert.is_not_nil(s:wait_for({ev = "fault", fault = "power-loss"}, 10), "power loss")
    local lost = s:index{ev = "fault", fault = "power-loss"}
    local deadline = core.now() + 10
    s:wait_after(lost, {ev = "port", what = "up"}, 10)
    while not port:is_lost() and core.now() < deadline do core.poll({port}, 0.05) end
    assert.is_true(port:is_lost(), "the host saw the port go")
    local back
    repeat
      core.poll({}, 0.05)
      back = port:reopen()
    until back or core.now() > deadline
    assert.is_truthy(back, "the port came back")
    assert.is_not_nil(s:wait_for({ev = "state", state = 31}, 5))
    assert(ses:resume())
    -- the simulator logs the resume after its OK went out: wait for the line, not race it
    assert.is_not_nil(s:wait_for({ev = "resume"}, 5), "the simulator logged the resume")
    assert.equal(2, mode_before_each_download(s))
    assert.equal(1, #s:select{ev = "resume", what = "continued"})
    assert.equal(0, #s:select{ev = "resume", what = "from-zero"})
    ses:close()
  end)
end)
