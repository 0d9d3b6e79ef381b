#!/usr/bin/env lua5.4
--- status.lua — print a module's model, firmware, FOTA state and download progress.
--
-- usage: lua5.4 examples/status.lua PORT
--
-- Changes nothing on the module: ATI (identity), AT^FOTASTATE? (state) and, while a
-- download is pending or done, AT^FOTADLQ (bytes per file). Exit 0, 1 when the module
-- does not answer, 2 on a usage error. `hwfota status` does the same with --json.
-- Against the simulator: build/hwfota-sim --time-scale 0.05 & lua5.4 examples/status.lua
-- /tmp/hwfota-sim/ttyUSB2 (with LUA_PATH/LUA_CPATH as in README.md).
local hwfota = require "hwfota"

local path = arg[1]
if not path or arg[2] or path:sub(1, 1) == "-" then
  io.stderr:write("usage: status.lua PORT\n")
  os.exit(2)
end

-- Say what failed, close the session (when open) and exit 1.
local function fail(s, why)
  io.stderr:write("status.lua: " .. why .. "\n")
  if s then s:close() end
  os.exit(1)
end

local s, msg = hwfota.session(path)
if not s then fail(nil, ("cannot open %s: %s"):format(path, tostring(msg))) end

local info, err = s:info()
if not info then fail(s, "the module does not answer: " .. tostring(err)) end
print("Model:       " .. (info.model or "?"))
print("Firmware:    " .. (info.revision or "?"))
print("IMEI:        " .. (info.imei or "?"))

local st, serr = s:state()
if not st then fail(s, "cannot read the FOTA state: " .. tostring(serr)) end
print(("FOTA state:  %d (%s)"):format(st.code, st.name))

-- 30 downloading, 31 paused (pending), 40 downloaded: the module knows the progress.
if st.code == 30 or st.code == 31 or st.code == 40 then
  local port = s:port_object()
  local res = port:command("AT^FOTADLQ", {prefix = "^FOTADLQ:"})
  local done, total = 0, 0
  for _, line in ipairs(res and res.lines or {}) do
    local f = hwfota.core.parse_fotadlq(line)
    if f then
      print(("  file %d %-8s %d / %d bytes"):format(f.index, f.name, f.done, f.total))
      done, total = done + f.done, total + f.total
    end
  end
  if total > 0 then
    print(("Download:    %d%% (%d / %d bytes)"):format(math.min(100, done * 100 // total), done, total))
  end
end
s:close()
