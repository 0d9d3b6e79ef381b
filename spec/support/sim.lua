--- Test helper: run build/hwfota-sim in a private directory and read its log.
-- The one simulator launcher of the specs (flow, CLI and example specs alike).
-- local sim = require "support.sim"
-- local s = sim.start{"--time-scale", "0.03", "--no-new-version"}
-- local s = sim.quick{"--no-new-version"}   -- the same, at --time-scale 0.05
-- ... hwfota.run(s.path, policy, opts) ...
-- local cmds = s:commands()        -- {"AT+GMR", "AT^FOTACFG=...", ...} of module 0
-- assert.equal(1, s:count("AT^FWUP"))
-- s:stop()
--
-- The log is the simulator's JSON lines (csrc/sim/README.md): flat objects whose
-- values are strings or numbers. `parse` below reads exactly that format.
local core = require "hwfota.core"

local M = {}

local top = os.getenv("HWFOTA_TOP") or "."
M.top = top
M.bin = os.getenv("HWFOTA_SIM") or (top .. "/build/hwfota-sim")

--- The simulator's default firmware versions (before and after its upgrade). New
-- specs name these instead of the literals, so a change of the defaults is one edit.
M.FROM = "12.815.03.01.00"
M.TO = "12.815.03.02.00"

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.sh_quote = sh_quote
M.quote = sh_quote

--- A fresh private directory (removed by stop()).
function M.tmpdir()
  local p = io.popen("mktemp -d /tmp/hwfota-spec.XXXXXX")
  local d = p:read("l")
  p:close()
  assert(d and d ~= "", "mktemp -d failed")
  return d
end

--- The whole content of a file, or nil when it cannot be read (e.g. a journal).
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end

local escapes = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f',
                 n = '\n', r = '\r', t = '\t'}

--- Parse one flat JSON object {"k":"str"|number|true|false|null,...}.
-- Returns the table, or nil and a reason.
function M.parse(line)
  local obj, i, n = {}, 1, #line
  local function ws() i = line:find("[^ \t]", i) or n + 1 end
  local function str()
    if line:sub(i, i) ~= '"' then return nil end
    i = i + 1
    local buf = {}
    while i <= n do
      local c = line:sub(i, i)
      if c == '"' then i = i + 1; return table.concat(buf) end
      if c == "\\" then
        local e = line:sub(i + 1, i + 1)
        if e == "u" then
          local hex = line:sub(i + 2, i + 5)
          local cp = tonumber(hex, 16)
          if not cp or #hex ~= 4 then return nil end
          buf[#buf + 1] = utf8.char(cp)
          i = i + 6
        elseif escapes[e] then
          buf[#buf + 1] = escapes[e]
          i = i + 2
        else
          return nil
        end
      else
        buf[#buf + 1] = c
        i = i + 1
      end
    end
    return nil
  end
  ws()
  if line:sub(i, i) ~= "{" then return nil, "not an object" end
  i = i + 1
  ws()
  if line:sub(i, i) == "}" then return obj end
  while true do
    ws()
    local k = str()
    if not k then return nil, "bad key at " .. i end
    ws()
    if line:sub(i, i) ~= ":" then return nil, "':' expected at " .. i end
    i = i + 1
    ws()
    local v
    if line:sub(i, i) == '"' then
      v = str()
      if v == nil then return nil, "bad string at " .. i end
    else
      local tok = line:match("^[^,}%s]+", i)
      if not tok then return nil, "value expected at " .. i end
      i = i + #tok
      if tok == "true" then v = true
      elseif tok == "false" then v = false
      elseif tok == "null" then v = nil
      else
        v = tonumber(tok)
        if not v then return nil, "bad value " .. tok end
      end
    end
    obj[k] = v
    ws()
    local c = line:sub(i, i)
    i = i + 1
    if c == "}" then return obj end
    if c ~= "," then return nil, "',' or '}' expected at " .. (i - 1) end
  end
end

local Sim = {}
Sim.__index = Sim

--- Start the simulator with extra arguments (array of strings).
-- Returns the handle: path (first module), paths, dir, log (file), pid.
-- `o.scale`: add `--time-scale o.scale` before `args`.
function M.start(args, o)
  local dir = M.tmpdir()
  local log = dir .. "/sim.jsonl"
  local parts = {"exec", sh_quote(M.bin), "--dir", sh_quote(dir), "--log", sh_quote(log)}
  if o and o.scale then
    parts[#parts + 1] = "--time-scale"
    parts[#parts + 1] = sh_quote(o.scale)
  end
  -- HWFOTA_SIM_CLOSED_PORT=keep|drop: run every spec that does not choose with that
  -- closed-port behaviour (the simulator's default is drop, as a USB port)
  local closed = os.getenv("HWFOTA_SIM_CLOSED_PORT")
  if closed and closed ~= "" then
    local chosen = false
    for _, a in ipairs(args or {}) do if a == "--closed-port" then chosen = true end end
    if not chosen then
      parts[#parts + 1] = "--closed-port"
      parts[#parts + 1] = sh_quote(closed)
    end
  end
  for _, a in ipairs(args or {}) do parts[#parts + 1] = sh_quote(a) end
  -- the shell prints the simulator's pid (exec keeps it), then the simulator its ready line
  local cmd = ("echo $$; %s 2>%s"):format(table.concat(parts, " "), sh_quote(dir .. "/sim.err"))
  local proc = assert(io.popen(cmd, "r"))
  local pid = tonumber(proc:read("l"))
  local ready = proc:read("l")
  local paths = {}
  for p in (ready or ""):gmatch("%S+") do paths[#paths + 1] = p end
  if table.remove(paths, 1) ~= "ready" or #paths == 0 then
    local ef = io.open(dir .. "/sim.err")
    local err = ef and ef:read("a") or ""
    if ef then ef:close() end
    proc:close()
    os.execute("rm -rf " .. sh_quote(dir))
    error("hwfota-sim did not start: " .. tostring(ready) .. " " .. err)
  end
  return setmetatable({dir = dir, log = log, pid = pid, proc = proc, paths = paths,
                       path = paths[1], offset = 0, entries = {}}, Sim)
end

--- Start the simulator at --time-scale 0.05 (the CLI and example specs: a whole
-- flow in a few seconds, model timeouts still longer than a loaded machine's delays).
function M.quick(args)
  return M.start(args, {scale = "0.05"})
end

--- Read what the log gained since the last call; returns every entry so far.
function Sim:read()
  local f = io.open(self.log, "rb")
  if not f then return self.entries end
  f:seek("set", self.offset)
  local data = f:read("a") or ""
  f:close()
  -- only complete lines (the simulator flushes per line, but a read may land mid-line)
  local last = data:match(".*()\n")
  if not last then return self.entries end
  self.offset = self.offset + last
  for line in data:sub(1, last):gmatch("([^\n]*)\n") do
    if line ~= "" then
      local obj, err = M.parse(line)
      assert(obj, ("bad simulator log line %q: %s"):format(line, tostring(err)))
      self.entries[#self.entries + 1] = obj
    end
  end
  return self.entries
end

--- Entries of module m (default 0) matching pred (function or table of fields).
function Sim:select(pred, m)
  m = m or 0
  local out = {}
  for _, e in ipairs(self:read()) do
    local ok = e.m == m
    if ok and type(pred) == "function" then ok = pred(e)
    elseif ok and type(pred) == "table" then
      for k, v in pairs(pred) do if e[k] ~= v then ok = false; break end end
    end
    if ok then out[#out + 1] = e end
  end
  return out
end

--- Commands module m received, in order.
function Sim:commands(m)
  local out = {}
  for _, e in ipairs(self:select({dir = "rx"}, m)) do out[#out + 1] = e.line end
  return out
end

--- How many times module m received exactly `cmd`.
function Sim:count(cmd, m)
  local n = 0
  for _, c in ipairs(self:commands(m)) do if c == cmd then n = n + 1 end end
  return n
end

--- FOTA states module m went through (the "state" events), in order.
function Sim:states(m)
  local out = {}
  for _, e in ipairs(self:select({ev = "state"}, m)) do out[#out + 1] = e.state end
  return out
end

--- Wait (bounded, real seconds) until a log entry of module m matches pred.
-- Returns the entry, or nil after `timeout`.
function Sim:wait_for(pred, timeout, m)
  local deadline = core.now() + (timeout or 10)
  repeat
    local hits = self:select(pred, m)
    if #hits > 0 then return hits[1] end
    core.poll({}, 0.02)
  until core.now() > deadline
  return nil
end

--- Wait (bounded, real seconds) until an entry of module m matching pred is logged
-- after the entry at index `after` (from `index`): "the port came back after the
-- power loss". Returns the entry, or nil after `timeout`.
function Sim:wait_after(after, pred, timeout, m)
  m = m or 0
  local deadline = core.now() + (timeout or 10)
  repeat
    local entries = self:read()
    for i = after + 1, #entries do
      local e, ok = entries[i], entries[i].m == m
      for k, v in pairs(pred) do if e[k] ~= v then ok = false end end
      if ok then return e end
    end
    core.poll({}, 0.02)
  until core.now() > deadline
  return nil
end

--- The same inside a hwfota task: sleeps in the shared loop, so the sessions
-- of the other tasks keep running while this one waits.
function Sim:await(pred, timeout, m)
  local loop = require "hwfota.loop"
  local deadline = core.now() + (timeout or 10)
  repeat
    local hits = self:select(pred, m)
    if #hits > 0 then return hits[1] end
    loop.sleep(0.02)
  until core.now() > deadline
  return nil
end

--- Index of the first entry of module m matching pred (0 when none): for
-- "this happened before that" checks.
function Sim:index(pred, m)
  m = m or 0
  for i, e in ipairs(self:read()) do
    if e.m == m then
      local ok = true
      if type(pred) == "function" then ok = pred(e)
      else for k, v in pairs(pred) do if e[k] ~= v then ok = false; break end end end
      if ok then return i end
    end
  end
  return 0
end

--- Stop the simulator (SIGTERM) and remove its directory.
function Sim:stop()
  if self.stopped then return end
  self.stopped = true
  self:read()
  os.execute(("kill %d 2>/dev/null"):format(self.pid))
  self.proc:close()
  if not os.getenv("HWFOTA_KEEP") then os.execute("rm -rf " .. sh_quote(self.dir)) end
end

--- Run options for fast specs: small poll intervals and timeouts, the seed's
-- APN and mode (auto upgrade off unless `extra.mode` says otherwise).
function M.opts(extra)
  local o = {
    apn = "1234", user = "", password = "", auth = "chap",
    mode = {auto_query = false, auto_download = false, auto_upgrade = false, resume = true},
    poll_interval = 0.2, dl_poll = 0.05, dl_poll_idle = 0.1, state_poll = 2,
    resume_interval = 0.3, reboot_timeout = 5, detect_timeout = 5, stall_timeout = 5,
    auto_upgrade_wait = 5, busy_delay = 0.1, command_timeout = 2,
    -- the wait before AT^FWUP after the port came back (20 s for a real module)
    -- scaled like the rest: the simulator's boot report comes 2 model s after boot
    boot_settle = 0.5,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- Collapse consecutive repeats of the same command (polls) into one.
function M.squeeze(cmds)
  local out = {}
  for _, c in ipairs(cmds) do
    if out[#out] ~= c then out[#out + 1] = c end
  end
  return out
end

return M
