--- Host processes to kill at a precise point (spec/support/flow_child.lua), for specs
-- that restart a host from its journal. The same steps as spec/flow_journal_spec.lua.
local core = require "hwfota.core"
local sim = require "support.sim"

local M = {}

local LUA = os.getenv("LUA") or "lua5.4"
local CHILD = sim.top .. "/spec/support/flow_child.lua"

--- Start a child host on `path` with `journal`, stopping at `hold` ("-": none);
-- `extra` (array) are its key=value overrides. Returns the pipe and the pid.
function M.child(path, journal, hold, extra)
  local parts = {"exec", LUA, sim.sh_quote(CHILD), sim.sh_quote(path), sim.sh_quote(journal),
                 hold or "-"}
  for _, a in ipairs(extra or {}) do parts[#parts + 1] = sim.sh_quote(a) end
  local p = assert(io.popen(table.concat(parts, " ") .. " 2>&1", "r"))
  local pid = tonumber((p:read("l") or ""):match("^pid (%d+)$"))
  assert(pid, "child did not start")
  return p, pid
end

--- Run a child that stops at `hold`, SIGKILL it there. Returns the journal text at
-- the kill and the child's output lines.
function M.kill_at(s, journal, hold, extra)
  local p, pid = M.child(s.path, journal, hold, extra)
  local lines, held = {}, false
  for line in p:lines() do
    lines[#lines + 1] = line
    if line == "hold " .. hold then held = true; break end
    if line:match("^report ") then break end
  end
  local before = {#s:select{ev = "host", what = "released"}, #s:select{ev = "port", what = "down"}}
  os.execute("kill -9 " .. pid)
  p:close()
  assert(held, ("the child never reached %s:\n%s"):format(hold, table.concat(lines, "\n")))
  -- the simulator clears the dead host's exclusive flag within 50 ms, unless the
  -- module reset meanwhile (the pty is gone then)
  local deadline = core.now() + 2
  while core.now() < deadline do
    if #s:select{ev = "host", what = "released"} > before[1] or
       #s:select{ev = "port", what = "down"} > before[2] then break end
    core.poll({}, 0.02)
  end
  return sim.read_file(journal), lines
end

--- Run a child to its end; returns its whole output.
function M.finish(s, journal, extra)
  local p = M.child(s.path, journal, "-", extra)
  local out = p:read("a")
  p:close()
  return out
end

return M
