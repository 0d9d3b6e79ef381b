--- Host processes to kill at a precise point (spec/support/flow_child.lua), for specs
-- that restart a host from its journal (spec/flow_journal_spec.lua and others).
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

-- What the simulator logged so far of hosts leaving and ports going down.
local function marks(s)
  return {closed = #s:select{ev = "host", what = "closed"},
          released = #s:select{ev = "host", what = "released"},
          down = #s:select{ev = "port", what = "down"}}
end

--- Wait (up to 2 s) until the simulator logs, since `before` (from `kill_at`), the
-- host event `what` ("closed": the killed host's pty closed; "released": its
-- exclusive flag cleared, with --release-dead-host) or its port going down (the
-- module reset meanwhile: the pty is gone). True when it did.
function M.wait_gone(s, before, what)
  local deadline = core.now() + 2
  while core.now() < deadline do
    if #s:select{ev = "host", what = what} > before[what] or
       #s:select{ev = "port", what = "down"} > before.down then return true end
    core.poll({}, 0.02)
  end
  return false
end

--- Run a child that stops at `hold`, SIGKILL it there, then wait (bounded) until
-- the simulator saw it go (`wait_gone` for `what`, default "released"; false: do
-- not wait). Returns the journal text at the kill, the child's output lines and
-- the simulator's marks before the kill (for `wait_gone`).
function M.kill_at(s, journal, hold, extra, what)
  local p, pid = M.child(s.path, journal, hold, extra)
  local lines, held = {}, false
  for line in p:lines() do
    lines[#lines + 1] = line
    if line == "hold " .. hold then held = true; break end
    if line:match("^report ") then break end
  end
  local before = marks(s)
  os.execute("kill -9 " .. pid)
  p:close()
  assert(held, ("the child never reached %s:\n%s"):format(hold, table.concat(lines, "\n")))
  if what ~= false then M.wait_gone(s, before, what or "released") end
  return sim.read_file(journal), lines, before
end

--- Run a child to its end; returns its whole output.
function M.finish(s, journal, extra)
  local p = M.child(s.path, journal, "-", extra)
  local out = p:read("a")
  p:close()
  return out
end

return M
