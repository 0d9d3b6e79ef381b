--- hwfota: firmware-over-the-air updates of Huawei MU509/MU609 modules.
--
-- The Lua half of the module. The C core (`hwfota.core`) does the transport
-- (libserialport for serial devices, POSIX termios for pseudo-terminals), the
-- AT engine and the FOTA state machine; this file is the documented public API.
--
-- Conventions: a function that can fail at run time returns `nil, message, CODE`
-- (stable upper-case codes: `ETIMEDOUT`, `EPORTLOST`, `EBUSY`, `ENOENT`, `ECME`,
-- `ECMS`, `EERROR`, `EOVERFLOW`, `ECLOSED`, `EINVAL` ...). Wrong argument types
-- raise an error. Times are in seconds.
--
-- @module hwfota
-- @usage
-- local hwfota = require "hwfota"
-- local port <close> = assert(hwfota.open("/dev/ttyUSB2"))
-- local res = assert(port:command("AT+GMR"))
-- print(res.lines[1])       --> 12.815.01.03.00

local core = require "hwfota.core"

local M = {}

--- Version of hwfota.
M._VERSION = "hwfota 0.1.0"

--- The C core, for advanced uses (custom event loops).
M.core = core

local function check_opts(opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to '%s' (table expected, got %s)"):format(fname, type(opts)), 3)
  end
  return opts or {}
end

--- List the serial ports of this machine (through libserialport).
-- @treturn table array of `{path=, description=, transport=, vid=, pid=,
--   manufacturer=, product=, serial=, usb_bus=, usb_address=, interface=,
--   usb_class=, usb_subclass=, usb_protocol=, by_id=, role=, huawei=}`;
--   `huawei` is true for USB vendor 0x12d1. `interface` is the tty's USB interface
--   number (sysfs `bInterfaceNumber`, else the by-id name's `-ifNN-`), `usb_class`,
--   `usb_subclass`, `usb_protocol` that interface's class triple, `by_id` the
--   `/dev/serial/by-id/...` link to the port, `role` what a Huawei triple says:
--   `"pcui"` (ff/01|02/02, the AT port FOTA uses), `"modem"` (ff/01|02/01, the PPP
--   data port), `"diag"` (ff/01|02/03), `"gps"` (ff/01/05, MU609's NMEA port).
--   Missing fields are nil (unknown).
-- @return or `nil, message, code`
function M.list_ports()
  return core.list_ports()
end

--- Open a module's AT port.
-- Serial devices go through libserialport (`port:kind() == "serial"`);
-- pseudo-terminals and other character devices that libserialport refuses
-- are opened with POSIX termios (`"pty"`). The port is held exclusively.
-- @tparam string path e.g. `"/dev/ttyUSB2"` or a simulator's symlink
-- Before the first command (and after every `port:reopen`) the line is
-- brought in step: a previous process may have left a command whose answer
-- is still to come, so a resync query (`AT+CMEE?`, else `AT+CSQ`, `AT+CSCS?`,
-- else `AT` when the firmware refuses them all) goes out first, stale lines
-- are discarded (events `resync`, `discarded`, `resync_done`), and the first
-- command waits about 0.3 s longer (the quiet interval).
-- @tparam[opt] table opts `baudrate` (default 115200), `flow` (`"none"` or
--   `"rtscts"`), `timeout` (default seconds per command, 30), `sync`
--   (default true; false writes the first command without the sync, only for
--   a test peer that scripts the exact exchange)
-- @treturn Port the port
-- @return or `nil, message, code` (`ENOENT`, `EBUSY` when another process
--   such as ModemManager holds it, `EACCES`, `EINVAL` ...)
function M.open(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'open' (string expected, got %s)"):format(type(path)), 2)
  end
  opts = check_opts(opts, "open")
  for k in pairs(opts) do
    if k ~= "baudrate" and k ~= "flow" and k ~= "timeout" and k ~= "sync" then
      error(("bad argument #2 to 'open' (unknown option '%s')"):format(tostring(k)), 2)
    end
  end
  -- name the option in the message (the C core only knows argument numbers)
  local b, f, t = opts.baudrate, opts.flow, opts.timeout
  if b ~= nil and (type(b) ~= "number" or math.tointeger(b) == nil) then
    error(("bad option 'baudrate' to 'open' (integer expected, got %s)"):format(
      type(b) == "number" and tostring(b) or type(b)), 2)
  end
  if f ~= nil and f ~= "none" and f ~= "rtscts" then   -- "none\0x" too
    error(("bad option 'flow' to 'open' (\"none\" or \"rtscts\" expected, got %s)"):format(
      type(f) == "string" and ("%q"):format(f:sub(1, 20)) or type(f)), 2)
  end
  if t ~= nil and type(t) ~= "number" then
    error(("bad option 'timeout' to 'open' (number of seconds expected, got %s)"):format(type(t)), 2)
  end
  if opts.sync ~= nil and type(opts.sync) ~= "boolean" then
    error(("bad option 'sync' to 'open' (boolean expected, got %s)"):format(type(opts.sync)), 2)
  end
  return core.open(path, opts.baudrate, opts.flow, opts.timeout, opts.sync ~= false)
end

--- Wait for I/O on several ports at once (one `poll()`), dispatching results
-- and unsolicited codes to their callbacks; watched fds (`watch`), timers
-- (`timer`) and signal handlers (`on_signal`) are served in the same wait.
-- @tparam table ports array of ports
-- @tparam[opt=0] number seconds longest wait
-- @treturn integer number of events dispatched on the ports
function M.poll(ports, seconds)
  return require("hwfota.loop").poll(ports, seconds)
end

--- Seconds on a monotonic clock.
-- @treturn number
function M.now()
  return core.now()
end

local session = require "hwfota.session"
local run = require "hwfota.run"
local loop = require "hwfota.loop"

--- Open a FOTA session on a module: the step-by-step API.
-- Every step runs the C state machine, so its safety rules hold here too
-- (`AT^FWUP` only in state 40, never twice, never a downgrade unless forced).
-- @tparam Port|string port_or_path an open port, or a path to open
-- @tparam[opt] table opts `journal` (path of the journal file: a regular file or a
--   new name in a directory, else `nil, message, "EJOURNAL"`), `reboot_timeout`
--   (seconds, default 180), `force`, `models` (`{[model] = minimum firmware}`: rows
--   added to the supported-firmware table, e.g. `{MU709 = "11.0.0.0.0"}` or the seed's
--   demo versions `{MU509 = "12.815.01.03.00"}`), `skip_model_check` (no model check at
--   all), `apn`/`user`/`password`/`auth`, `mode` {auto_query,
--   auto_download, auto_upgrade, resume, period}, `check_prereq` (default true:
--   `AT+CPIN?`, `AT+CREG?`, `AT+CGREG?`; a query the firmware does not support is a
--   notice), `auto_upgrade_ok` (default false; without `mode` the `AT^FOTAMODE` sent
--   before each download is 0,0,0,1, with it 0,0,1,1 unless the policy has
--   `on_downloaded`), `trace` (function(dir, text)), `baudrate`, `flow`, `timeout`,
--   `setup` (commands sent after every open, default `{"ATE0", "AT+CMEE=2"}`; harmless
--   forms only, else `EINVAL`), `command_timeout`, `read_imei`, `resume`, `cmd_retries`,
--   `max_redetect` and the state machine's timing options: every one, with its default,
--   in the README's options table. A session holds its module until `s:close()`: a
--   second session or `run` on it in this process is `EBUSY`.
-- @treturn Session or `nil, message, code`
-- @usage
-- local s = assert(hwfota.session("/dev/ttyUSB2", {journal = "/etc/hwfota/state"}))
-- print(s:info().revision, s:state().name)
-- local offer = s:detect()           -- {version=, size=, description=} | false
-- if offer then assert(s:download{progress = function(p) print(p.percent) end}) end
-- print(assert(s:upgrade()).to)
function M.session(port_or_path, opts)
  return session.session(port_or_path, opts)
end

--- Run the whole FOTA flow on a module, under a policy.
-- Probe (version, IMEI, model), prerequisites (SIM, registration), configuration
-- (`AT^FOTACFG`, `AT^FOTAMODE` when given), detection, download with progress,
-- upgrade, the module's reset and return, and verification of the new version.
-- @tparam Port|string port_or_path
-- @tparam[opt] table policy hooks (all optional): `on_new_version(info)` ->
--   "download" | "defer" | "reject" [, retry_after, reason]; `on_downloaded(info)`
--   -> "upgrade" | "defer" | "reject" | "keep_until_reboot" (defer and reject discard
--   the image with AT^FOTADL=0, as the module would otherwise apply it at its next
--   reboot; keep_until_reboot leaves it there, and the module applies it at its next
--   reboot). A hook that raises or answers anything else: the offer or image is
--   discarded and the run fails EPOLICY with the hook's error (the message lists the
--   valid answers). `on_failure(err, attempt)` -> seconds before a retry,
--   or nil/false to give up; `on_progress(p, control)`; `on_event(e, control)`;
--   `on_start(control)` (once per attempt, before the first command);
--   `before_detect(ctx)` and `after(ctx)` (data-connection guards). See `hwfota.policy`.
--   `control` steers the running flow from a hook or another task:
--   `control.pause()` (phase download: AT^FOTADL=2, phase becomes "paused"),
--   `control.resume()` (phase paused: AT^FOTADL=1), `control.cancel()`,
--   `control.phase()`; each returns true or `nil, message, "ESTATE"`.
-- @tparam[opt] table opts as for `session`
-- Hooks run protected: one that raises does not stop the run (a decision hook that
-- raises fails it with `EPOLICY`, a guard that raises refuses the attempt), and the
-- error is listed in the report's `hook_errors` ("hook: message", the first 32).
-- @treturn table report `{status = "upgraded" | "no_new_version" | "deferred" |
--   "rejected" | "not_newer" | "failed", from =, to =, version =, code =, message =,
--   module_code =, attempts =, events = {...} (the machine's events in order; a run
--   of download-progress events only as its latest), hook_errors = {...} (nil when no
--   hook raised), guard_error =, journal_error =}`
function M.run(port_or_path, policy, opts)
  return run.run(port_or_path, policy, opts)
end

--- Check a text parameter that goes into an AT command (`apn`, `user`, `password`)
-- by the state machine's own rule (the one `run`, `Session:configure` and the
-- `hwfota` command apply): at most 63 bytes, no `"`, `;`, CR, LF, NUL or other
-- control byte (0x00-0x1F, 0x7F).
-- @tparam string name what the value is, for the message
-- @tparam string value
-- @return true, or `nil, message, "EINVAL"`
function M.check_at_param(name, value)
  return core.check_at_param(name, value)
end

--- Start a task (a coroutine) on the shared poll loop; see `loop`.
-- @tparam function fn
-- @param ... its arguments
-- @treturn table the task (`ok`, `result`, `error` once finished)
function M.spawn(fn, ...)
  return loop.spawn(fn, ...)
end

--- Run the shared loop until every spawned task has finished and no watcher
-- (`watch`) or timer (`timer`) is left.
-- @treturn table array of failed tasks
function M.loop()
  return loop.run()
end

--- Sleep inside the loop (other tasks go on).
-- @tparam number seconds
function M.sleep(seconds)
  return loop.sleep(seconds)
end

--- Watch an fd on the poll loop the modules use (sockets, pipes, a network
-- client): `callback(ready, watcher)` runs whenever it is ready, in
-- `hwfota.loop()` and in the private loop of any blocking call. Level-triggered
-- (like poll): read or accept what is there, or cancel.
-- A callback runs on the loop, not in a task (`hwfota.spawn` one for work that
-- waits); while it runs, its own fd is not watched by nested loops. A callback
-- that raises cancels its watcher and the error ("hwfota.watch callback
-- failed: ...") is raised from the loop that ran it.
-- @param target an fd (integer), or an object with `getfd()` (LuaSocket) or
--   `fileno()` (a `Port`), asked on every loop step; cancel the watcher before
--   closing the object
-- @tparam string events `"r"`, `"w"` or `"rw"`
-- @tparam function callback `callback(ready, watcher)`: `ready` is `"r"`, `"w"`
--   or `"rw"`, with `"h"` appended on a hang-up or error
-- @tparam[opt] table opts `keep_alive` (default true: `hwfota.loop()` keeps
--   running while the watcher is active)
-- @treturn table watcher, with `watcher:cancel()` and `watcher:active()`
-- @usage
-- local server = assert(socket.bind("127.0.0.1", 7000))
-- hwfota.watch(server, "r", function() local c = server:accept() ... end)
-- hwfota.loop()
function M.watch(target, events, callback, opts)
  return loop.watch(target, events, callback, opts)
end

--- Call `callback(timer)` once, `seconds` from now, on the poll loop (as
-- `watch`: in `hwfota.loop()` and in any blocking call's loop; errors the same).
-- One-shot: to repeat, start a new timer from the callback.
-- @tparam number seconds non-negative, finite
-- @tparam function callback
-- @treturn table timer, with `timer:cancel()` and `timer:active()`
function M.timer(seconds, callback)
  return loop.timer(seconds, callback)
end

--- Signals as loop events: `callback(name, handler)` runs on the poll loop
-- after the process got one of `names` (`"INT"`, `"TERM"`, `"HUP"`, `"USR1"`,
-- `"USR2"`), between two steps where stopping is safe, instead of the
-- signal's default action or the interpreter's "interrupted!" error. Served by
-- every loop (`hwfota.loop()`, a blocking call's, `hwfota.poll`); a blocking
-- `port:command` outside a task sees it once it returns. Errors as for `watch`.
-- @param names a name or an array of names
-- @tparam function callback
-- @tparam[opt] table opts `once`: a second signal of the kind, while the handler
--   is active, ends the process at once (ports released), as Ctrl-C twice should
-- @treturn table handler with `handler:cancel()` (the previous disposition comes
--   back) and `handler:active()`; it does not keep `hwfota.loop()` running
-- @return or `nil, message, code`
-- @usage
-- local stop = false
-- local h = assert(hwfota.on_signal({"INT", "TERM"}, function() stop = true end))
-- while not stop do hwfota.poll({port}, 1) end
-- h:cancel()
function M.on_signal(names, callback, opts)
  return loop.on_signal(names, callback, opts)
end

--- Compare two firmware versions field by field.
-- @tparam string a
-- @tparam string b
-- @treturn integer -1, 0 or 1, or `nil, message` when a version is malformed
function M.version_compare(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then
    error(("bad argument #%d to 'version_compare' (string expected, got %s)"):format(
      type(a) ~= "string" and 1 or 2, type(type(a) ~= "string" and a or b)), 2)
  end
  return core.version_compare(a, b)
end

--- Port methods.
-- Implemented in C (csrc/lua_port.c); documented here.
-- @type Port

--- Send an AT command and wait for its final result.
-- Unsolicited codes that arrive meanwhile (even inside the response) are
-- dispatched to their handlers, never mixed into the result. Inside a task
-- (`spawn`) the wait yields to the shared loop: other tasks, watchers and
-- timers go on meanwhile.
-- @function Port:command
-- @tparam string cmd e.g. `"AT+GMR"`; CR, LF and NUL are refused (`EINVAL`)
-- @tparam[opt] table opts `prefix` (string or array: only lines with these
--   prefixes are response lines), `expect` (`"all"` default, or `"none"`),
--   `timeout` (seconds, counted from the last byte written)
-- @treturn table `{lines = {...}, final = "OK", command =, elapsed =}`
-- @return or `nil, message, code, detail`: on `+CME ERROR: <x>` the message is
--   the final line, code `ECME`, and `detail` the result table with `kind`,
--   `code` (numeric) or `text`

--- Send a command without waiting.
-- @function Port:send
-- @tparam string cmd
-- @tparam[opt] table opts as for `command`
-- @tparam[opt] function callback called as `callback(res)` or
--   `callback(nil, message, code, detail)` when the command finishes
-- @treturn integer command id (see `result`) or `nil, message, code`

--- Collect the result of a command sent without a callback.
-- @function Port:result
-- @tparam integer id
-- @return the values `command` would have returned, or `false` when not finished,
--   or `nil, message, "EINVAL"` for an id that has no result to come (never sent,
--   already collected, or sent with a callback)

--- Wait up to `seconds` for I/O and dispatch what arrives.
-- @function Port:poll
-- @tparam[opt=0] number seconds
-- @treturn integer events dispatched, or `nil, message, code` when the port is lost

--- Subscribe to unsolicited lines starting with `prefix` (`""` for every line).
-- A handler that raises is reported (see `on_event`); the port keeps working.
-- @function Port:on
-- @tparam string prefix e.g. `"^FOTASTATE:"`
-- @tparam function fn called as `fn(line)`
-- @treturn integer handler id
-- @return or `nil, message, "ENOSPC"` when the port already has 32 handlers

--- Remove a handler (safe from inside the handler itself).
-- @function Port:off
-- @tparam integer id
-- @treturn boolean whether it existed

--- Set the diagnostics callback: `fn{event=, detail=}` with events `timeout`,
-- `resync`, `resync_done`, `resync_failed`, `resync_refused` (the firmware
-- answered a resync query with an error), `resync_fallback` (none left: plain
-- `AT`), `discarded`, `overflow` (an over-long line dropped; detail: its
-- length), `stale_exclusive` (the open took over a flag a killed process left),
-- `port_lost`, `callback_error`.
-- @function Port:on_event
-- @tparam function|nil fn

--- The fd, for outside event loops (OpenWrt uloop).
-- @function Port:fileno
-- @treturn integer

--- `"serial"` (libserialport) or `"pty"` (POSIX).
-- @function Port:kind
-- @treturn string

--- The path the port was opened with.
-- @function Port:path
-- @treturn string

--- True once the port was lost (module reset, unplug) or closed.
-- @function Port:is_lost
-- @treturn boolean

--- Counters: timeouts, consecutive_timeouts, overflows, urcs, echoes, idle.
-- @function Port:stats
-- @treturn table

--- Open the port again after it was lost (module reset): at the same path, or
-- at `path` when the module came back under another name.
-- @function Port:reopen
-- @tparam[opt] string path
-- @return `true` or `nil, message, code`

--- Close the port (idempotent; also `__close` and `__gc`). Commands still
-- pending fail with `ECLOSED`.
-- @function Port:close
-- @treturn boolean true

return M
