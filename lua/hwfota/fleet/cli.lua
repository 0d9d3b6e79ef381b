--- `hwfota fleet ...`: the operator's commands over the fleet's broker — the IMEI list
-- (`inventory`), staged rollouts (`rollout`, `resume`, `halt`) and their state
-- (`status`). `hwfota.cli` hands every `hwfota fleet` command line to `main`.
--
-- The bus is `hwfota.fleet.mqtt_bus` (the optional `hwfota.mqtt` binding over
-- libmosquitto) unless `io_.fleet.bus` makes another (the specs inject
-- `hwfota.fleet.membus` with a virtual clock). The clock is `hwfota.now`/`hwfota.timer`
-- and waiting is `hwfota.poll` unless `io_.fleet.clock`/`io_.fleet.wait` say otherwise.
-- @module hwfota.fleet.cli
-- @usage
-- local rc = require("hwfota.fleet.cli").main({"inventory", "--csv"}, {})
local controller = require "hwfota.fleet.controller"
local proto = require "hwfota.fleet.proto"
local json = require "hwfota.json"

local fmt = string.format
local M = {}

--- Exit codes (as `hwfota.cli`'s): 0 done, 1 failure (halted, broker unreachable),
-- 2 usage, 3 nothing to show, 130 interrupted.
-- @table EXIT
M.EXIT = {OK = 0, FAILURE = 1, USAGE = 2, NOTHING = 3, INTERRUPTED = 130}
local EXIT = M.EXIT

local BROKER = [[
Broker options (every fleet command):
  --broker HOST:PORT     the MQTT broker (HWFOTA_BROKER; default 127.0.0.1:1883)
  --username USER        (HWFOTA_BROKER_USERNAME)
  --password-file FILE   the password, first line of FILE (HWFOTA_BROKER_PASSWORD_FILE;
                         never on the command line)
  --cafile FILE          TLS with this CA certificate (HWFOTA_BROKER_CAFILE)
  --client-id ID         MQTT client id (default hwfota-fleet-<command>-<time>)
  --settle S             seconds to collect the retained messages after connecting
                         (default 3)
]]

local EXITS = [[
Exit codes: 0 done, 1 failure (rollout halted, broker unreachable), 2 usage error,
3 nothing to show, 130 interrupted.
]]

--- Help texts, by command (`""`: `hwfota fleet --help`).
-- @table HELP
M.HELP = {}
M.HELP[""] = [[
usage: hwfota fleet COMMAND [options]

The fleet of routers running `hwfota agent`, through an MQTT broker.

Commands:
  inventory [--csv|--json]   the routers: model, IMEI, firmware, country, location
  rollout --to VERSION ...   upgrade the fleet in waves; halts on too many failures
  status [--id ID] [--json]  the rollouts: waves, routers per phase, failures
  halt [--id ID]             stop sending a rollout's commands
  resume [--id ID]           go on with a halted rollout (runs it in this process)

]] .. BROKER .. "\n" .. EXITS

M.HELP.inventory = [[
usage: hwfota fleet inventory [--csv|--json] [broker options]

Lists the routers from their retained inventories: router, model, IMEI, firmware,
country, location, online. --csv prints the list Huawei's FOTA server asks for
(header model,imei,firmware,country,location,router), one router a line.

]] .. BROKER .. "\n" .. EXITS

M.HELP.rollout = [[
usage: hwfota fleet rollout --to VERSION [--waves 1%,10%,50%,100%]
         [--max-failure-rate 2%] [--window HH:MM-HH:MM] [--concurrency N]
         [--model MODEL] [--country CC] [--site SITE] [--id ID] [--state FILE]
         [--result-timeout S] [--halt-wait S] [--json] [broker options]

Sends `upgrade` commands to the routers, wave after wave. A router's wave comes from a
stable hash of its id and the rollout id (the policy kit's cohort): --waves are
cumulative percentages of the fleet. A wave starts when the previous one has a result
from each of its online routers and its failure rate is at most --max-failure-rate;
over it (or, while a wave runs, once its failures already exceed the limit on the wave's
size) the rollout halts and names the failing routers and their codes. Routers already
on VERSION count as done; offline routers are counted apart and commanded when they
come back; a router without a result --result-timeout seconds (default 7200) after its
command is a failure (ETIMEDOUT).
  --window HH:MM-HH:MM  command a router only in this time of ITS day (the agent's
                        utc_offset; UTC when it reports none)
  --concurrency N       at most N upgrades in flight at once
  --model, --country, --site   only the routers whose inventory says so
  --id ID               the rollout's name (default v<VERSION>); the same id again
                        takes the rollout up where it stopped
  --state FILE          also keep the rollout's state in FILE (atomic writes), so a
                        restarted controller sends no command again
  --halt-wait S         after a halt, wait up to S seconds (default 900) for the
                        results of the commands already sent, so the report names
                        every failure of the wave; 0 ends at once
The state is published retained on hwfota/fleet/rollout/<id>. Runs until every wave
has passed (exit 0) or the rollout halts (exit 1).

]] .. BROKER .. "\n" .. EXITS

M.HELP.status = [[
usage: hwfota fleet status [--id ID] [--json] [broker options]

Prints each rollout (or the one named): its state and why, a table of its waves
(routers, done, failed, offline, open), its failing routers with their codes; and the
routers per phase. --json prints one JSON document.

]] .. BROKER .. "\n" .. EXITS

M.HELP.halt = [[
usage: hwfota fleet halt [--id ID] [--reason TEXT] [broker options]

Asks the controller running the rollout to stop sending commands (upgrades in flight
go on). When no controller answers, marks the retained state halted itself. --id may
be left out when exactly one rollout is running.

]] .. BROKER .. "\n" .. EXITS

M.HELP.resume = [[
usage: hwfota fleet resume [--id ID] [--retry-failed] [--state FILE] [--halt-wait S]
         [--json] [broker options]

Takes a halted rollout up in this process and goes on: the failures so far are
accepted; failed routers get a new command only with --retry-failed. Runs like
`rollout` (exit 0 when every wave has passed, 1 when it halts again). One controller
per rollout: stop the one that halted first (a `rollout` exits when it halts).

]] .. BROKER .. "\n" .. EXITS

local ALL = {inventory = true, rollout = true, status = true, halt = true, resume = true}
local OPTIONS = {
  ["--help"] = {"help", false, ALL}, ["-h"] = {"help", false, ALL},
  ["--broker"] = {"broker", true, ALL},
  ["--username"] = {"username", true, ALL},
  ["--password-file"] = {"password_file", true, ALL},
  ["--cafile"] = {"cafile", true, ALL},
  ["--client-id"] = {"client_id", true, ALL},
  ["--settle"] = {"settle", true, ALL},
  ["--json"] = {"json", false, {inventory = true, status = true, rollout = true, resume = true}},
  ["--csv"] = {"csv", false, {inventory = true}},
  ["--id"] = {"id", true, {rollout = true, status = true, halt = true, resume = true}},
  ["--to"] = {"to", true, {rollout = true}},
  ["--waves"] = {"waves", true, {rollout = true}},
  ["--max-failure-rate"] = {"max_failure_rate", true, {rollout = true}},
  ["--window"] = {"window", true, {rollout = true}},
  ["--concurrency"] = {"concurrency", true, {rollout = true}},
  ["--model"] = {"model", true, {rollout = true}},
  ["--country"] = {"country", true, {rollout = true}},
  ["--site"] = {"site", true, {rollout = true}},
  ["--state"] = {"state", true, {rollout = true, resume = true}},
  ["--result-timeout"] = {"result_timeout", true, {rollout = true, resume = true}},
  ["--retry-failed"] = {"retry_failed", false, {resume = true}},
  ["--halt-wait"] = {"halt_wait", true, {rollout = true, resume = true}},
  ["--reason"] = {"reason", true, {halt = true}},
}

local function parse(cmd, args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, val = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    local spec = OPTIONS[name]
    if not spec then
      if a:sub(1, 1) == "-" then return nil, "unknown option " .. name end
      return nil, fmt("%s takes no argument (got %q)", cmd, a)
    end
    if not spec[3][cmd] then return nil, fmt("option %s does not apply to fleet %s", name, cmd) end
    if spec[2] then
      if val == nil then
        i = i + 1
        val = args[i]
        if val == nil then return nil, "option " .. name .. " needs a value" end
      end
      if #val > 4096 then return nil, "option " .. name .. ": value too long" end
      o[spec[1]] = val
    else
      if val ~= nil then return nil, "option " .. name .. " takes no value" end
      o[spec[1]] = true
    end
    i = i + 1
  end
  return o
end

-- "2%" or "0.02" -> 0.02
local function parse_rate(s)
  local p = s:match("^(%d+%.?%d*)%%$")
  if p then return tonumber(p) / 100 end
  local x = tonumber(s)
  if x and x >= 0 and x < 1 and s:match("^[%d.]+$") then return x end
  return nil
end

-- "1%,10%,50%,100%" -> {1, 10, 50, 100}
local function parse_waves(s)
  local out = {}
  for item in (s .. ","):gmatch("([^,]*),") do
    local p = item:match("^(%d+%.?%d*)%%?$")
    if not p then return nil end
    out[#out + 1] = tonumber(p)
  end
  return out
end

local function csv_field(v)
  v = v == nil and "" or tostring(v)
  if v:find('[,"\r\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
  return v
end

local Fleet = {}
Fleet.__index = Fleet

function Fleet:out(s) self.stdout(s .. "\n") end
function Fleet:err(s) self.stderr("hwfota fleet: " .. s .. "\n") end

-- The password, read from a file (never argv).
local function read_password(path)
  local f, msg = io.open(path, "rb")
  if not f then return nil, msg end
  local l = f:read("l")
  f:close()
  return l or ""
end

-- The bus and the controller, connected and settled.
function Fleet:connect(cmd, extra)
  local o = self.o
  local broker = o.broker or self.getenv("HWFOTA_BROKER") or "127.0.0.1:1883"
  local host, port = broker:match("^%[?([^%]]*)%]?:(%d+)$")
  if not host then host, port = broker, "1883" end
  port = tonumber(port)
  if host == "" or not port or port < 1 or port > 65535 then
    return nil, fmt("--broker %q: HOST:PORT expected", broker), EXIT.USAGE
  end
  local pwfile = o.password_file or self.getenv("HWFOTA_BROKER_PASSWORD_FILE")
  if pwfile then
    local ok, msg = read_password(pwfile)
    if not ok then return nil, "--password-file: " .. tostring(msg), EXIT.USAGE end
  end
  local username = o.username or self.getenv("HWFOTA_BROKER_USERNAME")
  if pwfile and not username then
    return nil, "--password-file needs --username (or HWFOTA_BROKER_USERNAME)", EXIT.USAGE
  end
  local cafile = o.cafile or self.getenv("HWFOTA_BROKER_CAFILE")
  local bopts = {host = host, port = port,
                 client_id = o.client_id or fmt("hwfota-fleet-%s-%d", cmd, os.time()),
                 username = username,
                 password_file = pwfile, tls = cafile and {cafile = cafile} or nil,
                 keepalive = 30}
  local bus, msg = self.make_bus(bopts)
  if not bus then return nil, fmt("broker %s:%d: %s", host, port, tostring(msg)), EXIT.FAILURE end
  self.bus = bus
  local settle = tonumber(o.settle or 3)
  if not settle or settle < 0 or settle > 600 then
    return nil, "--settle needs a number of seconds in [0, 600]", EXIT.USAGE
  end
  local copts = {bus = bus, clock = self.clock, settle = settle,
                 log = function(level, m)
                   if level == "warn" or level == "err" then self:err(m) end
                 end}
  for k, v in pairs(extra or {}) do copts[k] = v end
  local ctl = controller.new(copts)
  local ok, smsg = ctl:start()
  if not ok then return nil, "subscribe: " .. tostring(smsg), EXIT.FAILURE end
  self.ctl = ctl
  if not self.wait(function() return ctl.ready end, settle + 15) then
    return nil, fmt("broker %s:%d: no connection within %d s", host, port, settle + 15),
           EXIT.FAILURE
  end
  return ctl
end

function Fleet:close()
  if self.ctl then self.ctl:stop() end
  if self.bus then self.bus:close() end
end

function Fleet:json(doc)
  self.stdout(assert(json.encode(doc, {indent = true})) .. "\n")
end

local function pct(x) return fmt("%g%%", math.floor(x * 1000 + 0.5) / 10) end

-- A rollout state as the table `status` and `rollout` print.
function Fleet:render(st)
  local waves = {}
  for i, w in ipairs(st.waves or {}) do waves[i] = fmt("%g%%", w) end
  self:out(fmt("rollout %s: to %s, %s%s", st.id, tostring(st.to), tostring(st.state),
               st.reason and (": " .. st.reason) or ""))
  self:out(fmt("  waves %s, max failure rate %s%s%s", table.concat(waves, ","),
               pct(st.max_failure_rate or 0),
               st.window and (", window " .. st.window .. " router time") or "",
               st.concurrency and (", concurrency " .. st.concurrency) or ""))
  self:out(fmt("  %-5s %8s %8s %8s %8s %8s %8s", "wave", "percent", "routers", "done",
               "failed", "offline", "open"))
  for k, w in ipairs(st.waves_stats or {}) do
    self:out(fmt("  %-5s %8s %8d %8d %8d %8d %8d", (k == st.wave and "*" or "") .. k,
                 fmt("%g%%", w.percent), w.routers, w.done, w.failed, w.offline, w.open))
  end
  if (st.failures_total or 0) > 0 then
    self:out(fmt("  failing routers (%d):", st.failures_total))
    for _, f in ipairs(st.failures or {}) do
      self:out(fmt("    %-20s wave %d  %s%s", f.router, f.wave or 0, tostring(f.code),
                   f.message and ("  " .. f.message) or ""))
    end
    if #(st.failures or {}) < st.failures_total then
      self:out(fmt("    ... and %d more", st.failures_total - #st.failures))
    end
  end
end

local CMD = {}

function CMD.inventory(self)
  local ctl, msg, rc = self:connect("inventory")
  if not ctl then self:err(msg); return rc end
  local inv = ctl:inventory()
  self:close()
  if self.o.json then
    self:json({routers = inv})
  elseif self.o.csv then
    self:out("model,imei,firmware,country,location,router")
    for _, r in ipairs(inv) do
      local row = {}
      for i, k in ipairs{"model", "imei", "firmware", "country", "location", "router"} do
        row[i] = csv_field(r[k])
      end
      self:out(table.concat(row, ","))
    end
  else
    self:out(fmt("%-20s %-8s %-16s %-20s %-7s %-6s %s", "router", "model", "imei",
                 "firmware", "country", "online", "location"))
    for _, r in ipairs(inv) do
      self:out(fmt("%-20s %-8s %-16s %-20s %-7s %-6s %s", r.router, r.model, r.imei,
                   r.firmware, r.country or "-", r.online and "yes" or "no",
                   r.location or "-"))
    end
  end
  if #inv == 0 then
    self:err("no router has published an inventory")
    return EXIT.NOTHING
  end
  return EXIT.OK
end

-- The state file store: read as is, written atomically (temp + fsync + rename).
function Fleet:store(path)
  if not path then return nil end
  local hw = self.hwfota
  return {
    load = function()
      local f = io.open(path, "rb")
      if not f then return nil end
      local text = f:read("a")
      f:close()
      return text ~= "" and text or nil
    end,
    save = function(_, text) return hw.core.write_file_atomic(path, text) end,
  }
end

-- --halt-wait: seconds a halted rollout waits for the results already under way.
function Fleet:set_halt_wait()
  local v = self.o.halt_wait
  self.halt_wait = 900
  if v == nil then return true end
  local n = tonumber(v)
  if not n or n < 0 or n ~= n then return nil, "--halt-wait needs a number of seconds >= 0" end
  self.halt_wait = n
  return true
end

-- Run a rollout until it halts or every wave has passed; after a halt, until the
-- commands already sent have their results (--halt-wait).
function Fleet:drive(id, start)
  local ctl = self.ctl
  local last_wave
  ctl.on_event = function(ev, st)
    if ev == "wave" and st.wave ~= last_wave then
      last_wave = st.wave
      if not self.o.json then
        self:out(fmt("wave %d (%g%%): %d routers", st.wave, st.waves[st.wave],
                     st.waves_stats[st.wave].routers))
      end
    elseif ev == "halt" and not self.o.json then
      self:out("halted: " .. tostring(st.reason))
    end
  end
  local res, msg, code
  ctl:when_ready(function() res, msg, code = start() end)
  if not res then
    self:close()
    self:err(tostring(msg))
    return code == "EINVAL" and EXIT.USAGE or EXIT.FAILURE
  end
  self.wait(function()
    local st = ctl:state(id)
    return st and (st.state == "halted" or st.state == "done")
  end, nil)
  local halted = ctl:state(id)
  if halted.state == "halted" and halted.inflight > 0 and self.halt_wait > 0 then
    -- commands already out go on in the routers (a halt sends no new ones): their
    -- results name the rest of the wave's failures, which the operator needs now
    if not self.o.json then
      self:out(fmt("waiting up to %g s for the %d router(s) still upgrading", self.halt_wait,
                   halted.inflight))
    end
    self.wait(function() return ctl:state(id).inflight == 0 end, self.halt_wait)
  end
  ctl:publish_now(id)
  local st = ctl:state(id)
  self.wait(function() return false end, 0.5)    -- let the last state go out
  self:close()
  if self.o.json then self:json(st) else self:render(st) end
  return st.state == "done" and EXIT.OK or EXIT.FAILURE
end

function CMD.rollout(self)
  local o = self.o
  if not o.to then self:err("rollout needs --to VERSION"); return EXIT.USAGE end
  local spec = {to = o.to, id = o.id}
  if not spec.id then
    spec.id = ("v" .. o.to):gsub("[^%w_.-]", "_"):sub(1, 32)
  end
  if o.waves then
    spec.waves = parse_waves(o.waves)
    if not spec.waves then
      self:err(fmt("--waves %q: percentages like 1%%,10%%,50%%,100%%", o.waves))
      return EXIT.USAGE
    end
  end
  if o.max_failure_rate then
    spec.max_failure_rate = parse_rate(o.max_failure_rate)
    if not spec.max_failure_rate then
      self:err(fmt("--max-failure-rate %q: a percentage like 2%%", o.max_failure_rate))
      return EXIT.USAGE
    end
  end
  spec.window = o.window
  if o.concurrency then
    spec.concurrency = tonumber(o.concurrency)
    if not spec.concurrency or spec.concurrency ~= math.floor(spec.concurrency)
       or spec.concurrency < 1 then
      self:err("--concurrency needs an integer >= 1"); return EXIT.USAGE
    end
  end
  if o.model or o.country or o.site then
    spec.select = {model = o.model, country = o.country, site = o.site}
  end
  local checked, msg = controller.check_spec(spec)
  if not checked then self:err(msg); return EXIT.USAGE end
  local extra = {store = self:store(o.state)}
  if o.result_timeout then
    extra.result_timeout = tonumber(o.result_timeout)
    if not extra.result_timeout or extra.result_timeout <= 0 then
      self:err("--result-timeout needs a number of seconds > 0"); return EXIT.USAGE
    end
  end
  local hw_ok, hw_msg = self:set_halt_wait()
  if not hw_ok then self:err(hw_msg); return EXIT.USAGE end
  local ctl, cmsg, rc = self:connect("rollout", extra)
  if not ctl then self:err(cmsg); return rc end
  if not o.json then
    self:out(fmt("rollout %s: %s to %d routers known", spec.id, spec.to, #ctl:inventory()))
  end
  return self:drive(spec.id, function() return ctl:rollout(spec) end)
end

-- The retained rollout states on the broker.
local function states(ctl)
  local ids = {}
  for id in pairs(ctl.adopted) do ids[#ids + 1] = id end
  table.sort(ids)
  local out = {}
  for _, id in ipairs(ids) do out[#out + 1] = ctl.adopted[id] end
  return out
end

-- --id, or the one rollout in `want` state.
function Fleet:pick(ctl, want)
  if self.o.id then
    if not proto.valid_rollout_id(self.o.id) then
      return nil, fmt("--id %q: 1..32 of A-Z a-z 0-9 _ . -", self.o.id), EXIT.USAGE
    end
    return self.o.id
  end
  local found = {}
  for _, st in ipairs(states(ctl)) do
    if st.state == want then found[#found + 1] = st.id end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then return nil, fmt("no %s rollout on the broker", want), EXIT.NOTHING end
  return nil, fmt("several %s rollouts (%s): choose one with --id", want,
                  table.concat(found, ", ")), EXIT.USAGE
end

function CMD.resume(self)
  local o = self.o
  local extra = {store = self:store(o.state)}
  if o.result_timeout then extra.result_timeout = tonumber(o.result_timeout) end
  local hw_ok, hw_msg = self:set_halt_wait()
  if not hw_ok then self:err(hw_msg); return EXIT.USAGE end
  local ctl, msg, rc = self:connect("resume", extra)
  if not ctl then self:err(msg); return rc end
  local id, perr, prc = self:pick(ctl, "halted")
  if not id then self:close(); self:err(perr); return prc end
  return self:drive(id, function()
    local st, err, code = ctl:rollout{id = id}
    if not st then return nil, err, code end
    if st.state == "halted" then
      local ok, rerr, rcode = ctl:resume(id, {retry_failed = o.retry_failed})
      if not ok then return nil, rerr, rcode end
    end
    if not o.json then self:out(fmt("rollout %s resumed at wave %d", id, st.wave)) end
    return st
  end)
end

function CMD.halt(self)
  local o = self.o
  local ctl, msg, rc = self:connect("halt")
  if not ctl then self:err(msg); return rc end
  local id, perr, prc = self:pick(ctl, "running")
  if not id then self:close(); self:err(perr); return prc end
  local reason = o.reason or "halted by operator"
  self.bus:publish(controller.control_topic(id), assert(json.encode{
    v = 1, type = "control", op = "halt", reason = reason}), {qos = 1})
  local function halted()
    local st = ctl.adopted[id]
    return st and st.state == "halted"
  end
  local seen = self.wait(halted, 5)
  if not seen then
    -- no controller answered: mark the retained state halted (a later resume needs it)
    local st = ctl.adopted[id]
    if not st then
      self:close()
      self:err(fmt("no rollout %s on the broker", id))
      return EXIT.NOTHING
    end
    st.state, st.reason = "halted", reason .. " (no controller was running)"
    st.rev = (st.rev or 0) + 1
    self.bus:publish(assert(proto.rollout_topic(id)), assert(json.encode(st)),
                     {retain = true, qos = 1})
    self.wait(halted, 5)
  end
  self:close()
  self:out(fmt("rollout %s halted%s", id, seen and "" or " (no controller was running)"))
  return EXIT.OK
end

function CMD.status(self)
  local ctl, msg, rc = self:connect("status")
  if not ctl then self:err(msg); return rc end
  local list = states(ctl)
  if self.o.id then
    local one = {}
    for _, st in ipairs(list) do if st.id == self.o.id then one[1] = st end end
    list = one
  end
  local phases, online, total = {}, 0, 0
  for _, r in pairs(ctl.routers) do
    if r.inv then
      total = total + 1
      if r.online ~= false then online = online + 1 end
      local ph = r.status and r.status.phase or "unknown"
      phases[ph] = (phases[ph] or 0) + 1
    end
  end
  self:close()
  if self.o.json then
    self:json({rollouts = list, routers = {total = total, online = online, phases = phases}})
  else
    for _, st in ipairs(list) do self:render(st) end
    local ph = {}
    for k, v in pairs(phases) do ph[#ph + 1] = fmt("%s %d", k, v) end
    table.sort(ph)
    self:out(fmt("routers: %d (%d online)%s", total, online,
                 #ph > 0 and ("; " .. table.concat(ph, ", ")) or ""))
  end
  if #list == 0 then
    if self.o.id then self:err(fmt("no rollout %s on the broker", self.o.id)) end
    return EXIT.NOTHING
  end
  return EXIT.OK
end

-- The field's bus: hwfota.fleet.mqtt_bus over the optional hwfota.mqtt binding.
local function default_bus(opts)
  local ok, mqtt_bus = pcall(require, "hwfota.fleet.mqtt_bus")
  if not ok then
    return nil, "hwfota.fleet.mqtt_bus is not available (hwfota.mqtt is built only "
                .. "with libmosquitto-dev): " .. tostring(mqtt_bus):match("^[^\n]*")
  end
  local bok, bus, msg, code = pcall(mqtt_bus.new, opts)
  if not bok then return nil, tostring(bus), "EINVAL" end
  return bus, msg, code
end

--- Run `hwfota fleet ARGS...`.
-- @tparam table args the arguments after `fleet`
-- @tparam[opt] table io_ `stdout`, `stderr` (functions or files), `getenv`, `hwfota`
--   (the module), `fleet = {bus = fn(opts) -> bus, clock = {now, timer},
--   wait = fn(pred, seconds|nil) -> boolean}`
-- @treturn integer exit code (`EXIT`)
function M.main(args, io_)
  if type(args) ~= "table" then error("hwfota.fleet.cli.main: args must be a table", 2) end
  io_ = io_ or {}
  local function writer(w, file)
    if type(w) == "function" then return w end
    local f = w or file
    return function(s) f:write(s); f:flush() end
  end
  local self = setmetatable({stdout = writer(io_.stdout, io.stdout),
                             stderr = writer(io_.stderr, io.stderr),
                             getenv = io_.getenv or os.getenv}, Fleet)
  local cmd = args[1]
  if cmd == nil or cmd == "--help" or cmd == "-h" then
    if cmd then self.stdout(M.HELP[""]); return EXIT.OK end
    self.stderr(M.HELP[""])
    return EXIT.USAGE
  end
  if not CMD[cmd] then
    self.stderr(fmt("hwfota fleet: unknown command %q\ntry: hwfota fleet --help\n", cmd))
    return EXIT.USAGE
  end
  local o, perr = parse(cmd, {table.unpack(args, 2)})
  if not o then
    self.stderr(fmt("hwfota fleet: %s\ntry: hwfota fleet %s --help\n", perr, cmd))
    return EXIT.USAGE
  end
  if o.help then self.stdout(M.HELP[cmd]); return EXIT.OK end
  if o.csv and o.json then
    self.stderr("hwfota fleet: --csv and --json exclude each other\n")
    return EXIT.USAGE
  end
  if not json.available then
    self.stderr("hwfota fleet: needs dkjson (Debian lua-dkjson) or cjson (lua-cjson)\n")
    return EXIT.FAILURE
  end
  self.o = o
  local f = io_.fleet or {}
  local hw = io_.hwfota
  if not hw and not (f.clock and f.wait) or o.state then
    local ok, mod = pcall(require, "hwfota")
    if not ok then
      self.stderr("hwfota fleet: cannot load the hwfota module: " .. tostring(mod) .. "\n")
      return EXIT.FAILURE
    end
    hw = hw or mod
  end
  self.hwfota = hw
  self.make_bus = f.bus or default_bus
  self.clock = f.clock or {now = hw.now, timer = hw.timer}
  self.wait = f.wait or function(pred, seconds)
    local deadline = seconds and hw.now() + seconds
    while not pred() do
      if deadline and hw.now() >= deadline then return false end
      hw.poll({}, 0.2)
    end
    return true
  end
  local ok, rc = xpcall(CMD[cmd], function(e)
    if tostring(e):find("interrupted!", 1, true) then return e end
    return debug.traceback(e, 2)
  end, self)
  if ok then return rc end
  pcall(Fleet.close, self)
  if tostring(rc):find("interrupted!", 1, true) then
    self:err("interrupted; a rollout goes on where it stopped with the same command (or "
             .. "hwfota fleet resume)")
    return EXIT.INTERRUPTED
  end
  self:err("internal error: " .. tostring(rc))
  return EXIT.FAILURE
end

return M
