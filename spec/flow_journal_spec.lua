-- End to end against hwfota-sim: the host process is killed (SIGKILL) in every phase
-- and a new process resumes from the journal; it must finish "upgraded" with
-- AT^FWUP sent exactly once in the whole simulator log, and never re-download a
-- verified image. The host runs in a child lua5.4 (spec/support/flow_child.lua)
-- that stops at a precise point so the kill lands there.
local core = require "hwfota.core"
local sim = require "support.sim"

local LUA = os.getenv("LUA") or "lua5.4"
local CHILD = sim.top .. "/spec/support/flow_child.lua"

local function child(path, journal, hold, extra)
  local cmd = ("exec %s %s %s %s %s %s 2>&1"):format(LUA, sim.sh_quote(CHILD), sim.sh_quote(path),
                                                    sim.sh_quote(journal), hold or "-",
                                                    extra or "")
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber((p:read("l") or ""):match("^pid (%d+)$"))
  assert(pid, "child did not start")
  return p, pid
end

local read_file = sim.read_file

-- Run a child that stops at `hold`; kill it there. Returns the journal at the kill
-- and the child's output lines.
local function kill_at(s, journal, hold, extra)
  local p, pid = child(s.path, journal, hold, extra)
  local lines, held = {}, false
  for line in p:lines() do
    lines[#lines + 1] = line
    if line == "hold " .. hold then held = true; break end
    if line:match("^report ") then break end
  end
  local before = {#s:select{ev = "host", what = "closed"}, #s:select{ev = "port", what = "down"}}
  os.execute("kill -9 " .. pid)
  p:close()
  assert(held, ("the child never reached %s:\n%s"):format(hold, table.concat(lines, "\n")))
  return read_file(journal), lines, before
end

-- The killed child's port closed (the simulator logs every close of its pty's
-- slave), unless the module reset meanwhile (the pty the child held is gone then).
-- The child's exclusive flag stays on the pty (--release-dead-host is off): the
-- next host must recognise it as stale and take the port over.
local function wait_closed(s, before)
  local deadline = core.now() + 2
  while core.now() < deadline do
    if #s:select{ev = "host", what = "closed"} > before[1] or
       #s:select{ev = "port", what = "down"} > before[2] then return true end
    core.poll({}, 0.02)
  end
  return false
end

local function finish(s, journal)
  local p = child(s.path, journal)
  local out = p:read("a")
  p:close()
  return out
end

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
      -- may leave no {"ev":"host","what":"closed"} for wait_closed below to see
      local args = {"--time-scale", "0.03", "--closed-port", "keep"}
      for _, a in ipairs(c.args or {}) do args[#args + 1] = a end
      s = sim.start(args)
      local journal = s.dir .. "/journal"
      local jtext, _, closed_before = kill_at(s, journal, c.hold, c.first)
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
        assert.is_true(wait_closed(s, closed_before), "port closed by the kill")
      end
      local out = finish(s, journal)
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
