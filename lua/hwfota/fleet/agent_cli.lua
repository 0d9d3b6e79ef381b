--- hwfota.fleet.agent_cli: the `hwfota agent` command (`hwfota.cli` hands it the
-- arguments after `agent`).
--
--     hwfota agent --broker HOST:PORT --username U --password-file F
--                  [--cafile F --certfile F --keyfile F] [--router-id ID]
--                  [--site S --country C --location L] [--policies DIR]
--                  --journal PATH --port PATH [--allow OPS] [--poll S] [--apn APN]
--                  [--reboot-timeout S] [--allow-model MODEL=VERSION]
--
-- Connects to the broker (`hwfota.fleet.mqtt_bus`: libmosquitto on hwfota's poll
-- loop), runs a `hwfota.fleet.agent` on the module until SIGTERM or SIGINT, then
-- publishes `online=false` and closes. The password is read from a file, never
-- taken on the command line. Like `hwfota.cli.main`, `main` never calls
-- `os.exit`: it returns the exit code.
--
-- @module hwfota.fleet.agent_cli

local M = {}

--- Exit codes of `hwfota agent`.
-- @table EXIT
-- @field OK 0: stopped by SIGTERM/SIGINT after a clean goodbye
-- @field FAILURE 1: cannot start (broker library missing, ledger unusable ...)
-- @field USAGE 2: usage or configuration error
M.EXIT = {OK = 0, FAILURE = 1, USAGE = 2}
local EXIT = M.EXIT

M.HELP = [[
usage: hwfota agent --broker HOST:PORT --journal PATH --port PATH [options]

Runs the fleet agent on this router: connects to an MQTT broker, publishes the
module's inventory (model, IMEI, firmware, FOTA state, site, country, location),
its status and an online flag (retained, under hwfota/<router-id>/), and runs the
commands of hwfota/<router-id>/cmd and hwfota/fleet/cmd (check, download, upgrade
[to a version], policy NAME, cancel, report) with the FOTA flow, under the journal.
A command while one runs is refused ("busy"); a command id seen before is refused
("duplicate") and never run twice (the ids are kept in PATH.agent, part of the
journal). Runs until SIGTERM or SIGINT, then publishes online=false and stops.

Options:
  --broker HOST:PORT    the MQTT broker (required; port 1883, 8883 with TLS)
  --username U          broker user name
  --password-file F     file whose first line is the broker password (never give
                        the password on the command line)
  --cafile F            TLS: CA certificate of the broker (turns TLS on)
  --certfile F          TLS: client certificate (with --keyfile)
  --keyfile F           TLS: client key
  --router-id ID        this router's id, 1-64 of A-Z a-z 0-9 _ - (default: the
                        host name)
  --site S, --country C, --location L
                        published in the inventory; selectors of fleet commands
  --policies DIR        directory of named policies: "policy NAME" runs DIR/NAME.lua
                        (NAME: 1-64 of A-Z a-z 0-9 _ -; without DIR, refused)
  --allow OPS           comma list of the ops this agent runs (default all:
                        check,download,upgrade,policy,cancel,report)
  --journal PATH        the FOTA journal (required); the command ledger is PATH.agent
  --port PATH           the module's AT port (required)
  --apn APN             FOTA APN (AT^FOTACFG); without it the module's own setting
  --poll S              state and progress polling interval of the flow (default 3)
  --reboot-timeout S    longest wait for the module after its reset (default 180)
  --allow-model M=V     add a model row to the support table (repeatable)
  --skip-model-check    no model/firmware gate (AT+GMR instead of ATI)
  --help                this text

Exit codes: 0 stopped by SIGTERM/SIGINT, 1 cannot start (no MQTT support: build
with libmosquitto-dev; ledger or password file unusable), 2 usage error.
]]

-- name -> {key, takes_value, many}
local OPTIONS = {
  ["--broker"] = {"broker", true}, ["--username"] = {"username", true},
  ["--password-file"] = {"password_file", true}, ["--cafile"] = {"cafile", true},
  ["--certfile"] = {"certfile", true}, ["--keyfile"] = {"keyfile", true},
  ["--router-id"] = {"router_id", true}, ["--site"] = {"site", true},
  ["--country"] = {"country", true}, ["--location"] = {"location", true},
  ["--policies"] = {"policies", true}, ["--allow"] = {"allow", true},
  ["--journal"] = {"journal", true}, ["--port"] = {"port", true}, ["--apn"] = {"apn", true},
  ["--poll"] = {"poll", true}, ["--reboot-timeout"] = {"reboot_timeout", true},
  ["--allow-model"] = {"allow_model", true, true},
  ["--skip-model-check"] = {"skip_model_check", false},
  ["--help"] = {"help", false}, ["-h"] = {"help", false},
}

local function parse(args)
  local o, i = {}, 1
  while i <= #args do
    local a = args[i]
    local name, val = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    local spec = OPTIONS[name]
    if not spec then
      if a:sub(1, 1) == "-" then return nil, "unknown option " .. name end
      return nil, ("agent takes no argument (got %q)"):format(a:sub(1, 40))
    end
    if spec[2] then
      if val == nil then
        i = i + 1
        val = args[i]
        if val == nil then return nil, "option " .. name .. " needs a value" end
      end
      if #val > 4096 or val:find("%z") then return nil, "option " .. name .. ": value too long or with NUL" end
      if spec[3] then
        o[spec[1]] = o[spec[1]] or {}
        table.insert(o[spec[1]], val)
      else
        o[spec[1]] = val
      end
    else
      if val ~= nil then return nil, "option " .. name .. " takes no value" end
      o[spec[1]] = true
    end
    i = i + 1
  end
  return o
end

local function hostname()
  local f = io.open("/proc/sys/kernel/hostname", "r")
  local h = f and f:read("l")
  if f then f:close() end
  return h
end

-- The checked configuration: agent config, bus config; or nil, message.
local function configure(o, hw, proto)
  if not o.broker then return nil, "agent needs --broker HOST:PORT" end
  local host, port = o.broker:match("^%[?([^%]]+)%]?:(%d+)$")
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    return nil, ("--broker needs HOST:PORT, got %q"):format(o.broker:sub(1, 80))
  end
  if not o.journal or o.journal == "" then return nil, "agent needs --journal PATH" end
  if not o.port or o.port == "" then return nil, "agent needs --port PATH (the module's AT port)" end
  local rid = o.router_id or hostname()
  if not proto.valid_router_id(rid) then
    return nil, ("the router id %q is not 1-64 of A-Z a-z 0-9 _ - (set --router-id)"):format(tostring(rid):sub(1, 80))
  end
  if (o.certfile == nil) ~= (o.keyfile == nil) then return nil, "--certfile and --keyfile go together" end
  if o.password_file and not o.username then return nil, "--password-file needs --username" end
  local allow
  if o.allow then
    allow = {}
    for op in o.allow:gmatch("[^,]+") do allow[#allow + 1] = op end
  end
  for _, k in ipairs{"site", "country", "location"} do
    if o[k] and (#o[k] > 64 or o[k]:find("[%c\127]")) then
      return nil, ("--%s: at most 64 bytes, no control characters"):format(k)
    end
  end
  local opts = {journal = o.journal}
  if o.apn then
    local ok, msg = hw.check_at_param("apn", o.apn)
    if not ok then return nil, "--apn: " .. msg end
    opts.apn = o.apn
  end
  for _, k in ipairs{"poll", "reboot_timeout"} do
    if o[k] then
      local n = tonumber(o[k])
      if not n or n ~= n or n <= 0 or n > 86400 then
        return nil, ("--%s needs a number of seconds in (0, 86400], got %q"):format(k:gsub("_", "-"), o[k]:sub(1, 40))
      end
      if k == "poll" then opts.poll_interval, opts.dl_poll, opts.dl_poll_idle = n, n, n
      else opts.reboot_timeout = n end
    end
  end
  for _, spec in ipairs(o.allow_model or {}) do
    local name, ver = spec:match("^([^=]+)=(.+)$")
    local norm = ver and hw.core.version_normalize(ver)
    if not norm then return nil, ("--allow-model needs MODEL=VERSION, got %q"):format(spec:sub(1, 80)) end
    opts.models = opts.models or {}
    opts.models[name] = norm
  end
  opts.skip_model_check = o.skip_model_check or nil
  local tls
  if o.cafile or o.certfile then tls = {cafile = o.cafile, certfile = o.certfile, keyfile = o.keyfile} end
  return {router = rid, port = o.port, options = opts, site = o.site, country = o.country,
          location = o.location, policies = o.policies, allow = allow},
         {host = host, port = port, client_id = "hwfota-agent-" .. rid, username = o.username,
          password_file = o.password_file, tls = tls, keepalive = 30,
          backoff = {first = 1, max = 60}}
end

--- Run `hwfota agent`.
-- @tparam table args the arguments after `agent`
-- @tparam[opt] table io_ `stdout`, `stderr` (functions taking a string, or files), `hwfota`
--   (the library), `bus` (a Bus to use instead of connecting to `--broker`)
-- @treturn integer exit code (see `EXIT`)
function M.main(args, io_)
  io_ = io_ or {}
  local function writer(w, file)
    w = w or file
    if type(w) == "function" then return w end
    return function(s) w:write(s); w:flush() end
  end
  local stdout, stderr = writer(io_.stdout, io.stdout), writer(io_.stderr, io.stderr)
  local o, perr = parse(args or {})
  if not o then
    stderr("hwfota agent: " .. perr .. "\ntry: hwfota agent --help\n")
    return EXIT.USAGE
  end
  if o.help then
    stdout(M.HELP)
    return EXIT.OK
  end
  local hw = io_.hwfota or require "hwfota"
  local proto = require "hwfota.fleet.proto"
  local agent_mod = require "hwfota.fleet.agent"
  local acfg, bcfg = configure(o, hw, proto)
  if not acfg then
    stderr("hwfota agent: " .. bcfg .. "\ntry: hwfota agent --help\n")
    return EXIT.USAGE
  end
  local function log(level, msg)
    stderr(("hwfota agent %s: %s: %s\n"):format(acfg.router, level, msg))
  end
  acfg.log = log
  local bus = io_.bus
  if not bus then
    local okm, mqtt_bus = pcall(require, "hwfota.fleet.mqtt_bus")
    if not okm then
      stderr("hwfota agent: no MQTT support: " .. tostring(mqtt_bus) .. "\n")
      return EXIT.FAILURE
    end
    local will = assert(proto.encode(assert(proto.build("online", {online = false, time = os.time()}))))
    bcfg.will = {topic = proto.topic(acfg.router, "online"), payload = will, retain = true, qos = 1}
    local bmsg, bcode
    bus, bmsg, bcode = mqtt_bus.new(bcfg)
    if not bus then
      stderr(("hwfota agent: cannot set up the broker connection: %s\n"):format(tostring(bmsg)))
      return bcode == "EINVAL" and EXIT.USAGE or EXIT.FAILURE
    end
  end
  acfg.bus = bus
  acfg.hwfota = hw
  local agent, amsg = agent_mod.new(acfg)
  if not agent then
    bus:close()
    stderr("hwfota agent: " .. tostring(amsg) .. "\n")
    return EXIT.FAILURE
  end
  local STOP = "hwfota agent: stopped by a signal"
  local sig, serr = hw.on_signal({"INT", "TERM"}, function(name, h)
    h:cancel()
    log("info", ("SIG%s: saying goodbye"):format(name))
    agent:stop()
    -- a run still going on is left where it is (its journal resumes it safely):
    -- leave the loop now rather than wait for it
    if agent:busy() then error(STOP, 0) end
  end)
  if not sig then
    stderr("hwfota agent: cannot handle signals: " .. tostring(serr) .. "\n")
    bus:close()
    return EXIT.FAILURE
  end
  agent:start()
  log("info", ("agent for %s on %s started"):format(acfg.router, acfg.port))
  local ok, err = pcall(hw.loop)
  sig:cancel()
  if not ok and not tostring(err):find(STOP, 1, true) then
    stderr("hwfota agent: internal error: " .. tostring(err) .. "\n")
    return EXIT.FAILURE
  end
  return EXIT.OK
end

return M
