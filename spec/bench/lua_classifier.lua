--- lua_classifier.lua — the peer of `make bench` row B1: a pure-Lua AT line
-- classifier written the way router scripts do it (append what read() returned
-- to a buffer, `string.find` the line end, `string.sub` the line off, match it
-- against final results and URC prefixes, collect response lines until the final).
--
--   lua5.4 spec/bench/lua_classifier.lua TRANSCRIPT CHUNK PASSES
--
-- Reads the transcript written by `bench_parse dump`, feeds it PASSES times in
-- CHUNK-byte pieces (after one warm-up pass) and prints
-- "bytes=.. lines=.. results=.. urcs=.. seconds=..". With PASSES = 0 it does all
-- the setup and no feeding: callgrind's count of that run is subtracted from
-- the full run's to get the instructions of the feeding alone.

local path, chunk, passes = arg[1], tonumber(arg[2]), tonumber(arg[3])
assert(path and chunk and chunk > 0 and passes, "usage: lua_classifier.lua TRANSCRIPT CHUNK PASSES")
local f = assert(io.open(path, "rb"))
local transcript = f:read("a")
f:close()

local finals = { "OK", "ERROR", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS",
  "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE" }
local urc_prefixes = { "^RSSI:", "^HCSQ:", "^MODE:", "^SRVST:", "^SIMST:", "^BOOT",
  "^DSFLOWRPT:", "^NDISSTAT:", "^STIN:", "^CEND:", "^ORIG:", "^CONF:", "^CONN:",
  "+CMTI:", "+CREG:", "^FOTASTATE:" }

local buffer = ""
local response = {}
local results, urcs, lines = 0, 0, 0

local function is_final(line)
  for _, fin in ipairs(finals) do
    if line == fin then return true end
  end
  return line:find("^%+CME ERROR:") ~= nil or line:find("^%+CMS ERROR:") ~= nil
end

local function is_urc(line)
  for _, p in ipairs(urc_prefixes) do
    if line:sub(1, #p) == p then return true end
  end
  return false
end

local function handle(line)
  lines = lines + 1
  if line:find("^AT") then
    return   -- echo
  elseif is_final(line) then
    results = results + 1
    response = {}
  elseif is_urc(line) then
    urcs = urcs + 1
  else
    response[#response + 1] = line
  end
end

local function feed(data)
  buffer = buffer .. data
  while true do
    local s, e = buffer:find("[\r\n]+")
    if not s then break end
    local line = buffer:sub(1, s - 1)
    buffer = buffer:sub(e + 1)
    if line ~= "" then handle(line) end
  end
end

local function pass()
  for p = 1, #transcript, chunk do
    feed(transcript:sub(p, p + chunk - 1))
  end
end

if passes > 0 then pass() end   -- warm-up
results, urcs, lines = 0, 0, 0
local t0 = os.clock()
for _ = 1, passes do pass() end
local secs = os.clock() - t0
print(string.format("bytes=%d lines=%d results=%d urcs=%d seconds=%.6f",
  #transcript * passes, lines, results, urcs, secs))
