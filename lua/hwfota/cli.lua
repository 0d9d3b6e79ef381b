--- hwfota.cli: the `hwfota` command.
--
--     hwfota [--port PATH] list | info | status | check | download | upgrade |
--            run --policy FILE | monitor | at 'CMD'   [options]
--
-- `hwfota --help` and `hwfota COMMAND --help` describe every command and option;
-- `EXIT` lists the exit codes. The command script (`lua/bin/hwfota`, installed by
-- `make install`; `examples/openwrt/hwfota/files/hwfota` on OpenWrt) only calls
-- `main(arg)` and exits with what it returns.
--
-- `main` never calls `os.exit` and does all its input and output through the
-- `io` table it is given, so specs run it in-process:
--
--     local out = {}
--     local rc = cli.main({"status", "--json", "--port", path},
--                         {stdout = function(s) out[#out + 1] = s end, isatty = function() return false end})
--
-- Syslog: Lua has no syslog binding, so `--syslog` hands each message to the
-- `logger` command (util-linux, or busybox on OpenWrt) through `io.popen`, with the
-- tag `hwfota` and the facility `daemon` (what `logread` shows). The message goes
-- through logger's standard input, never through a shell command line.
--
-- JSON: `--json` prints exactly one JSON document on stdout, encoded by `hwfota.json`
-- (`dkjson`, Debian `lua-dkjson`, pure Lua, or else `cjson`, `lua-cjson`); loaded only
-- when `--json` is given.
--
-- @module hwfota.cli

local M = {}

--- Exit codes of the command (also what `main` returns).
-- @table EXIT
-- @field OK 0: done (upgraded, downloaded, new version found, command answered OK)
-- @field FAILURE 1: the FOTA flow or the AT command failed
-- @field USAGE 2: usage or configuration error (bad option, bad policy file,
--   several candidate ports, `upgrade` off a terminal without `--yes`)
-- @field NOTHING 3: nothing to do (no new version, offer not newer, nothing to apply)
-- @field PORT 4: the port cannot be used (not found, busy: ModemManager?, no permission)
-- @field DEFERRED 5: not done by decision: the policy deferred or rejected, or the
--   user declined the confirmation
-- @field INTERRUPTED 130: interrupted (Ctrl-C) in the middle of a flow
M.EXIT = {OK = 0, FAILURE = 1, USAGE = 2, NOTHING = 3, PORT = 4, DEFERRED = 5,
          INTERRUPTED = 130}
local EXIT = M.EXIT

-- ======================================================================================
-- Help texts

local COMMON = [[
Options for every command:
  --port PATH         the module's AT port (env HWFOTA_PORT); without it, the AT
                      (PCUI) port of the Huawei module (USB vendor 12d1) found is used:
                      the one its USB class triple calls PCUI; when no port's role is
                      known, the candidates (not modem, diag or GPS ports; not busy or
                      locked by pppd) are probed with a plain AT (1 s each) and the one
                      that answers is used; else they are listed (exit 2 when several,
                      4 when none)
  --json              print one JSON document on stdout (messages go to stderr)
  --trace             print the AT exchange: "Run: <command>" / "Response: <lines>"
  --syslog            log messages through syslog (logger -t hwfota -p daemon.*)
                      instead of the terminal
  -h, --help          help (hwfota COMMAND --help for one command)
]]

local FLOW = [[
FOTA options (defaults from the environment the OpenWrt service sets):
  --apn APN           AT^FOTACFG APN (HWFOTA_APN); AT^FOTACFG is sent only with an APN
  --user USER         (HWFOTA_APN_USER)
  --password PASS     (HWFOTA_APN_PASSWORD)
  --auth none|pap|chap|0|1|2   (HWFOTA_APN_AUTH, default none)
  --journal FILE      progress journal, so an interrupted update resumes safely
                      (HWFOTA_JOURNAL)
  --reboot-timeout S  longest wait for the module after its reset (HWFOTA_REBOOT_TIMEOUT,
                      default 180); also how long a command started while the
                      journal says an update is under way waits for a missing port
  --allow-model MODEL=VERSION
                      add a row to the supported-model table: MODEL (as ATI prints it,
                      or its family, e.g. MU709) runs FOTA from firmware VERSION on;
                      repeat for several models; matched before the built-in table
  --skip-model-check  no model check at all (AT+GMR instead of ATI); prefer
                      --allow-model
  --force             apply an image whose version is unknown or not newer
  --no-prereq         skip the SIM and registration queries (AT+CPIN?, AT+CREG?,
                      AT+CGREG?); without it a query the firmware does not support
                      is reported and the run goes on
  --poll S            seconds between state/progress queries (default 3)
hwfota sets AT^FOTAMODE=0,0,0,1 (no automatic query, download or upgrade; resume on)
so that nothing happens on the module without hwfota's decision; again before a
download resumes after the module's boot (the module continues only after it).
]]

local EXITS = [[
Exit codes: 0 done, 1 failure, 2 usage or configuration error, 3 nothing to do,
4 port unavailable (missing, busy, no permission), 5 deferred/rejected/declined,
130 interrupted.
]]

local HELP = {}
HELP[""] = [[
usage: hwfota [--port PATH] COMMAND [options]

Firmware-over-the-air updates of Huawei MU509/MU609 modules.

Commands:
  list                  serial ports of this machine (Huawei ones marked)
  info                  model, firmware, IMEI of the module
  status                info, FOTA state and download progress
  check                 ask the FOTA server for a new version (exit 3: none)
  download              download the new version, do not apply it
  upgrade               detect, download, apply and verify (asks first; --yes)
  run --policy FILE     the whole flow under a Lua policy (what the service runs)
  monitor               print unsolicited codes and progress (--for SECONDS)
  at 'CMD'              send one AT command and print the response
  agent --broker H:P    the fleet agent: takes commands over MQTT (hwfota agent --help;
                        "agent" comes first, its options are its own)
  fleet COMMAND         the fleet over MQTT: inventory, rollout, status, halt, resume
                        (hwfota fleet --help)

]] .. COMMON .. "\n" .. EXITS

HELP.list = [[
usage: hwfota list [--json]

Lists the serial ports libserialport finds: path, USB vendor:product, product name;
"huawei" marks USB vendor 12d1 (the ones --port may be left out for), then the USB
interface ("if02") and the port's role from its class triple: pcui (the AT port the
commands use), modem (PPP data port), diag, gps; "?" when unknown.
JSON: {"ports": [{"path":, "vid":, "pid":, "product":, "manufacturer":, "serial":,
"description":, "huawei":, "interface":, "class": "ff/01/02", "role":, "by_id":}]}.

]] .. COMMON .. "\n" .. EXITS

HELP.info = [[
usage: hwfota [--port PATH] info [--json]

Prints manufacturer, model, firmware revision and IMEI (ATI, AT+CGSN), and whether
hwfota supports the model. JSON: {"port":, "manufacturer":, "model":, "revision":,
"imei":, "supported":, "min_firmware":}.

]] .. COMMON .. "\n" .. EXITS

HELP.status = [[
usage: hwfota [--port PATH] status [--json]

Prints model, firmware, IMEI, the FOTA state (AT^FOTASTATE?) and, while a download
is pending or done, its progress per file (AT^FOTADLQ). Changes nothing.
JSON: {"port":, "model":, "revision":, "imei":, "manufacturer":,
"state": {"code":, "name":}, "progress": {"done":, "total":, "percent":,
"files": [{"index":, "name":, "done":, "total":}]} or null, "fotacfg": {"apn":,
"user":, "password_set":, "auth":} or null}. The FOTA server line (AT^FOTACFG?)
shows the APN, user and auth type the module connects with; never the password.

]] .. COMMON .. "\n" .. EXITS

HELP.check = [[
usage: hwfota [--port PATH] check [--json] [FOTA options]

Asks the FOTA server whether a new version exists (AT^FOTADET) and prints it. The
offer is then dropped (AT^FOTADL=0) so that a later download or upgrade asks again
and knows the version. When a download is pending or done, reports that instead.
Exit 0: a new version exists (or an update is under way); 3: none, or not newer.
JSON: {"status": "new_version" | "no_new_version" | "not_newer" | "in_progress" |
"failed", "version":, "size":, "description":, "from":, "state":, "code":, "message":}.

]] .. COMMON .. "\n" .. FLOW .. "\n" .. EXITS

HELP.download = [[
usage: hwfota [--port PATH] download [--json] [FOTA options]

Detects and downloads the new version (resuming a pending download), until the
module verified the image (state 40); does not apply it, but the module applies a
downloaded image by itself at its next reboot (guide 2.3.3). A progress bar with rate
and time left on a terminal, plain lines otherwise. Exit 3: no new version, or an
image is already downloaded.
Note: the module does not report the version of a downloaded image; applying it
later with `hwfota upgrade` needs --force (or run `hwfota upgrade` directly).

]] .. COMMON .. "\n" .. FLOW .. "\n" .. EXITS

HELP.upgrade = [[
usage: hwfota [--port PATH] upgrade [--yes] [--json] [FOTA options]

The whole flow: detection, download with progress, AT^FWUP, the module's reset,
and verification of the new version. On a terminal it asks before downloading
(y/N); --yes (or -y) answers yes. Off a terminal --yes is required (exit 2).
Exit 0: upgraded and verified; 3: no new version; 5: declined.

  -y, --yes           do not ask

]] .. COMMON .. "\n" .. FLOW .. "\n" .. EXITS

HELP.run = [[
usage: hwfota [--port PATH] run --policy FILE [--json] [FOTA options]

Runs the whole flow under a policy: FILE is a Lua file that returns a policy table
for hwfota.run (hooks on_new_version, on_downloaded, on_failure, before_detect,
after, ...), usually built with require "hwfota.policy". Never asks. This is what the
OpenWrt service runs (with --syslog). Exit 0: upgraded; 3: no new version; 5: the
policy deferred or rejected; 1: failed; 2: the policy file cannot be loaded.

  --policy FILE       the policy file (required)

]] .. COMMON .. "\n" .. FLOW .. "\n" .. EXITS

HELP.monitor = [[
usage: hwfota [--port PATH] monitor [--for SECONDS] [--json]

Prints the unsolicited codes the module sends (^FOTASTATE with its meaning, ^RSSI,
^BOOT ...), with the time, and the download progress while it downloads, until
interrupted (Ctrl-C) or --for SECONDS have passed. Follows the module through its
reset. Exit 0. JSON (one document at the end): {"port":, "events": [{"t":, "line":,
"state":, "name":}], "progress": {...} or null}.

  --for SECONDS       stop after this long
  --poll S            seconds between progress queries while downloading (default 3)

]] .. COMMON .. "\n" .. EXITS

HELP.at = [[
usage: hwfota [--port PATH] at 'CMD' [--timeout S] [--json]

Sends one AT command and prints its response lines and final result. A command
containing CR, LF or NUL is refused (exit 2). Exit 0 on OK, 1 on ERROR, +CME ERROR
or a timeout. JSON: {"command":, "ok":, "lines": [...], "final":, "code":}.

  --timeout S         seconds to wait for the final result (default 10)

]] .. COMMON .. "\n" .. EXITS

-- ======================================================================================
-- Options

-- name -> {key, takes_value, commands (nil: every command)}
local FLOW_CMDS = {check = true, download = true, upgrade = true, run = true}
local OPTIONS = {
  ["--port"] = {"port", true},
  ["--json"] = {"json", false},
  ["--trace"] = {"trace", false},
  ["--syslog"] = {"syslog", false},
  ["--help"] = {"help", false}, ["-h"] = {"help", false},
  ["--apn"] = {"apn", true, FLOW_CMDS},
  ["--user"] = {"user", true, FLOW_CMDS},
  ["--password"] = {"password", true, FLOW_CMDS},
  ["--auth"] = {"auth", true, FLOW_CMDS},
  ["--journal"] = {"journal", true, FLOW_CMDS},
  ["--reboot-timeout"] = {"reboot_timeout", true, FLOW_CMDS},
  ["--skip-model-check"] = {"skip_model_check", false, FLOW_CMDS},
  ["--allow-model"] = {"allow_model", true, FLOW_CMDS, many = true},
  ["--force"] = {"force", false, FLOW_CMDS},
  ["--no-prereq"] = {"no_prereq", false, FLOW_CMDS},
  ["--poll"] = {"poll", true, {check = true, download = true, upgrade = true, run = true,
                                monitor = true}},
  ["--yes"] = {"yes", false, {upgrade = true}}, ["-y"] = {"yes", false, {upgrade = true}},
  ["--policy"] = {"policy", true, {run = true}},
  ["--for"] = {"for_", true, {monitor = true}},
  ["--timeout"] = {"timeout", true, {at = true}},
}
-- Numbers: {lowest, highest, lowest allowed}; NaN, infinities and anything outside are
-- usage errors (exit 2, one line), never a trace from deeper down.
local NUMERIC = {reboot_timeout = {0, 86400 * 30, false}, poll = {0.01, 3600, true},
                 for_ = {0, 86400 * 365, true}, timeout = {0, 3600, false}}
-- Longest value of a string option (the journal: what hwfota.session accepts).
local MAX_VALUE = 4096
local MAX_JOURNAL = 3000

-- A value as a usage message shows it: bounded, control characters replaced.
local function shown(v)
  v = tostring(v)
  local n = #v
  local cut = n > 40
  v = v:sub(1, 40):gsub("[%c\127-\255]", "?")
  return '"' .. v .. (cut and ('..." (%d bytes)'):format(n) or '"')
end
M._shown = shown

-- The range of a numeric option, as a usage message says it.
local function range_text(r)
  return ("%s%.10g, %.10g]"):format(r[3] and "[" or "(", r[1], r[2])
end
local COMMANDS = {list = true, info = true, status = true, check = true, download = true,
                  upgrade = true, run = true, monitor = true, at = true}

local function parse(args)
  local o, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    end
    if a:sub(1, 1) == "-" and #a > 1 then
      local name, val = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local spec = OPTIONS[name]
      if not spec then return nil, "unknown option " .. name end
      local key, takes = spec[1], spec[2]
      if takes then
        if val == nil then
          i = i + 1
          val = args[i]
          if val == nil then return nil, "option " .. name .. " needs a value" end
        end
        if #val > MAX_VALUE then
          return nil, ("option %s: value too long (%d bytes; at most %d)"):format(name, #val, MAX_VALUE)
        end
        local r = NUMERIC[key]
        if r then
          local n = tonumber(val)
          if not n or n ~= n or n > r[2] or n < r[1] or (n == r[1] and not r[3]) then
            return nil, ("option %s needs a number of seconds in %s, got %s"):format(
              name, range_text(r), shown(val))
          end
          val = n
        end
        if spec.many then
          o[key] = o[key] or {}
          table.insert(o[key], val)
        else
          o[key] = val
        end
      else
        if val ~= nil then return nil, "option " .. name .. " takes no value" end
        o[key] = true
      end
      o._seen = o._seen or {}
      o._seen[#o._seen + 1] = name
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return o, pos
end

-- ======================================================================================
-- Output

local function default_isatty(name)
  local fd = name == "stdin" and 0 or name == "stderr" and 2 or 1
  local ok = os.execute("test -t " .. fd)
  return ok == true
end

local function default_syslog(level, msg)
  local p = io.popen("logger -t hwfota -p daemon." .. level, "w")
  if not p then return end
  p:write(msg, "\n")
  p:close()
end

local function writer(w, file)
  if type(w) == "function" then return w end
  local f = w or file
  return function(s) f:write(s); f:flush() end
end

local function json_module()
  local json = require "hwfota.json"
  if not json.available then return nil end
  return function(v) return assert(json.encode(v, {indent = true})) end, json.null
end

local Cli = {}
Cli.__index = Cli

-- Write one line with `write`; a progress bar on the terminal stays below the lines
-- (cleared, the line written, the bar drawn again).
function Cli:line(write, s)
  if not self.bar_open then return write(s .. "\n") end
  self.stdout("\r\27[K")
  write(s .. "\n")
  self.stdout("\r" .. self.bar_line .. "\27[K")
end

function Cli:out(s)
  self:line(self.stdout, s)
end

-- Messages (events, notes): the terminal (stderr when stdout carries JSON), or syslog.
function Cli:say(s, level)
  if self.o.syslog then
    self.syslog(level or "info", s)
    return
  end
  self:line(self.o.json and self.stderr or self.stdout, s)
end

function Cli:err(s)
  if self.o.syslog then self.syslog("err", s) end
  self:line(self.stderr, "hwfota: " .. s)
end

function Cli:close_bar()
  if self.bar_open then
    self.bar_open = false
    self.stdout("\n")
  end
end

function Cli:emit_json(doc)
  local enc = self.json_encode
  self.stdout(enc(doc) .. "\n")
end

local function J(self, v)       -- nil -> JSON null
  if v == nil then return self.json_null end
  return v
end

-- --trace: the seed log's format.
function Cli:tracer()
  if not self.o.trace then return nil end
  return function(dir, text)
    text = tostring(text)
    local line
    if dir == "run" then line = "Run: " .. text
    elseif dir == "response" then line = "Response: " .. text:gsub("\n", "  ")
    elseif dir == "urc" then line = "          " .. text
    elseif dir == "event" then line = "-- " .. text
    elseif dir == "error" then line = "!! " .. text
    else return end
    if self.o.syslog then self.syslog("debug", line) return end
    self:line(self.o.json and self.stderr or self.stdout, line)
  end
end

-- Commands the CLI sends itself, traced like the session's.
function Cli:command(port, cmd, opts)
  local tr = self.trace
  if tr then tr("run", cmd) end
  local res, msg, code, detail = port:command(cmd, opts)
  if tr then
    if res then
      tr("response", table.concat(res.lines, "\n") .. (#res.lines > 0 and "\n" or "") .. res.final)
    else
      tr("response", tostring(msg))
    end
  end
  return res, msg, code, detail
end

-- One command of the C command table (hwfota.core.fota_command: the text and answer
-- the state machine uses), traced as `Cli:command` traces.
function Cli:fota(port, name, params, timeout)
  local text, opts, code = require("hwfota.driver").fota_request(name, params, timeout)
  if not text then return nil, opts, code end
  return self:command(port, text, opts)
end

-- ======================================================================================
-- Progress: a bar with rate and time left on a terminal, plain lines otherwise.

local function human_bytes(n)
  if n >= 1e6 then return ("%.1f MB"):format(n / 1e6) end
  if n >= 1e3 then return ("%.1f kB"):format(n / 1e3) end
  return ("%d B"):format(n)
end

local function human_time(s)
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%d:%02d:%02d"):format(s // 3600, s % 3600 // 60, s % 60) end
  return ("%d:%02d"):format(s // 60, s % 60)
end

-- Columns of the terminal: COLUMNS, else `stty size` on the terminal, else 80.
function Cli:columns()
  if self.term_columns then return self.term_columns end
  local n = tonumber(self.getenv("COLUMNS") or "")
  if not (n and n >= 1 and n <= 10000) then
    local p = io.popen("stty size 2>/dev/null </dev/tty", "r")
    if p then
      local out = p:read("a") or ""
      p:close()
      n = tonumber(out:match("^%s*%d+%s+(%d+)"))
    end
  end
  if not (n and n >= 1 and n <= 10000) then n = 80 end
  self.term_columns = math.floor(n)
  return self.term_columns
end

function Cli:progress(p)
  local done, total = p.done or 0, p.total or 0
  local pct = p.percent or (total > 0 and math.floor(done * 100 / total) or 0)
  if pct > 100 then pct = 100 end
  local now = self.now()
  local s = self.samples
  s[#s + 1] = {t = now, done = done}
  while #s > 2 and now - s[1].t > 15 do table.remove(s, 1) end
  local rate, left
  if #s >= 2 and s[#s].t > s[1].t and s[#s].done > s[1].done then
    rate = (s[#s].done - s[1].done) / (s[#s].t - s[1].t)
    left = (total - done) / rate
  end
  self.last_progress = {done = done, total = total, percent = pct, files = p.files}
  local rate_s = rate and (human_bytes(rate) .. "/s") or "-- B/s"
  local left_s = left and (human_time(left) .. " left") or "--:-- left"
  if self.o.json and not self.o.syslog and not self.bar_tty then
    return     -- JSON on stdout: no progress lines mixed in
  end
  if self.o.syslog then
    local decile = pct // 10
    if decile ~= self.last_decile then
      self.last_decile = decile
      self.syslog("info", ("download %d%% (%d/%d bytes, %s, %s)"):format(pct, done, total, rate_s, left_s))
    end
    return
  end
  if self.bar_tty then
    -- one line that fits the terminal (a wrapped bar scrolls at every update): the
    -- text shrinks first (rate and time left go), then the bar, down to the percent
    local cols = self:columns() - 1
    local texts = {(" %3d%%  %s / %s  %s  %s"):format(pct, human_bytes(done), human_bytes(total),
                                                     rate_s, left_s),
                   (" %3d%%  %s / %s"):format(pct, human_bytes(done), human_bytes(total)),
                   (" %3d%%"):format(pct)}
    local line
    for _, text in ipairs(texts) do
      local width = math.min(30, cols - #text - 2)
      if width >= 10 or text == texts[#texts] then
        width = math.max(0, width)
        local fill = pct * width // 100
        line = ("[%s%s]%s"):format(("#"):rep(fill), ("."):rep(width - fill), text)
        break
      end
    end
    if #line > cols then line = line:sub(-math.max(cols, 4)) end
    self.stdout("\r" .. line .. "\27[K")
    self.bar_open, self.bar_line = true, line
  elseif pct ~= self.last_pct then
    self.last_pct = pct
    self.stdout(("download %3d%%  %d/%d bytes  %s  %s\n"):format(pct, done, total, rate_s, left_s))
  end
end

-- ======================================================================================
-- Ports

local function open_error_exit(code)
  if code == "ENOENT" or code == "EBUSY" or code == "EACCES" or code == "EPERM" then
    return EXIT.PORT
  end
  return EXIT.FAILURE
end

-- A port pppd (or another dialler) holds: its UUCP lock file.
local function uucp_locked(path)
  local name = path:match("([^/]+)$") or path
  for _, dir in ipairs{"/var/lock/", "/run/lock/"} do
    local f = io.open(dir .. "LCK.." .. name)
    if f then f:close() return true end
  end
  return false
end

local PROBE_TIMEOUT = 1   -- seconds a candidate has to answer AT

-- No role known: ask each candidate with a plain AT (nothing that changes a state),
-- never a port someone holds (busy: ModemManager; a lock file: pppd).
function Cli:probe(cands)
  local answered, notes = {}, {}
  for _, p in ipairs(cands) do
    local note
    if uucp_locked(p.path) then
      note = "locked (pppd?), not probed"
    else
      -- sync = false: the one AT is all a port of unknown kind gets (no line-sync query)
      local port, msg, code = self.hwfota.open(p.path, {sync = false})
      if not port then
        note = code == "EBUSY" and "busy, not probed" or ("cannot open: " .. tostring(msg))
      else
        -- wait ourselves and close at the deadline: the engine's own timeout would
        -- resynchronise, i.e. write more than the one AT to a port of unknown kind
        local res, rcode
        local probe = self.hwfota.core.fota_command("probe")   -- a plain AT
        local ok, smsg, scode = port:send(probe.text, {timeout = PROBE_TIMEOUT + 10}, function(r, _, c)
          res, rcode = r, c or "EIO"
        end)
        if not ok then rcode = scode or smsg end
        local deadline = self.now() + PROBE_TIMEOUT
        while ok and not (res or rcode) and self.now() < deadline do
          port:poll(math.max(0.01, deadline - self.now()))
        end
        port:close()
        if res and res.final == "OK" then
          answered[#answered + 1] = p
          note = "answered AT"
        else
          note = rcode and (probe.text .. ": " .. tostring(rcode)) or ("no answer to " .. probe.text)
        end
      end
    end
    notes[p.path] = note
  end
  return answered, notes
end

local function port_line(p, note)
  local where = p.interface and ("if%02x "):format(p.interface) or ""
  return ("  %s  %s%s%s\n"):format(p.path, where, p.product or p.description or "",
                                   note and ("  (" .. note .. ")") or "")
end

function Cli:find_port(wait)
  local path = self.o.port or self.getenv("HWFOTA_PORT")
  if path and (#path > 255 or path:find("%z")) then
    self:err(("the port path %s is too long (at most 255 bytes)"):format(shown(path)))
    return nil, EXIT.USAGE
  end
  if path and path ~= "" then return path end
  local ports, msg = self.list_ports()
  if wait and ports then
    -- the module's ports are gone while it resets: look again, bounded
    local function huawei(list)
      for _, p in ipairs(list) do if p.huawei then return true end end
      return false
    end
    if not huawei(ports) then
      self:say(("no Huawei port and the journal %s says an update was under way: the module "
                .. "may be resetting; waiting up to %g s for it"):format(wait.journal, wait.seconds),
               "notice")
      -- done when a Huawei port is listed, or listing fails
      require("hwfota.reconnect").retry(function()
        ports, msg = self.list_ports()
        return not ports or huawei(ports)
      end, {timeout = wait.seconds, tried = {n = 0}, now = self.now, sleep = self.sleep})
    end
  end
  if not ports then
    self:err("cannot list the serial ports: " .. tostring(msg) .. "; give --port PATH")
    return nil, EXIT.PORT
  end
  local huawei, pcui, unknown = {}, {}, {}
  for _, p in ipairs(ports) do
    if p.huawei then
      huawei[#huawei + 1] = p
      if p.role == "pcui" then pcui[#pcui + 1] = p
      elseif p.role == nil then unknown[#unknown + 1] = p end
    end
  end
  if #huawei == 0 then
    self:err("no Huawei port found (USB vendor 12d1); give --port PATH")
    if #ports > 0 then
      self.stderr("serial ports:\n")
      for _, p in ipairs(ports) do self.stderr("  " .. p.path .. "\n") end
    end
    return nil, EXIT.PORT
  end
  -- the AT port by its class triple (one per module)
  if #pcui == 1 then return pcui[1].path end
  if #pcui > 1 then
    self:err("several Huawei AT (PCUI) ports found (several modules?); choose one with --port PATH:")
    for _, p in ipairs(pcui) do self.stderr(port_line(p)) end
    return nil, EXIT.USAGE
  end
  if #unknown == 0 then
    self:err("no AT (PCUI) port among the Huawei ports (only modem, diagnostics or GPS " ..
             "ports); give --port PATH:")
    for _, p in ipairs(huawei) do self.stderr(port_line(p, p.role)) end
    return nil, EXIT.PORT
  end
  if #unknown == 1 and #huawei == 1 then return unknown[1].path end
  -- roles unknown: the candidate that answers a plain AT
  local answered, notes = self:probe(unknown)
  if #answered == 1 then
    self:say(("port %s chosen: the only Huawei port whose role is unknown that answered AT")
             :format(answered[1].path))
    return answered[1].path
  end
  self:err(("%s; choose the AT port with --port PATH:"):format(#answered == 0
    and "no Huawei port answered AT" or "several Huawei ports answered AT (the modem port does too)"))
  for _, p in ipairs(huawei) do self.stderr(port_line(p, p.role or notes[p.path])) end
  return nil, EXIT.USAGE
end

-- With --json, a failure before any result still prints one JSON document.
function Cli:fail_json(code, msg)
  if self.o.json and self.json_encode then
    self:emit_json({status = "failed", code = J(self, code), message = J(self, msg),
                    port = J(self, self.port_path)})
  end
end

-- A journal left by an unfinished run: the module may be in its reset (see
-- run.lua journal_pending); the flow commands then wait for its port.
local function journal_pending(path)
  if not path then return false end
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(16)
  f:close()
  return head ~= nil and head ~= ""
end

-- Open the port. `wait` (flow commands whose journal says an update is under way):
-- {seconds =, journal =}: a missing port (ENOENT, or no Huawei port listed) is
-- waited for, bounded, as the Lua API does, instead of failing at once.
function Cli:open_port(wait)
  local path, rc = self:find_port(wait)
  if not path then
    self:fail_json(rc == EXIT.USAGE and "EUSAGE" or "ENOENT", "no port to open (see stderr)")
    return nil, rc
  end
  self.port_path = path
  local port, msg, code = self.hwfota.open(path)
  if not port and code == "ENOENT" and wait then
    self:say(("%s is missing and the journal %s says an update was under way: the module "
              .. "may be resetting; waiting up to %g s for its port"):format(path, wait.journal,
              wait.seconds), "notice")
    port, msg, code = require("hwfota.reconnect").retry(function()
      return self.hwfota.open(path)
    end, {timeout = wait.seconds, tried = table.pack(port, msg, code), now = self.now,
          sleep = self.sleep, stop = function(_, _, why) return why ~= "ENOENT" end})
    if port then
      self:say(path .. " is back", "notice")
    elseif code == "ENOENT" then
      msg = ("%s did not come back within %g s (%s); the module may still be upgrading: do "
             .. "not power it off; check USB, then run the same command again"):format(
             path, wait.seconds, tostring(msg))
    end
  end
  if not port then
    msg = tostring(msg)
    -- the library's message names the path already ("cannot open X: ...")
    if not msg:find(path, 1, true) then msg = ("cannot open %s: %s"):format(path, msg) end
    self:err(msg)
    self:fail_json(code, msg)
    return nil, open_error_exit(code)
  end
  -- what the open had to do: a killed process's exclusive flag taken over (issue 12.8)
  if port.on_event and port.poll then
    local notes = {}
    port:on_event(function(e)
      if e.event == "stale_exclusive" then notes[#notes + 1] = tostring(e.detail) end
    end)
    port:poll(0)
    port:on_event(nil)
    for _, n in ipairs(notes) do self:say(n, "notice") end
  end
  return port
end

-- ======================================================================================
-- Commands

local CMD = {}

function CMD.list(self)
  local ports, msg = self.list_ports()
  if not ports then
    self:err("cannot list the serial ports: " .. tostring(msg))
    return EXIT.FAILURE
  end
  if self.o.json then
    local list = {}
    for _, p in ipairs(ports) do
      list[#list + 1] = {path = p.path, description = J(self, p.description),
        vid = J(self, p.vid), pid = J(self, p.pid), manufacturer = J(self, p.manufacturer),
        product = J(self, p.product), serial = J(self, p.serial), huawei = p.huawei == true,
        interface = J(self, p.interface), role = J(self, p.role), by_id = J(self, p.by_id),
        class = J(self, p.usb_class and ("%02x/%02x/%02x"):format(p.usb_class,
          p.usb_subclass or 0, p.usb_protocol or 0) or nil)}
    end
    self:emit_json({ports = list})
    return EXIT.OK
  end
  if #ports == 0 then self:out("no serial ports") end
  for _, p in ipairs(ports) do
    local id = p.vid and ("%04x:%04x"):format(p.vid, p.pid or 0) or "-"
    local usb = ""
    if p.huawei or p.interface then
      usb = ("  %s %s"):format(p.interface and ("if%02x"):format(p.interface) or "if?",
                               p.role or "?")
    end
    self:out(("%-20s %-9s %-30s%s%s"):format(p.path, id, p.product or p.description or "",
                                             p.huawei and "  huawei" or "", usb))
  end
  return EXIT.OK
end

local function session_of(self, port, extra)
  local opts = {trace = self.trace}
  for k, v in pairs(extra or {}) do opts[k] = v end
  return self.hwfota.session(port, opts)
end

local function read_info(self, port)
  local s = assert(session_of(self, port))
  local info, msg, code = s:info()
  if not info then return nil, msg, code end
  local core = self.hwfota.core
  if info.model and core and core.supported_model then
    local min = core.supported_model(info.model, info.revision)   -- the firmware family picks the row
    info.supported = min ~= nil
    info.min_firmware = min
  end
  return info, s
end

function CMD.info(self)
  local port, rc = self:open_port()
  if not port then return rc end
  local info, msg = read_info(self, port)
  port:close()
  if not info then
    self:err("cannot read the module's identity: " .. tostring(msg))
    return EXIT.FAILURE
  end
  if self.o.json then
    self:emit_json({port = self.port_path, manufacturer = J(self, info.manufacturer),
      model = J(self, info.model), revision = J(self, info.revision), imei = J(self, info.imei),
      supported = J(self, info.supported), min_firmware = J(self, info.min_firmware)})
    return EXIT.OK
  end
  self:out("Port:         " .. self.port_path)
  self:out("Manufacturer: " .. (info.manufacturer or "?"))
  self:out("Model:        " .. (info.model or "?") ..
           (info.supported == false and "  (not in hwfota's supported-model table)" or ""))
  self:out("Firmware:     " .. (info.revision or "?"))
  self:out("IMEI:         " .. (info.imei or "?"))
  return EXIT.OK
end

-- Download progress from AT^FOTADLQ: {files =, done =, total =, percent =} or nil
-- (summed and clamped by the parser the state machine uses).
local function query_progress(self, port)
  local res = self:fota(port, "dlq")
  if not res then return nil end
  local a = self.hwfota.core.fota_parse("dlq", res.lines)
  if not (a and a.files) then return nil end
  return {files = a.files, done = a.done, total = a.total, percent = a.percent}
end

function CMD.status(self)
  local port, rc = self:open_port()
  if not port then return rc end
  local info, s = read_info(self, port)
  if not info then
    port:close()
    self:err("cannot read the module's identity: " .. tostring(s))
    return EXIT.FAILURE
  end
  local st, msg = s:state()
  local prog
  if st and (st.code == 30 or st.code == 31 or st.code == 40) then prog = query_progress(self, port) end
  -- the FOTA server connection settings (the guide: check them after a failed detection)
  local cfg, cfg_msg = s:fota_config()
  port:close()
  if not st then
    self:err("cannot read the FOTA state: " .. tostring(msg))
    return EXIT.FAILURE
  end
  if self.o.json then
    local p = self.json_null
    if prog then p = prog end
    self:emit_json({port = self.port_path, manufacturer = J(self, info.manufacturer),
      model = J(self, info.model), revision = J(self, info.revision), imei = J(self, info.imei),
      state = {code = st.code, name = st.name}, progress = p,
      fotacfg = cfg and {apn = cfg.apn, user = cfg.user, password_set = cfg.password_set,
                         auth = cfg.auth} or self.json_null})
    return EXIT.OK
  end
  self:out("Port:      " .. self.port_path)
  self:out("Model:     " .. (info.model or "?"))
  self:out("Firmware:  " .. (info.revision or "?"))
  self:out("IMEI:      " .. (info.imei or "?"))
  self:out(("FOTA state: %d (%s)"):format(st.code, st.name))
  local run_mod = require "hwfota.run"
  self:out("FOTA server: " .. (cfg and run_mod.fotacfg_text(cfg)
                               or ("unreadable: " .. tostring(cfg_msg))))
  if prog then
    self:out(("Download:  %d%%  %d/%d bytes"):format(prog.percent, prog.done, prog.total))
    for _, f in ipairs(prog.files) do
      self:out(("  file %d %-8s %d/%d"):format(f.index, f.name, f.done, f.total))
    end
  end
  return EXIT.OK
end

-- Options of hwfota.run / hwfota.session from the command line and the environment.
function Cli:flow_opts()
  local o, env = self.o, self.getenv
  local function pick(key, var)
    if o[key] ~= nil then return o[key] end
    local v = env(var)
    if v ~= nil and v ~= "" then return v end
    return nil
  end
  local function trace(dir, text)
    if self.trace then self.trace(dir, text) end
  end
  local f = {trace = trace,
             mode = {auto_query = false, auto_download = false, auto_upgrade = false,
                     resume = true}}
  f.apn = pick("apn", "HWFOTA_APN")
  if f.apn == "" then f.apn = nil end   -- --apn '': no APN, so no AT^FOTACFG (see --help)
  if f.apn then
    f.user = pick("user", "HWFOTA_APN_USER") or ""
    f.password = pick("password", "HWFOTA_APN_PASSWORD") or ""
    local auth = pick("auth", "HWFOTA_APN_AUTH") or "none"
    auth = tonumber(auth) or auth
    local ok = {none = true, pap = true, chap = true, [0] = true, [1] = true, [2] = true}
    if not ok[auth] then return nil, ("--auth must be none, pap, chap, 0, 1 or 2, got %q"):format(tostring(auth)) end
    f.auth = auth
    -- the state machine's rule (C), checked here so that it is a usage error
    local check = self.hwfota and self.hwfota.check_at_param
    for _, k in ipairs{"apn", "user", "password"} do
      local okp, pmsg = true, nil
      if check then okp, pmsg = check(k, f[k]) end
      if not okp then return nil, ("--%s: %s"):format(k, pmsg) end
    end
  end
  f.journal = pick("journal", "HWFOTA_JOURNAL")
  if f.journal == "" then return nil, "--journal needs a file path (got an empty one)" end
  if f.journal and (#f.journal > MAX_JOURNAL or f.journal:find("%z")) then
    return nil, ("the journal path is too long (%d bytes; at most %d)"):format(#f.journal, MAX_JOURNAL)
  end
  local rt = pick("reboot_timeout", "HWFOTA_REBOOT_TIMEOUT")
  if rt ~= nil then
    local r = NUMERIC.reboot_timeout
    f.reboot_timeout = tonumber(rt)
    local n = f.reboot_timeout
    if not n or n ~= n or n <= r[1] or n > r[2] then
      return nil, ("the reboot timeout must be a number of seconds in %s, got %s"):format(
        range_text(r), shown(rt))
    end
  end
  for _, spec in ipairs(o.allow_model or {}) do
    local name, ver = spec:match("^(.-)=(.*)$")
    name = name and name:match("^%s*(.-)%s*$")
    if not name or name == "" or ver == "" then
      return nil, ("--allow-model needs MODEL=VERSION (e.g. MU709=11.0.0.0.0), got %s"):format(shown(spec))
    end
    local norm = self.hwfota.core.version_normalize(ver)
    if not norm then
      return nil, ("--allow-model %s: %s is not a firmware version (e.g. 12.815.03.01.00)"):format(
        shown(name), shown(ver))
    end
    f.models = f.models or {}
    f.models[name] = norm
  end
  f.skip_model_check = o.skip_model_check or nil
  f.force = o.force or nil
  if o.no_prereq then f.check_prereq = false end
  if o.poll then
    if o.poll <= 0 then return nil, "--poll must be more than 0 seconds" end
    f.poll_interval, f.dl_poll, f.dl_poll_idle = o.poll, o.poll, o.poll
  end
  -- every value the state machine checks (APN length and characters, models, times),
  -- checked now: a usage error, before any port is opened
  local fsm = {}
  for k, v in pairs(f) do if k ~= "trace" and k ~= "journal" then fsm[k] = v end end
  local okc, m, why = pcall(self.hwfota.core.fota_new, fsm)
  if not okc then return nil, tostring(m):gsub("^[^:]*:%d+: ", "") end
  if not m then return nil, why end
  m:close()
  return f
end

-- The hooks every flow adds: events and progress for the user.
function Cli:watch(policy)
  local user = {}
  for k, v in pairs(policy) do user[k] = v end
  local last_state
  for _, hook in ipairs{"on_new_version", "on_downloaded"} do
    user[hook] = function(info)
      if self.interrupted then return "defer", nil, "interrupted" end
      if policy[hook] then return policy[hook](info) end
      return nil
    end
  end
  user.on_progress = function(p)
    if policy.on_progress then policy.on_progress(p) end
    self:progress(p)
  end
  user.on_event = function(e)
    if policy.on_event then policy.on_event(e) end
    if e.event == "state" then self.last_state = e.code end
    if self.quiet then return end
    if e.event == "state" then
      self.last_state = e.code
      if e.code ~= last_state then
        last_state = e.code
        if e.code == 40 and self.last_progress then
          self:progress({done = self.last_progress.total, total = self.last_progress.total,
                         percent = 100})
        end
        if e.code ~= 30 then self:close_bar() end
        if not self.o.trace then self:say(("state %d (%s)"):format(e.code, e.name)) end
      end
    elseif e.event == "new_version" then
      self:say(("new version %s (%s bytes): %s"):format(tostring(e.version), tostring(e.size),
                                                         tostring(e.description or "")))
    elseif e.event == "notice" then
      self:say("note: " .. tostring(e.message), "notice")
    elseif e.event == "info" and not self.o.trace and e.revision then
      self:say(("%sfirmware %s, IMEI %s"):format((e.model or "") ~= "" and ("module " .. e.model .. ", ") or "",
                                                        e.revision, tostring(e.imei or "?")))
    end
  end
  return user
end

-- Ctrl-C during a flow is a loop event (hwfota.on_signal), not an error thrown
-- into whatever code runs: remember it and stop at the next decision (see
-- watch); a second Ctrl-C ends the process at once. Returns the handler (nil
-- when the signal cannot be routed: then the interpreter's "interrupted!" acts).
function Cli:on_interrupt()
  if not self.hwfota.on_signal then return nil end
  return self.hwfota.on_signal("INT", function()
    if self.interrupted then return end
    self.interrupted = true
    self:close_bar()
    self:err("interrupted: stopping at the next decision point (a download under way " ..
             "goes on in the module); Ctrl-C again to leave at once")
  end, {once = true})
end

-- Run the flow on an open port; returns the report.
function Cli:run_flow(port, policy, fopts)
  self.samples = {}
  local sig = self:on_interrupt()
  local ok, report = pcall(self.hwfota.run, port, self:watch(policy), fopts)
  if sig then sig:cancel() end
  if not ok then error(report, 0) end
  self:close_bar()
  if self.interrupted then error("interrupted!", 0) end
  return report
end

local function report_doc(self, r, extra)
  local doc = {status = r.status, from = J(self, r.from), to = J(self, r.to),
    version = J(self, r.version), size = J(self, r.size), code = J(self, r.code),
    message = J(self, r.message), module_code = J(self, r.module_code),
    reason = J(self, r.reason), attempts = J(self, r.attempts), port = self.port_path}
  for k, v in pairs(extra or {}) do doc[k] = v end
  return doc
end

local function failed_exit(self, r)
  if self.interrupted then error("interrupted!", 0) end
  self:err(("FOTA failed: %s (%s)"):format(tostring(r.message or "-"), tostring(r.code or "-")))
  if r.code == "EINVAL" then return EXIT.USAGE end
  if r.code == "EBUSY" or r.code == "ENOENT" or r.code == "EACCES" then return EXIT.PORT end
  return EXIT.FAILURE
end

-- The exit of a flow that reached neither its goal nor a deferral: nothing to do (no
-- new version, or not newer: `tell()` unless --json, exit 3) or failed (its code);
-- nil otherwise (the command says the rest).
local function nothing_or_failed(self, r, tell)
  if r.status == "no_new_version" or r.status == "not_newer" then
    if not self.o.json then tell() end
    return EXIT.NOTHING
  elseif r.status == "failed" then
    return failed_exit(self, r)
  end
  return nil
end

-- Open the port and read the FOTA state; with a state 12 of unknown version, drop the
-- offer (AT^FOTADL=0) so that detection runs again and the version becomes known.
function Cli:prepare_flow()
  local fopts, msg = self:flow_opts()
  if not fopts then
    self:err(msg)
    return nil, EXIT.USAGE
  end
  local wait
  if journal_pending(fopts.journal) then
    wait = {seconds = fopts.reboot_timeout or 180, journal = fopts.journal}
  end
  local port, rc = self:open_port(wait)
  if not port then return nil, rc end
  -- the poll interval paces the wait of s:cancel() for the module to be idle
  local s = session_of(self, port, {poll_interval = fopts.poll_interval})
  local st, m = s:state()
  if not st then
    port:close()
    self:err("cannot read the FOTA state: " .. tostring(m))
    return nil, EXIT.FAILURE
  end
  if st.code == 12 then
    self:say("an offer of unknown version is pending: dropping it to ask again", "notice")
    s:cancel()
  end
  s:close()          -- the flow that follows is the module's one FOTA operation
  return port, st, fopts
end

function CMD.check(self)
  local port, st, fopts = self:prepare_flow()
  if not port then return st end
  if require("hwfota.run").holds_image(st.code) then   -- an update is under way
    port:close()
    if self.o.json then
      self:emit_json({status = "in_progress", state = {code = st.code, name = st.name},
                      port = self.port_path})
    else
      self:out(("an update is under way: state %d (%s); see hwfota status"):format(st.code, st.name))
    end
    return EXIT.OK
  end
  local offer
  self.quiet = true
  local r = self:run_flow(port, {on_new_version = function(info)
    offer = info
    return "reject", nil, "hwfota check only looks"
  end}, fopts)
  port:close()
  local status = r.status
  if offer and status == "rejected" then status = "new_version" end
  if self.o.json then
    local doc = report_doc(self, r, {status = status})
    if offer then
      doc.version, doc.size = J(self, offer.version), J(self, offer.size)
      doc.description, doc.from = J(self, offer.description), J(self, offer.from)
    end
    self:emit_json(doc)
  end
  if status == "new_version" then
    if not self.o.json then
      self:out(("new version %s (%s bytes) for %s: %s"):format(tostring(offer.version),
        tostring(offer.size), tostring(offer.from), tostring(offer.description or "")))
    end
    return EXIT.OK
  elseif status == "no_new_version" or status == "not_newer" then
    if not self.o.json then
      self:out(status == "not_newer" and "the offered version is not newer than the running one"
               or "no new version")
    end
    return EXIT.NOTHING
  elseif status == "failed" then
    return failed_exit(self, r)
  end
  self:err("detection ended: " .. tostring(status))
  return EXIT.FAILURE
end

function CMD.download(self)
  local port, st, fopts = self:prepare_flow()
  if not port then return st end
  if st.code == 40 or st.code == 50 then
    port:close()
    local msg = st.code == 40 and "an image is already downloaded and verified (state 40)"
                or "an upgrade is under way (state 50)"
    if self.o.json then
      self:emit_json({status = "nothing_to_do", message = msg,
                      state = {code = st.code, name = st.name}, port = self.port_path})
    else
      self:out(msg)
    end
    return EXIT.NOTHING
  end
  -- the image stays on the module for a later upgrade (the module applies it at its
  -- next reboot): the explicit keep answer, not "defer" (which discards it)
  local r = self:run_flow(port, {on_new_version = function() return "download" end,
                                  on_downloaded = function() return "keep_until_reboot" end},
                          fopts)
  port:close()
  local downloaded = (r.status == "deferred" and self.last_state == 40) or
    (r.status == "failed" and self.last_state == 40 and
     (r.code == "ENOTARGET" or r.code == "ENOTNEWER"))
  if self.o.json then
    self:emit_json(report_doc(self, r, {status = downloaded and "downloaded" or r.status,
                                        progress = J(self, self.last_progress)}))
  end
  if downloaded then
    if not self.o.json then
      -- the module does not report a downloaded image's version: the journal keeps
      -- it for the next run; without one, applying it unchecked needs --force (a plain
      -- upgrade discards it and downloads it again to learn its version)
      self:out(("downloaded and verified%s; apply it with: %s. Until then the image "
                .. "waits on the module, which applies it by itself at its next reboot")
               :format(
        r.version and (" " .. r.version) or "",
        self.o.journal and "hwfota upgrade --journal " .. self.o.journal
                       or "hwfota upgrade --force (applies it unchecked: the module does "
                          .. "not report its version; plain hwfota upgrade downloads it again "
                          .. "to learn it; download with --journal FILE keeps it)"))
    end
    return EXIT.OK
  end
  local rc = nothing_or_failed(self, r, function() self:out("no new version") end)
  if rc then return rc end
  self:err(("download ended: %s %s"):format(r.status, tostring(r.reason or "")))
  return EXIT.DEFERRED
end

function Cli:confirm(question)
  self:close_bar()
  self.stdout(question .. " [y/N] ")
  local answer = self.read_line()
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

function CMD.upgrade(self)
  if not self.o.yes and not self.isatty("stdin") then
    self:err("upgrade needs --yes when its input is not a terminal")
    return EXIT.USAGE
  end
  local port, st, fopts = self:prepare_flow()
  if not port then return st end
  local asked, declined = self.o.yes, false
  local function ask(info, what)
    if asked then return true end
    asked = true
    local on = {}
    if (info.model or "") ~= "" then on[#on + 1] = info.model end
    if (info.imei or "") ~= "" then on[#on + 1] = "IMEI " .. info.imei end
    local ok = self:confirm(("%s firmware %s -> %s%s%s?"):format(what,
      tostring(info.from or "?"), tostring(info.version or "(version unknown)"),
      info.size and (" (" .. info.size .. " bytes)") or "",
      #on > 0 and (" on " .. table.concat(on, ", ")) or ""))
    declined = not ok
    return ok
  end
  local r = self:run_flow(port, {
    on_new_version = function(info)
      if ask(info, "Download and apply") then return "download" end
      return "reject", nil, "declined by the user"
    end,
    on_downloaded = function(info)
      if ask(info, "Apply") then return "upgrade" end
      return "defer", nil, "declined by the user"
    end,
  }, fopts)
  port:close()
  if self.o.json then self:emit_json(report_doc(self, r)) end
  if r.status == "upgraded" then
    if not self.o.json then
      self:out(("upgraded and verified: %s -> %s"):format(tostring(r.from), tostring(r.to)))
    end
    return EXIT.OK
  end
  local rc = nothing_or_failed(self, r, function() self:out("no new version") end)
  if rc then return rc end
  if not self.o.json then
    self:out(declined and "not upgraded: declined" or ("not upgraded: " .. r.status))
  end
  return EXIT.DEFERRED
end

function CMD.run(self)
  if not self.o.policy then
    self:err("run needs --policy FILE")
    return EXIT.USAGE
  end
  local chunk, lerr = loadfile(self.o.policy, "t")
  if not chunk then
    lerr = tostring(lerr)
    local i, j = lerr:find(self.o.policy, 1, true)   -- a huge path is shown shortened
    if i and self.o.policy ~= "" then lerr = lerr:sub(1, i - 1) .. shown(self.o.policy) .. lerr:sub(j + 1) end
    if #lerr > 300 then lerr = lerr:sub(1, 300) .. "..." end
    self:err("cannot load the policy: " .. lerr)
    return EXIT.USAGE
  end
  local ok, policy = pcall(chunk)
  if not ok or type(policy) ~= "table" then
    self:err(("the policy file %s %s"):format(self.o.policy,
      ok and ("returned a " .. type(policy) .. ", not a policy table") or ("failed: " .. tostring(policy))))
    return EXIT.USAGE
  end
  local port, st, fopts = self:prepare_flow()
  if not port then return st end
  local r = self:run_flow(port, policy, fopts)
  port:close()
  if self.o.json then self:emit_json(report_doc(self, r)) end
  local line = ("run: %s%s%s%s"):format(r.status,
    r.from and (" from " .. r.from) or "", r.to and (" to " .. r.to) or "",
    r.reason and (" (" .. r.reason .. ")") or "")
  if r.status == "upgraded" then
    if not self.o.json then self:say(line, "notice") end
    return EXIT.OK
  end
  local rc = nothing_or_failed(self, r, function() self:say(line) end)
  if rc then return rc end
  if not self.o.json then self:say(line .. (r.retry_after and
    (", ask again in %d s"):format(math.floor(r.retry_after)) or "")) end
  return EXIT.DEFERRED
end

function CMD.monitor(self)
  local port, rc = self:open_port()
  if not port then return rc end
  local core = self.hwfota.core
  local events = {}
  local t0 = self.now()
  local state
  local function stamp() return os.date("%H:%M:%S") end
  local function note_state(code)
    if code == state then return end
    state = code
  end
  local function on_line(line)
    local ev = {t = math.floor((self.now() - t0) * 1000) / 1000, line = line}
    local text = line
    if line:match("^%^FOTASTATE:") then
      local st = core.parse_fotastate(line)
      if st then
        ev.state, ev.name = st.state, core.fota_state_name(st.state)
        text = ("%s  (%s)"):format(line, ev.name)
        note_state(st.state)
        if st.state == 40 and self.bar_open and self.last_progress then
          local t = self.last_progress.total
          self:progress({done = t, total = t, percent = 100})
        end
        if st.state ~= 30 then self:close_bar() end
      end
    end
    events[#events + 1] = ev
    if not self.o.json then self:say(stamp() .. "  " .. text) end
  end
  local interrupted = false
  -- once: the subscriptions are the port's and survive its reopen (subscribing again
  -- after a reconnect printed every line twice)
  port:on("", on_line)
  port:on_event(function(e)
    if self.trace then
      self.trace("event", e.event .. ": " .. tostring(e.detail))
    end
  end)
  local function query_state()
    local res = self:fota(port, "state", nil, 5)
    if res and res.lines[1] then
      local st = core.parse_fotastate(res.lines[1])
      if st then
        note_state(st.state)
        if not self.o.json then
          self:say(("%s  state %d (%s)"):format(stamp(), st.state, core.fota_state_name(st.state)))
        end
      end
    end
  end
  local deadline = self.o.for_ and (t0 + self.o.for_) or nil
  local poll = self.o.poll or 3
  local next_q = self.now()
  -- the module's AT port may come back under another ttyUSB number: found again by
  -- its USB identity (nil for a port that is not a USB one: by its path)
  local identity = require "hwfota.identity"
  local ident = identity.of(self.port_path)
  local body = function()
    query_state()
    while true do
      local now = self.now()
      if interrupted or (deadline and now >= deadline) then break end
      if port:is_lost() then
        self:say(stamp() .. "  port lost: waiting for the module to come back", "notice")
        local back = require("hwfota.reconnect").retry(function()
          return identity.reopen(port, ident)
        end, {timeout = deadline and math.max(0, deadline - self.now()) or math.huge,
              now = self.now, sleep = self.sleep,
              stop = function(_, _, why) return interrupted or why == "ECLOSED" end})
        if not back then return end
        self:say(stamp() .. "  port back: " .. port:path(), "notice")
        query_state()
      end
      if state == 30 and self.now() >= next_q then
        next_q = self.now() + poll
        local p = query_progress(self, port)
        if p then self:progress(p) end
      end
      local wait = 0.5
      if deadline then wait = math.max(0, math.min(wait, deadline - self.now())) end
      self.hwfota.poll({port}, wait)   -- serves the Ctrl-C handler too
    end
  end
  self.samples = {}
  -- Ctrl-C ends the monitor (exit 0, the events so far printed); again: at once
  local sig = self.hwfota.on_signal and self.hwfota.on_signal("INT", function()
    interrupted = true
  end, {once = true})
  local ok, err = pcall(body)
  if sig then sig:cancel() end
  port:close()
  self:close_bar()
  if not ok and not tostring(err):find("interrupted", 1, true) then error(err, 0) end
  if self.o.json then
    self:emit_json({port = self.port_path, events = events,
                    progress = J(self, self.last_progress)})
  end
  return EXIT.OK
end

function CMD.at(self, args)
  if #args ~= 1 then
    self:err("at needs exactly one command, e.g. hwfota at 'AT+GMR'")
    return EXIT.USAGE
  end
  local cmd = args[1]
  if cmd == "" or cmd:find("[\r\n%z]") then
    self:err("refusing a command that is empty or contains CR, LF or NUL")
    return EXIT.USAGE
  end
  if #cmd > 512 then   -- HF_AT_CMD_MAX (at_engine.h)
    self:err(("refusing a command of %d bytes (at most 512)"):format(#cmd))
    return EXIT.USAGE
  end
  local port, rc = self:open_port()
  if not port then return rc end
  local res, msg, code, detail = self:command(port, cmd, {timeout = self.o.timeout or 10})
  port:close()
  if self.o.json then
    local lines = res and res.lines or (detail and detail.lines) or {}
    self:emit_json({command = cmd, ok = res ~= nil, lines = lines,
                    final = J(self, res and res.final or (code ~= "ETIMEDOUT" and msg or nil)),
                    code = J(self, code), message = J(self, not res and msg or nil)})
    return res and EXIT.OK or EXIT.FAILURE
  end
  if res then
    if not self.o.trace then
      for _, l in ipairs(res.lines) do self:out(l) end
      self:out(res.final)
    end
    return EXIT.OK
  end
  if code == "ECME" or code == "ECMS" or code == "EERROR" or (detail and detail.kind) then
    if not self.o.trace then
      for _, l in ipairs(detail and detail.lines or {}) do self:out(l) end
      self:out(tostring(msg))
    end
  else
    self:err(("%s: %s"):format(cmd, tostring(msg)))
  end
  return EXIT.FAILURE
end

-- ======================================================================================
-- main

--- Run the `hwfota` command.
-- Never calls `os.exit`; every input and output goes through `io`, so it can run
-- in-process (specs) as well as from the command script.
-- @tparam table args the arguments (`arg` of the script, without the script name)
-- @tparam[opt] table io_ injectable environment, every field optional:
--   `stdout`, `stderr` (functions taking a string, or files; default io.stdout/io.stderr),
--   `isatty(name)` (`"stdout"` or `"stdin"` -> boolean; default asks `test -t`),
--   `read_line()` (an answer to the confirmation; default io.stdin), `getenv(name)`
--   (default os.getenv), `syslog(level, message)` (default the `logger` command),
--   `list_ports()` (default hwfota.list_ports), `hwfota` (the module), `now()`,
--   `sleep(seconds)`
-- @treturn integer the exit code (see `EXIT`)
function M.main(args, io_)
  io_ = io_ or {}
  if args and args[1] == "agent" then   -- the fleet agent has its own options
    return require("hwfota.fleet.agent_cli").main({table.unpack(args, 2)}, io_)
  end
  local self = setmetatable({
    stdout = writer(io_.stdout, io.stdout), stderr = writer(io_.stderr, io.stderr),
    isatty = io_.isatty or default_isatty,
    read_line = io_.read_line or function() return io.stdin:read("l") end,
    getenv = io_.getenv or os.getenv,
    syslog = io_.syslog or default_syslog,
    samples = {},
  }, Cli)
  if args and args[1] == "fleet" then   -- its own options: hwfota.fleet.cli
    return require("hwfota.fleet.cli").main({table.unpack(args, 2)}, io_)
  end
  local o, pos = parse(args or {})
  if not o then
    self.stderr("hwfota: " .. pos .. "\n" .. "try: hwfota --help\n")
    return EXIT.USAGE
  end
  self.o = o
  local name = pos[1]
  if name ~= nil and not COMMANDS[name] then
    self.stderr(("hwfota: unknown command %q\ntry: hwfota --help\n"):format(name))
    return EXIT.USAGE
  end
  if o.help then
    self.stdout(HELP[name or ""])
    return EXIT.OK
  end
  if not name then
    self.stderr(HELP[""])
    return EXIT.USAGE
  end
  for _, opt in ipairs(o._seen or {}) do
    local cmds = OPTIONS[opt][3]
    if cmds and not cmds[name] then
      self.stderr(("hwfota: option %s does not apply to %s\ntry: hwfota %s --help\n")
                  :format(opt, name, name))
      return EXIT.USAGE
    end
  end
  if name ~= "at" and #pos > 1 then
    self.stderr(("hwfota: %s takes no argument (got %q)\n"):format(name, pos[2]))
    return EXIT.USAGE
  end
  if o.json then
    self.json_encode, self.json_null = json_module()
    if not self.json_encode then
      self.stderr("hwfota: --json needs dkjson (Debian lua-dkjson) or cjson (lua-cjson)\n")
      return EXIT.FAILURE
    end
  end
  local ok, hw = true, io_.hwfota
  if not hw then ok, hw = pcall(require, "hwfota") end
  if not ok then
    self.stderr("hwfota: cannot load the hwfota module: " .. tostring(hw) .. "\n")
    return EXIT.FAILURE
  end
  self.hwfota = hw
  self.list_ports = io_.list_ports or hw.list_ports
  self.now = io_.now or hw.now
  self.sleep = io_.sleep or hw.sleep
  self.bar_tty = not o.json and not o.syslog and self.isatty("stdout")
  self.trace = self:tracer()
  local rok, rc = xpcall(CMD[name], function(e)
    if tostring(e):find("interrupted!", 1, true) then return e end
    return debug.traceback(e, 2)
  end, self, {table.unpack(pos, 2)})
  if not rok then
    self:close_bar()
    if tostring(rc):find("interrupted!", 1, true) then
      self:err("interrupted; if an update was under way, run hwfota status (and the same " ..
               "command with the same --journal to resume)")
      return EXIT.INTERRUPTED
    end
    self:err("internal error: " .. tostring(rc))
    return EXIT.FAILURE
  end
  return rc
end

return M
