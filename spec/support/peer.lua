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

return M
