-- End to end against hwfota-sim: the host process is killed (SIGKILL) in every phase
-- and a new process resumes from the journal; it must finish "upgraded" with
-- AT^FWUP sent exactly once in the whole simulator log, and never re-download a
-- verified image. The host runs in a child lua5.4 (spec/support/flow_child.lua)
-- that stops at a precise point so the kill lands there.
local sim = require "support.sim"
local killable = require "support.killable"

local read_file = sim.read_file

local CASES = {
  -- the module finds the version while no host runs: the new host sees a bare 12
  -- (AT^FOTASTATE? does not repeat the version), so it stops and queries again
  {hold = "detect", held = true, journal = nil, wait_state = 12, detects = 2},
  {hold = "download", held = true, journal = {phase = "download", fwup_sent = "0"}},
  {hold = "decide_upgrade", held = true,
   journal = {phase = "decide_upgrade", fwup_sent = "0", image_verified = "1"}},
  {hold = "upgrade", held = true, journal = {fwup_sent = "1"}},
  {hold = "reboot", held = false, journal = {phase = "reboot", fwup_sent = "1"},
   args = {"--reset-gap", "20"}},     -- the port is still away when the new host starts
  {hold = "verify", held = true, journal = {phase = "reboot", fwup_sent = "1"}},
  -- the port vanishes while the new process sets it up (ATE0, AT+CMEE=2) or probes
  -- (AT+CGSN): it waits for it instead of failing. The first process does not send
  -- the command, so the simulator's one-shot trigger hits the second one.
  {name = "download, port lost in the new host's setup", hold = "download", held = true,
   first = "setup=ATE0", journal = {phase = "download"},
   args = {"--port-gone", "cmd=CMEE=2", "--port-gone-for", "20"}},
  -- (the first process reads no IMEI; its journal gets the module's IMEI afterwards, as
  -- a read_imei run writes it: a journal naming no module cannot be resumed, EIDENTITY)
  {name = "download, port lost in the new host's probe", hold = "download", held = true,
   first = "read_imei=0", add_imei = true, journal = {phase = "download"},
   args = {"--port-gone", "cmd=CGSN", "--port-gone-for", "20"}},
}

describe("flow: host killed and restarted from the journal", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  for _, c in ipairs(CASES) do
    it(("killed in %s: the new process finishes upgraded, AT^FWUP once"):format(c.name or c.hold), function()
      -- keep: with drop (the simulator's default) a host is seen only by polling the
      -- master for EIO every 20 ms, and the one killed right after the reopen (verify)
      -- may leave no {"ev":"host","what":"closed"} for killable.wait_gone below to see
      local args = {"--time-scale", "0.03", "--closed-port", "keep"}
      for _, a in ipairs(c.args or {}) do args[#args + 1] = a end
      s = sim.start(args)
      local journal = s.dir .. "/journal"
      local jtext, _, closed_before = killable.kill_at(s, journal, c.hold,
                                                       c.first and {c.first}, false)
      if c.journal == nil then
        assert.is_nil(jtext, "no journal before the first journaled phase")
      else
        assert.is_string(jtext, "journal written")
        for k, v in pairs(c.journal) do
          assert.matches("\n" .. k .. "=" .. v .. "\n", jtext, 1, true)
        end
      end
      if c.add_imei then
        local imei = s:select({ev = "boot"})[1].imei
        local f = assert(io.open(journal, "wb"))
        f:write((jtext:gsub("\nimei=\n", "\nimei=" .. imei .. "\n")))
        f:close()
      end
      if c.wait_state then
        assert.is_not_nil(s:wait_for({ev = "state", state = c.wait_state}, 5))
      end
      local fwup_at_kill = s:count("AT^FWUP")
      if c.held then
        assert.is_true(killable.wait_gone(s, closed_before, "closed"), "port closed by the kill")
      end
      local out = killable.finish(s, journal)
      assert.matches("\nreport upgraded ", "\n" .. out, 1, true)
      if c.held and c.hold ~= "upgrade" then
        -- the killed host's flag, still set: taken over by the new one, and said so
        -- (after "upgrade" the module's reset replaces the pty: no flag to find)
        assert.matches("\nstale stale_exclusive: ", "\n" .. out, 1, true)
      end
      if c.args and c.args[1] == "--port-gone" then
        assert.is_not_nil(s:wait_for({ev = "fault", fault = "port-gone"}, 0), "the fault fired")
      end
      -- the whole log: one AT^FWUP over both processes
      assert.equal(1, s:count("AT^FWUP"), out)
      if fwup_at_kill == 1 then
        assert.is_nil(out:find("\nrun AT^FWUP", 1, true), "the new process never resends AT^FWUP")
      end
      -- a verified image is never downloaded again; one detection in all
      assert.equal(c.detects or 1, s:count("AT^FOTADET"))
      assert.equal(c.detects and 1 or 0, s:count("AT^FOTADL=0"))
      if c.hold ~= "detect" then
        assert.equal(1, s:count("AT^FOTADL=1"))
      end
      if c.detects then
        assert.same({11, 12, 10, 11, 12, 30, 40, 50, 90}, s:states())
      else
        assert.same({11, 12, 30, 40, 50, 90}, s:states())
      end
      assert.is_nil(read_file(journal), "journal removed after success")
    end)
  end
end)
