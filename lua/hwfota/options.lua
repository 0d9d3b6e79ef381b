--- hwfota.options: the options of `hwfota.run` and `hwfota.session`, checked once.
--
-- Which names exist (the session's own and the C state machine's), what a `setup`
-- command may be, how options split between the port, the driver and the machine,
-- and the port itself from a path or a port object.
--
-- @module hwfota.options

local core = require "hwfota.core"

local M = {}


-- Keys of run/session options that are not the state machine's.
local own_keys = {journal = true, trace = true, setup = true, command_timeout = true,
                  baudrate = true, flow = true, timeout = true, reopen_watch = true}

--- Every option name `hwfota.run` and `hwfota.session` accept (the session's own and
-- the state machine's), sorted: what the README's options table documents.
-- @treturn {string,...}
function M.option_names()
  local names = {}
  for k in pairs(own_keys) do names[#names + 1] = k end
  for _, k in ipairs(core.fota_options) do
    if not own_keys[k] then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

local function bad_option(name, what, level)
  error(("bad option '%s' (%s)"):format(name, what), level + 1)
end

--- Check one `setup` command: sent after every (re)open, outside the state machine,
-- it must not change what the module does (FOTA commands, resets, factory defaults,
-- functionality changes). The rule is the C core's (`csrc/fota_cmds.h`,
-- `hf_fota_check_setup_command`): an allow-list of forms, so that nothing slips
-- through by spelling.
-- @tparam string c the command
-- @return true, or false and why
function M.check_setup_command(c)
  return core.check_setup_command(c)
end

-- The state machine's part of an options table is shared by the runs and sessions
-- made with that table (1,000 modules started with one table: one copy, not 1,000;
-- nobody writes into it), and made again when the table changed since.
local fsm_parts = setmetatable({}, {__mode = "k"})   -- opts -> {part =, n =}

local function fsm_part(opts)
  local c = fsm_parts[opts]
  if c then
    local n = 0
    for k, v in pairs(opts) do
      if not own_keys[k] then
        if c.part[k] ~= v then c = nil; break end
        n = n + 1
      end
    end
    if c and n == c.n then return c.part, c end
  end
  local part, n = {}, 0
  for k, v in pairs(opts) do
    if not own_keys[k] then part[k] = v; n = n + 1 end
  end
  c = {part = part, n = n}
  fsm_parts[opts] = c
  return part, c
end

-- Check the options that are the session's own, and the state machine's (by
-- building one: it raises on unknown options and wrong types), before any port
-- is opened or command sent. Raises on misuse; returns nil, msg, "EINVAL" for
-- a value out of range.
local function check_opts(opts, level)
  level = level + 1
  if opts == nil then return true end
  local j = opts.journal
  if j ~= nil and (type(j) ~= "string" or j == "" or #j > 3000 or j:find("%z")) then
    bad_option("journal", "a non-empty file path expected", level)
  end
  if opts.trace ~= nil and type(opts.trace) ~= "function" then
    bad_option("trace", "function expected", level)
  end
  if opts.setup ~= nil then
    if type(opts.setup) ~= "table" then bad_option("setup", "array of commands expected", level) end
    for i, c in ipairs(opts.setup) do
      if type(c) ~= "string" then bad_option("setup", ("command %d is not a string"):format(i), level) end
      local ok, why = M.check_setup_command(c)
      if not ok then
        return nil, ("setup command %d %q refused: %s"):format(i, c:sub(1, 40), why), "EINVAL"
      end
    end
  end
  local ct = opts.command_timeout
  if ct ~= nil and (type(ct) ~= "number" or not (ct > 0 and ct <= 3600)) then
    bad_option("command_timeout", "seconds in (0, 3600] expected", level)
  end
  local b = opts.baudrate
  if b ~= nil and (math.type(b) ~= "integer" or b < 50 or b > 4000000) then
    bad_option("baudrate", "integer 50..4000000 expected", level)
  end
  if opts.flow ~= nil and opts.flow ~= "none" and opts.flow ~= "rtscts" then
    bad_option("flow", '"none" or "rtscts" expected', level)
  end
  if opts.reopen_watch ~= nil and type(opts.reopen_watch) ~= "boolean" then
    bad_option("reopen_watch", "boolean expected", level)
  end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or not (t > 0 and t <= 3600)) then
    bad_option("timeout", "seconds in (0, 3600] expected", level)
  end
  -- a part already built into a machine once is not built again for each run of
  -- the same table (a value changed inside a nested table, `mode`, after that: the
  -- run's own machine refuses it, and the run fails with EINVAL)
  local fsm_opts, entry = fsm_part(opts)
  if entry.valid then return true end
  local okc, fsm, msg, code = pcall(core.fota_new, fsm_opts)
  if not okc then error(tostring(fsm):gsub("^[^:]*:%d+: ", ""), level) end
  if not fsm then return nil, msg, code end
  fsm:close()
  entry.valid = true
  return true
end

local function split_opts(opts)
  local o = {fsm = opts and fsm_part(opts) or {}}
  for k, v in pairs(opts or {}) do
    if own_keys[k] then o[k] = v end
  end
  return o
end

local function ensure_port(port_or_path, opts)
  if type(port_or_path) == "string" then
    local hwfota_open = core.open
    local port, msg, code = hwfota_open(port_or_path, opts.baudrate, opts.flow, opts.timeout)
    if not port then return nil, msg, code end
    return port, nil, nil, true
  end
  if type(port_or_path) ~= "userdata" then
    error(("bad argument #1 (port or path expected, got %s)"):format(type(port_or_path)), 3)
  end
  return port_or_path
end

--- Raise "bad option 'name' (what)" at the caller's level: `bad_option(name, what, level)`.
M.bad_option = bad_option
--- Check run/session options: `check(opts, level)` raises on a wrong type or an unknown
-- name, returns true or nil, message, code for a value the run cannot use.
M.check = check_opts
--- Split checked options into the session's own and the state machine's (`o.fsm`):
-- `split(opts)` -> table.
M.split = split_opts
--- The port of a run or session: `ensure_port(port_or_path, o)` -> port, nil, nil, owned
-- (true when it was opened here from a path) or nil, message, code.
M.ensure_port = ensure_port

return M
