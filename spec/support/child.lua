--- Test helper: run a Lua script in a child lua5.4 (it inherits LUA_PATH and
-- LUA_CPATH, so it loads the build tree's hwfota).
-- local child = require "support.child"
-- local out, ok = child.run(code, child.preload("babble_preload") .. "timeout 20 ")
local M = {}

local top = os.getenv("HWFOTA_TOP") or "."

--- `LD_PRELOAD=<build/support/lib> ` to put before the command. A preload
-- already in force (the ASan runtime, when the suite runs sanitized) stays first.
function M.preload(lib)
  local lib_path = top .. "/build/support/" .. lib
  local current = os.getenv("LD_PRELOAD")
  if current and current ~= "" then lib_path = current .. ":" .. lib_path end
  return ("LD_PRELOAD=%q "):format(lib_path)
end

--- Run `code`; `prefix` goes before the command (environment, a timeout(1)).
-- Returns what it printed (stdout and stderr together) and whether it exited 0.
function M.run(code, prefix)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(("%slua5.4 %q 2>&1"):format(prefix or "", name)))
  local out = p:read("a")
  local ok = p:close()
  os.remove(name)
  return out, ok == true
end

return M
