--- hwfota.argv: a script's command line read by a table of options.
--
-- The example scripts (`examples/*.lua`) take a port and options; their options
-- are rows of one table, read by one loop: a value option takes the next
-- argument, a flag none, anything else starting with "-" is refused, and the
-- positional arguments fill the names listed in the table's array part. Every
-- mistake goes to the script's `usage(message)`, which is expected not to return
-- (it prints and exits). The options the flow scripts share (`FLOW`, the
-- `--allow-model` row) are defined here once.
--
-- @module hwfota.argv
-- @usage
-- local argv = require "hwfota.argv"
-- local o = argv.parse(arg, argv.with(argv.FLOW, {"port", ["--once"] = argv.flag("once")}),
--                      usage, {apn = "1234"})
-- if not o.port then usage() end

local M = {}

--- A row that stores the option's value (a string) at `o[key]`.
-- @tparam string key
-- @treturn function the row
function M.value(key)
  return function(o, val) o[key] = val() end
end

--- A row that stores the option's value as a number at `o[key]`.
-- @tparam string key
-- @tparam string message what `usage` says when the value is not a number
-- @treturn function the row
function M.number(key, message)
  return function(o, val, usage) o[key] = tonumber(val()) or usage(message) end
end

--- A row that sets `o[key]` to true (the option takes no value).
-- @tparam string key
-- @treturn function the row
function M.flag(key)
  return function(o) o[key] = true end
end

--- A row for `MODEL=VERSION` (repeatable): `o[key][MODEL] = VERSION`, a row for
-- the supported-model table (`opts.models` of `hwfota.run`).
-- @tparam string key
-- @treturn function the row
function M.model_row(key)
  return function(o, val, usage)
    local m, v = val():match("^(.-)=(.+)$")
    if not m or m == "" then usage("--allow-model needs MODEL=VERSION, e.g. MU709=11.0.0.0.0") end
    o[key] = o[key] or {}
    o[key][m] = v
  end
end

--- The options of the FOTA flow's settings, as `hwfota.run` names them:
-- `--apn`, `--user`, `--password`, `--auth`, `--journal`, `--reboot-timeout`.
M.FLOW = {
  ["--apn"] = M.value("apn"),
  ["--user"] = M.value("user"),
  ["--password"] = M.value("password"),
  ["--auth"] = M.value("auth"),
  ["--journal"] = M.value("journal"),
  ["--reboot-timeout"] = M.number("reboot_timeout", "bad number"),
}

--- Tables of options merged into a new one (a later table's row wins; the
-- positional names come from the last table that lists any).
-- @tparam table ... tables of options
-- @treturn table
function M.with(...)
  local t = {}
  for n = 1, select("#", ...) do
    local part = select(n, ...)
    if type(part) ~= "table" then
      error(("bad argument #%d to 'with' (table expected, got %s)"):format(n, type(part)), 2)
    end
    if #part > 0 then
      for k = 1, #t do t[k] = nil end
    end
    for k, v in pairs(part) do t[k] = v end
  end
  return t
end

--- Read the arguments by a table of options.
-- `options["--name"] = row`, a row being `function(o, val, usage)` (`val()` takes
-- the next argument as the option's value; see `value`, `number`, `flag`,
-- `model_row`); `options[1], options[2], ...` name the positional arguments.
-- @tparam table args the script's `arg`
-- @tparam table options
-- @tparam function usage `usage(message)`, called on a mistake; should not return
-- @tparam[opt] table o the defaults, filled in place
-- @treturn table `o`
function M.parse(args, options, usage, o)
  for n, want in ipairs{"table", "table", "function"} do
    local got = type((select(n, args, options, usage)))
    if got ~= want then
      error(("bad argument #%d to 'parse' (%s expected, got %s)"):format(n, want, got), 2)
    end
  end
  o = o or {}
  local npos = 0
  local i = 1
  while i <= #args do
    local a = args[i]
    local function val() i = i + 1; return args[i] or usage("missing value after " .. a) end
    local row = options[a]
    if row then row(o, val, usage)
    elseif a:sub(1, 1) == "-" then usage("unknown option " .. a)
    elseif npos < #options then
      npos = npos + 1
      o[options[npos]] = a
    else usage("too many arguments") end
    i = i + 1
  end
  return o
end

--- Read a command's long options, `--name VALUE`, `--name=VALUE` and `--flag` (the
-- `hwfota agent` and `hwfota fleet` commands): a mistake is returned, not raised, so
-- the command prints it with its own usage line. Values longer than 4,096 bytes or
-- holding a NUL byte are refused (they come from a service's configuration: untrusted).
-- @tparam table args the arguments after the command's name
-- @tparam table options `options["--name"] = {key, takes_value, many = bool, cmds = set}`:
--   the value goes to `o[key]` (a list of them with `many`; `true` for a flag); `cmds`,
--   when given, names the sub-commands the option applies to
-- @tparam string cmd the (sub-)command's name, for messages (and `cmds`)
-- @return the options read (`o`), or `nil, message`
-- @usage local o, err = argv.long({"--id", "x"}, {["--id"] = {"id", true}}, "fleet status")
function M.long(args, options, cmd)
  local o, i = {}, 1
  while i <= #args do
    local a = args[i]
    local name, val = a:match("^(%-%-[^=]+)=(.*)$")
    name = name or a
    local spec = options[name]
    if not spec then
      if a:sub(1, 1) == "-" then return nil, "unknown option " .. name end
      return nil, ("%s takes no argument (got %q)"):format(cmd, a:sub(1, 40))
    end
    if spec.cmds and not spec.cmds[cmd:match("(%S+)$")] then
      return nil, ("option %s does not apply to %s"):format(name, cmd)
    end
    if spec[2] then
      if val == nil then
        i = i + 1
        val = args[i]
        if val == nil then return nil, "option " .. name .. " needs a value" end
      end
      if #val > 4096 or val:find("%z") then
        return nil, "option " .. name .. ": value too long or with a NUL byte"
      end
      if spec.many then
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

return M
