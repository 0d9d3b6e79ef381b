--- The one JSON home of hwfota: encode and decode through `dkjson` (Debian `lua-dkjson`,
-- pure Lua) or else `cjson` (`lua-cjson`), whichever loads first.
--
-- Loading this module never fails: without either library `available` is false and
-- `encode`/`decode` return `nil, message, "ENOJSON"`, so a caller that needs JSON only on
-- one path (the CLI's `--json`) can say so when that path is taken.
--
-- JSON `null` decodes to `nil` (an absent field), whichever backend is used; to write
-- `null`, put `json.null` in the table.
-- @module hwfota.json
-- @usage
-- local json = require "hwfota.json"
-- local s = json.encode({v = 1, cmd = json.null})
-- local t, msg = json.decode(s)
local M = {}

local dk_ok, dk = pcall(require, "dkjson")
-- dkjson decodes several times faster through LPeg (Debian lua-lpeg) when it is there
-- (the fleet controller decodes every agent's messages); same results either way
if dk_ok and pcall(require, "lpeg") and type(dk.use_lpeg) == "function" then
  local ok, fast = pcall(dk.use_lpeg)
  if ok and type(fast) == "table" then dk = fast end
end
local cj_ok, cj = false, nil
if not dk_ok then cj_ok, cj = pcall(require, "cjson") end

--- The backend's name: `"dkjson"`, `"cjson"` or nil when neither is installed.
M.backend = dk_ok and "dkjson" or cj_ok and "cjson" or nil

--- True when a JSON library is loaded.
M.available = M.backend ~= nil

--- The value to put in a table for a JSON `null` (the backend's own sentinel).
M.null = dk_ok and dk.null or cj_ok and cj.null or setmetatable({}, {__name = "json.null"})

local MISSING = "JSON needs dkjson (Debian lua-dkjson) or cjson (lua-cjson)"

--- Encode a Lua value as JSON text.
-- @param v a table, string, number, boolean or `json.null`
-- @tparam[opt] table opts `{indent = true}` pretty-prints (dkjson only; cjson ignores it)
-- @treturn string the JSON text, or nil, message, code (`"ENOJSON"`: no library;
--   `"EINVAL"`: a value JSON cannot carry, e.g. a function or a cycle)
function M.encode(v, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("hwfota.json.encode: opts must be a table, got %s"):format(type(opts)), 2)
  end
  if not M.available then return nil, MISSING, "ENOJSON" end
  local ok, s, err
  if dk_ok then
    ok, s, err = pcall(dk.encode, v, {indent = opts and opts.indent or false})
  else
    ok, s = pcall(cj.encode, v)
  end
  if not ok or type(s) ~= "string" then
    return nil, "cannot encode as JSON: " .. tostring(ok and err or s), "EINVAL"
  end
  return s
end

-- cjson keeps `null` as its sentinel: make it nil, as dkjson does.
local function strip_null(t, depth)
  if depth > 64 then return end
  for k, x in pairs(t) do
    if x == cj.null then t[k] = nil
    elseif type(x) == "table" then strip_null(x, depth + 1) end
  end
end

--- Decode JSON text.
-- @tparam string s
-- @return the value (JSON `null` becomes nil inside tables), or nil, message, code
--   (`"EPROTO"`: not JSON; `"ENOJSON"`: no library)
function M.decode(s)
  if type(s) ~= "string" then
    error(("hwfota.json.decode: expected a string, got %s"):format(type(s)), 2)
  end
  if not M.available then return nil, MISSING, "ENOJSON" end
  if dk_ok then
    local ok, v, pos, err = pcall(dk.decode, s, 1, nil)
    if not ok then return nil, "not JSON: " .. tostring(v), "EPROTO" end
    if err then return nil, ("not JSON: %s"):format(err), "EPROTO" end
    -- dkjson stops after the first value: anything but blanks after it is not JSON
    if type(pos) == "number" and s:find("%S", pos) then
      return nil, ("not JSON: trailing text at byte %d"):format(pos), "EPROTO"
    end
    if v == nil and not s:match("^%s*null%s*$") then
      return nil, "not JSON: no value", "EPROTO"
    end
    return v
  end
  local ok, v = pcall(cj.decode, s)
  if not ok then return nil, "not JSON: " .. tostring(v), "EPROTO" end
  if v == cj.null then return nil end
  if type(v) == "table" then strip_null(v, 0) end
  return v
end

return M
