--- hwfota.trigger.sms: what an SMS trigger judges, strictly.
--
-- Parsers for the module's new-message indication (`+CMTI:`), message read
-- (`+CMGR:`) and list (`+CMGL:`) lines, and the rule that makes a message a
-- trigger. Nothing from an SMS is ever meant for a command: the only value taken
-- from the module's lines is a storage index, a plain decimal integer 0..65535
-- in a well-formed line; anything else is refused. `inbox` queues the indexes
-- the module announces, and waits for them on the poll loop (woken by the
-- indication itself). `examples/sms-trigger.lua` is the script around them (it
-- sends the SMS commands).
--
-- @module hwfota.trigger.sms

local core = require "hwfota.core"
local loop = require "hwfota.loop"

local M = {}

--- Leading and trailing white space removed.
function M.trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- A storage index from the module: decimal digits only, 0..65535.
local function index_of(digits)
  if type(digits) ~= "string" or not digits:match("^%d+$") or #digits > 5 then return nil end
  local i = math.tointeger(tonumber(digits, 10))
  if not i or i > 65535 then return nil end
  return i
end

--- Parse a new-message indication '+CMTI: "SM",<index>'.
-- @return index (integer) or nil, reason
function M.parse_cmti(line)
  if type(line) ~= "string" then return nil, "not a string" end
  local mem, digits = line:match('^%+CMTI:%s*"(%w+)",%s*(%d+)$')
  if not mem then return nil, "malformed +CMTI" end
  if mem ~= "SM" then return nil, "storage " .. mem .. " is not the SIM's" end
  local i = index_of(digits)
  if not i then return nil, "index out of range" end
  return i
end

--- Split a comma-separated parameter list; quoted fields may hold commas.
function M.fields(s)
  local out, i, n = {}, 1, #s
  while i <= n + 1 do
    if s:sub(i, i) == '"' then
      local close = s:find('"', i + 1, true)
      if not close then return nil end
      out[#out + 1] = s:sub(i + 1, close - 1)
      i = close + 1
      if i <= n and s:sub(i, i) ~= "," then return nil end
      i = i + 1
    else
      local comma = s:find(",", i, true) or n + 1
      out[#out + 1] = s:sub(i, comma - 1)
      i = comma + 1
    end
  end
  return out
end

--- The lines of an AT+CMGR response -> {status=, from=, time=, text=} or nil, reason.
function M.parse_cmgr(lines)
  local head = lines and lines[1]
  if type(head) ~= "string" or head:sub(1, 7) ~= "+CMGR: " then return nil, "no +CMGR header" end
  local f = M.fields(head:sub(8))
  if not f or #f < 4 then return nil, "malformed +CMGR header" end
  local text = {}
  for k = 2, #lines do text[#text + 1] = lines[k] end
  return {status = f[1], from = f[2], time = f[4], text = table.concat(text, "\n")}
end

--- The indexes in an AT+CMGL response (header lines only; text lines skipped).
-- @treturn table array of integers; malformed headers are reported in the second value
function M.parse_cmgl(lines)
  local out, bad = {}, {}
  for _, l in ipairs(lines or {}) do
    local digits = l:match("^%+CMGL:%s*(%d+),")
    if digits then
      local i = index_of(digits)
      if i then out[#out + 1] = i else bad[#bad + 1] = l end
    end
  end
  return out, bad
end

--- Is the message a trigger? cfg: {allow = {number = true, ...}, keyword = "..."}.
-- @return true, or false, reason
function M.check(sms, cfg)
  local from, text = M.trim(sms.from or ""), M.trim(sms.text or "")
  if not cfg.allow[from] then return false, "sender not authorised" end
  if text ~= cfg.keyword then return false, "wrong keyword" end
  return true
end

--- Printable form of text from the air (control characters escaped).
function M.show(s)
  return '"' .. tostring(s):gsub('[%c\\\128-\255]', function(c)
    return ("\\x%02x"):format(c:byte())
  end) .. '"'
end

local Inbox = {}
Inbox.__index = Inbox

--- Storage indexes to handle, fed by the module's `+CMTI:` indications.
-- Subscribes to `+CMTI:` on the port (kept through `port:reopen` and flows);
-- an index is queued once until it is taken.
-- @param port an open `Port`
-- @tparam[opt] function on_bad called as `on_bad(line, reason)` for an indication
--   that is not well formed (it is ignored)
-- @treturn Inbox
function M.inbox(port, on_bad)
  local self = setmetatable({port = port, list = {}, queued = {}}, Inbox)
  self.handler = assert(port:on("+CMTI:", function(line)
    local idx, why = M.parse_cmti(line)
    if idx then self:push(idx)
    elseif on_bad then on_bad(line, why) end
  end))
  return self
end

--- Queue an index (from `+CMTI:` or a list of stored messages).
-- @tparam integer idx
function Inbox:push(idx)
  if self.queued[idx] then return end
  self.queued[idx] = true
  self.list[#self.list + 1] = idx
  if self.cond then loop.signal(self.cond, true) end
end

--- Take the oldest queued index.
-- @treturn integer|nil
function Inbox:pop()
  local idx = table.remove(self.list, 1)
  if idx then self.queued[idx] = nil end
  return idx
end

--- Wait on the poll loop until an index is queued (inside a task the wait
-- yields; watchers and timers go on meanwhile).
-- @tparam[opt] number seconds longest wait (nil: no limit)
-- @return true (something queued), `false, "timeout"`, or `nil, message,
--   "EPORTLOST"` once the port is lost
function Inbox:wait(seconds)
  if #self.list > 0 then return true end
  local port = self.port
  if port:is_lost() then return nil, "port lost", "EPORTLOST" end
  local cond = loop.condition()
  local until_t = seconds and core.now() + seconds
  local src = {
    ports = function() return {port} end,
    -- a lost port is no longer polled: end the wait at once
    deadline = function() return port:is_lost() and 0 or until_t end,
    fire = function()
      if port:is_lost() then loop.signal(cond, nil, "port lost", "EPORTLOST")
      else loop.signal(cond, false, "timeout") end
    end,
  }
  self.cond = cond
  local r = table.pack(loop.wait(cond, {src}))
  self.cond = nil
  return table.unpack(r, 1, r.n)
end

--- Stop listening to indications (idempotent).
function Inbox:close()
  if self.handler then self.port:off(self.handler) end
  self.handler = nil
end

return M
