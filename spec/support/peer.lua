--- Test helper: start build/support/ptypeer with a script and hand back its pty.
-- local peer = require "support.peer"
-- local p = peer.start[[
-- echo on
-- expect AT+GMR
-- send 12.815.01.03.00
-- send OK
-- ]]
-- ... hwfota.open(p.path) ...
-- assert(p:finish())   -- true when the script ran to its end; else false, stderr text
local M = {}

local top = os.getenv("HWFOTA_TOP") or "."

local function tmpname()
  local n = os.tmpname()
  return n
end

function M.start(script)
  local sfile = tmpname()
  local f = assert(io.open(sfile, "w"))
  f:write(script)
  f:close()
  local errfile = tmpname()
  local logfile = tmpname()
  local cmd = ("PTYPEER_LOG=%q %q %q 2>%q"):format(logfile, top .. "/build/support/ptypeer",
                                                  sfile, errfile)
  local proc = assert(io.popen(cmd, "r"))
  local first = proc:read("l")
  local path = first and first:match("^ready (%S+)$")
  assert(path, "ptypeer did not start: " .. tostring(first))
  local self = {path = path, proc = proc, sfile = sfile, errfile = errfile, logfile = logfile}
  function self:finish()
    local ok = self.proc:close()
    local ef = io.open(self.errfile)
    local err = ef and ef:read("a") or ""
    if ef then ef:close() end
    os.remove(self.sfile); os.remove(self.errfile)
    return ok == true, err
  end
  --- Lines the host sent, in order.
  function self:received()
    local lf = io.open(self.logfile)
    local lines = {}
    if lf then
      for l in lf:lines() do lines[#lines + 1] = l end
      lf:close()
    end
    return lines
  end
  return self
end

--- Start a peer with `script` and open its pty with `hwfota.open(path, opts)`.
-- The scripts give the exact exchange, so the line sync at open (a resync query
-- before the first command) is off unless `opts.sync` says otherwise;
-- spec/sync_spec.lua tests it. Returns the peer and the port (asserts the open).
function M.open(script, opts)
  local hwfota = require "hwfota"
  local p = M.start(script)
  opts = opts or {}
  if opts.sync == nil then opts.sync = false end
  local port, msg, code = hwfota.open(p.path, opts)
  assert(port, ("open %s: %s (%s)"):format(p.path, tostring(msg), tostring(code)))
  return p, port
end

--- Wait for the peer's script to end; asserts that it ran to its end.
function M.finish(p)
  local ok, err = p:finish()
  assert(ok, "peer script failed: " .. tostring(err))
end

return M
