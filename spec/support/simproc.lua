--- Test helper: run build/hwfota-sim as a child process for a spec.
-- local simproc = require "support.simproc"
-- local sim = simproc.start{"--no-new-version"}   -- extra options; --dir and
--                                                  -- --time-scale 0.05 are added
-- ... sim.path (the module's port), sim.dir ...
-- sim:stop()                                       -- SIGTERM, wait, remove the dir
-- (spec/support/sim.lua, written separately, serves the flow specs; this one is
-- the CLI's and the examples'.)
local M = {}

local top = os.getenv("HWFOTA_TOP") or "."

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Start the simulator; returns {path =, dir =, pid =, log =, stop = fn}.
function M.start(extra)
  local dir = assert(io.popen("mktemp -d /tmp/hwfota-spec.XXXXXX")):read("l")
  local args = {"--dir", dir, "--time-scale", "0.05", "--log", dir .. "/sim.log"}
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = q(a) end
  local bin = os.getenv("HWFOTA_SIM") or (top .. "/build/hwfota-sim")
  -- The shell prints the simulator's pid, then exec's it: its stdout is our pipe.
  local cmd = ("sh -c 'echo $$; exec \"$0\" \"$@\"' %s %s 2>%s"):format(q(bin),
    table.concat(quoted, " "), q(dir .. "/sim.err"))
  local proc = assert(io.popen(cmd, "r"))
  local pid = tonumber(proc:read("l"))
  local first = proc:read("l")
  local path = first and first:match("^ready (%S+)")
  if not path then
    local ef = io.open(dir .. "/sim.err")
    local err = ef and ef:read("a") or ""
    if ef then ef:close() end
    proc:close()
    os.execute("rm -rf " .. q(dir))
    error("hwfota-sim did not start: " .. tostring(first) .. " " .. err, 2)
  end
  local self = {path = path, dir = dir, pid = pid, log = dir .. "/sim.log", proc = proc}
  function self:stop()
    if self.stopped then return end
    self.stopped = true
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.proc:close()
    os.execute("rm -rf " .. q(self.dir))
  end
  return self
end

--- Quote a string for sh.
M.quote = q

return M
