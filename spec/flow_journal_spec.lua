-- End to end against hwfota-sim: the host process is killed (SIGKILL) in every phase
-- and a new process resumes from the journal; it must finish "upgraded" with
-- AT^FWUP sent exactly once in the whole simulator log, and never re-download a
-- verified image. The host runs in a child lua5.4 (spec/support/flow_child.lua)
-- that stops at a precise point so the kill lands there.
local core = require "hwfota.core"
local sim = require "support.sim"

local LUA = os.getenv("LUA") or "lua5.4"
local CHILD = sim.top .. "/spec/support/flow_child.lua"

local function child(path, journal, hold)
  local cmd = ("exec %s %s %s %s %s 2>&1"):format(LUA, sim.sh_quote(CHILD), sim.sh_quote(path),
                                                 sim.sh_quote(journal), hold or "")
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber((p:read("l") or ""):match("^pid (%d+)$"))
  assert(pid, "child did not start")
  return p, pid
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end

-- Run a child that stops at `hold`; kill it there. Returns the journal at the kill
-- and the child's output lines.
local function kill_at(s, journal, hold)
  local p, pid = child(s.path, journal, hold)
  local lines, held = {}, false
  for line in p:lines() do
    lines[#lines + 1] = line
    if line == "hold " .. hold then held = true; break end
    if line:match("^report ") then break end
  end
  local released_before = #s:select{ev = "host", what = "released"}
  os.execute("kill -9 " .. pid)
  p:close()
  assert(held, ("the child never reached %s:\n%s"):format(hold, table.concat(lines, "\n")))
  return read_file(journal), lines, released_before
end

-- The simulator clears the dead host's exclusive flag within 50 ms (as a real USB
-- port does at once): wait for that when the child held the port open.
local function wait_released(s, before)
  local deadline = core.now() + 1
  while core.now() < deadline do
    if #s:select{ev = "host", what = "released"} > before then return true end
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
  {hold = "detect", held = true, journal = nil},
  {hold = "download", held = true, journal = {phase = "download", fwup_sent = "0"}},
  {hold = "decide_upgrade", held = true,
   journal = {phase = "decide_upgrade", fwup_sent = "0", image_verified = "1"}},
  {hold = "upgrade", held = true, journal = {fwup_sent = "1"}},
  {hold = "reboot", held = false, journal = {phase = "reboot", fwup_sent = "1"},
   args = {"--reset-gap", "20"}},     -- the port is still away when the new host starts
  {hold = "verify", held = true, journal = {phase = "reboot", fwup_sent = "1"}},
}

describe("flow: host killed and restarted from the journal", function()
  local s
  after_each(function() if s then s:stop(); s = nil end end)

  for _, c in ipairs(CASES) do
    it(("killed in %s: the new process finishes upgraded, AT^FWUP once"):format(c.hold), function()
      local args = {"--time-scale", "0.03"}
      for _, a in ipairs(c.args or {}) do args[#args + 1] = a end
      s = sim.start(args)
      local journal = s.dir .. "/journal"
      local jtext, _, released_before = kill_at(s, journal, c.hold)
      if c.journal == nil then
        assert.is_nil(jtext, "no journal before the first journaled phase")
      else
        assert.is_string(jtext, "journal written")
        for k, v in pairs(c.journal) do
          assert.matches("\n" .. k .. "=" .. v .. "\n", jtext, 1, true)
        end
      end
      local fwup_at_kill = s:count("AT^FWUP")
      if c.held then
        assert.is_true(wait_released(s, released_before), "port released after the kill")
      end
      local out = finish(s, journal)
      assert.matches("\nreport upgraded ", "\n" .. out, 1, true)
      -- the whole log: one AT^FWUP over both processes
      assert.equal(1, s:count("AT^FWUP"), out)
      if fwup_at_kill == 1 then
        assert.is_nil(out:find("\nrun AT^FWUP", 1, true), "the new process never resends AT^FWUP")
      end
      -- a verified image is never downloaded again; one detection in all
      assert.equal(1, s:count("AT^FOTADET"))
      if c.hold ~= "detect" then
        assert.equal(1, s:count("AT^FOTADL=1"))
      end
      assert.same({11, 12, 30, 40, 50, 90}, s:states())
      assert.is_nil(read_file(journal), "journal removed after success")
    end)
  end
end)
