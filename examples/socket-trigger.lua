#!/usr/bin/env lua5.4
--- socket-trigger.lua — start the FOTA flow on a command received on a local socket.
--
-- usage: lua5.4 examples/socket-trigger.lua PORT [--unix PATH | --tcp PORT]
--            [--token SECRET] [--once] [--journal FILE] [--allow-model MODEL=VERSION]
--
-- The FOTA application guide starts its flow "after the host application receives an
-- SMS or socket command". This is the socket half: a line-based listener on a unix
-- socket (default /var/run/hwfota.sock) or on TCP *loopback only* (127.0.0.1).
--
--   upgrade [SECRET]   start the flow (with --token, the secret must follow)
--                      -> "started" | "busy" | "error not authorised"
--   status             -> "idle last=<outcome> ..." | "running state=<n> progress=<p>%"
--   quit               -> "bye"; stop listening once no flow runs
--
-- e.g. `echo upgrade | socat - UNIX-CONNECT:/var/run/hwfota.sock`, or with BusyBox
-- `echo upgrade | nc 127.0.0.1 7788`.
--
-- Dependency: Lua has no sockets in its core; this uses LuaSocket (Debian
-- `lua-socket`, which ships `socket` and `socket.unix` for Lua 5.4; OpenWrt
-- `luasocket`). Access control: a unix socket is governed by its directory's and its
-- own permissions (chmod 600 right after bind; put it in a directory only its owner
-- can enter to close the short window before that); TCP is bound to 127.0.0.1 and
-- --token adds a shared secret.
--
-- The flow and the listener share hwfota's loop: the listener (hwfota.trigger.socket)
-- is a watcher on the socket, woken by a connection, never by a timer, so `status`
-- answers at once while the module downloads; the flow runs as a task, one at a time
-- (hwfota.trigger.once). --once exits after the first flow (for inetd-like use and the
-- specs).
-- Exit codes: 0 (last flow upgraded, or none ran), 1 failed, 2 usage, 3 no new
-- version, 5 deferred/rejected.
local hwfota = require "hwfota"
local policy = require "hwfota.policy"
local once = require "hwfota.trigger.once"
local trigger = require "hwfota.trigger.socket"
local ok_socket, socket = pcall(require, "socket")
if not ok_socket then
  io.stderr:write("socket-trigger.lua needs LuaSocket (Debian: lua-socket)\n")
  os.exit(1)
end

local function usage(msg)
  io.stderr:write((msg and ("socket-trigger.lua: " .. msg .. "\n") or "") ..
    "usage: socket-trigger.lua PORT [--unix PATH | --tcp PORT] [--token SECRET] [--once]\n" ..
    "                          [--journal FILE] [--allow-model MODEL=VERSION]\n")
  os.exit(2)
end

local o = {}
local i = 1
while i <= #arg do
  local a = arg[i]
  local function val() i = i + 1; return arg[i] or usage("missing value after " .. a) end
  if a == "--unix" then o.unix = val()
  elseif a == "--tcp" then o.tcp = tonumber(val()) or usage("--tcp needs a port number")
  elseif a == "--token" then o.token = val()
  elseif a == "--once" then o.once = true
  elseif a == "--journal" then o.journal = val()
  elseif a == "--allow-model" then   -- a row for the supported-model table (repeatable)
    local m, v = val():match("^(.-)=(.+)$")
    if not m or m == "" then usage("--allow-model needs MODEL=VERSION, e.g. MU709=11.0.0.0.0") end
    o.models = o.models or {}
    o.models[m] = v
  elseif a:sub(1, 1) == "-" then usage("unknown option " .. a)
  elseif not o.port then o.port = a
  else usage("too many arguments") end
  i = i + 1
end
if not o.port then usage() end
if o.unix and o.tcp then usage("--unix or --tcp, not both") end
if not o.tcp then o.unix = o.unix or "/var/run/hwfota.sock" end

local function log(fmt, ...)
  io.stdout:write(os.date("%H:%M:%S ") .. fmt:format(...) .. "\n")
  io.stdout:flush()
end

-- == Listening socket =================================================================
local server, err
if o.unix then
  local unix = require "socket.unix"
  os.remove(o.unix)                 -- a stale socket of an earlier run
  server = assert(unix.stream())
  local okb, berr = server:bind(o.unix)
  if not okb then usage(("cannot bind %s: %s"):format(o.unix, tostring(berr))) end
  -- only the owner may connect (Lua cannot set its umask: chmod right after bind)
  os.execute("chmod 600 '" .. o.unix:gsub("'", "'\\''") .. "'")
else
  server, err = socket.bind("127.0.0.1", o.tcp)
  if not server then usage(("cannot listen on 127.0.0.1:%d: %s"):format(o.tcp, tostring(err))) end
end
assert(server:listen(4))
log("listening on %s", o.unix or ("127.0.0.1:" .. o.tcp))

-- == The flow =========================================================================
local state = {last = "none", code = nil, progress = nil}

local flow_policy = policy.all{
  policy.gate{},     -- never the same version or a downgrade
  {on_downloaded = function() return "upgrade" end},
}
flow_policy.on_progress = function(p) state.progress = p.percent end
local base_event = flow_policy.on_event
flow_policy.on_event = function(e)
  base_event(e)
  if e.event == "state" then
    state.code = e.code
    log("state %d (%s)", e.code, e.name)
  end
end

local function flow()
  state.progress, state.code = nil, nil
  -- an offer left in 12 by someone else: drop it so that the gate sees the version
  local s = hwfota.session(o.port)
  local st = s and s:state()
  if st and st.code == 12 then s:cancel() end
  if s then s:close() end
  local r = hwfota.run(o.port, flow_policy, {
    journal = o.journal, models = o.models,
    mode = {auto_query = false, auto_download = false, auto_upgrade = false, resume = true},
  })
  state.report = r
  state.last = r.status
  if r.status == "upgraded" then
    log("upgraded and verified: %s -> %s", tostring(r.from), tostring(r.to))
  elseif r.status == "failed" then
    log("failed: %s (%s)", tostring(r.message), tostring(r.code))
  else
    log("%s %s", r.status, tostring(r.reason or ""))
  end
end

-- == The listener =====================================================================
local listener, quit
local runner = once.new(function()
  if o.once or quit then listener:close() end   -- the loop ends once nothing is left
end)

local function status()
  if runner:busy() then
    return ("running state=%s progress=%s%%"):format(tostring(state.code or "-"),
                                                     tostring(state.progress or 0))
  end
  local r = state.report or {}
  return ("idle last=%s from=%s to=%s code=%s"):format(state.last, tostring(r.from or "-"),
    tostring(r.to or "-"), tostring(r.code or "-"))
end

listener = trigger.listen(server, trigger.protocol{
  runner = runner, flow = flow, token = o.token, status = status,
  on_trigger = function() log("trigger received") end,
  quit = function()
    quit = true
    if not runner:busy() then listener:close() end
  end,
})

local failed = hwfota.loop()
server:close()
if o.unix then os.remove(o.unix) end
for _, t in ipairs(failed) do io.stderr:write(t.error, "\n") end
if #failed > 0 then os.exit(1) end
local rc = ({upgraded = 0, none = 0, failed = 1, no_new_version = 3, not_newer = 3})[state.last] or 5
os.exit(rc)
