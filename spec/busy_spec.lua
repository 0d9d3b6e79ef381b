-- Two processes on the same port (issue 6): the second opener is refused with EBUSY and a
-- message naming ModemManager (the usual culprit), whether it comes through hwfota.open,
-- hwfota.session or hwfota.run, through the POSIX (pty) path or libserialport's (a fake USB
-- device under spec/support/fakedev-run.sh); the first keeps talking undisturbed, and the
-- simulator's log shows only the first one's commands.
local hwfota = require "hwfota"

local top = os.getenv("HWFOTA_TOP") or "."

local sim = {}

local function start_sim()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  sim.dir, sim.log = d, d .. "/sim.jsonl"
  sim.proc = assert(io.popen(("echo $$; exec %s/build/hwfota-sim --dir %s/links --log %s --time-scale 0.05")
                             :format(top, d, sim.log)))
  sim.pid = assert(tonumber(sim.proc:read("l")))
  local ready = sim.proc:read("l")
  sim.path = ready and ready:match("^ready (%S+)")
  assert(sim.path, "simulator did not start: " .. tostring(ready))
end

local function stop_sim()
  if sim.pid then os.execute("kill " .. sim.pid .. " 2>/dev/null") end
  if sim.proc then sim.proc:close() end
  if sim.dir then os.execute("rm -rf " .. sim.dir) end
  sim = {}
end

local function received()
  local out = {}
  local f = assert(io.open(sim.log))
  for l in f:lines() do
    local s = l:match('"dir":"rx","line":"(.*)"}$')
    if s then out[#out + 1] = s:gsub('\\(["\\])', "%1") end
  end
  f:close()
  return out
end

-- A Lua script in a child lua5.4, optionally under the fake-USB preload (then /dev/ttyUSB2
-- is the simulator's pty seen through libserialport). Returns the popen handle (read it).
local function child(code, fakedev)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(code)
  f:close()
  local cmd = fakedev and ("%s/spec/support/fakedev-run.sh -p %q lua5.4 %q 2>&1"):format(top, sim.path, name)
              or ("lua5.4 %q 2>&1"):format(name)
  local p = assert(io.popen(cmd))
  return p, name
end

local function run_child(code, fakedev)
  local p, name = child(code, fakedev)
  local out = p:read("a")
  local ok = p:close()
  os.remove(name)
  return out, ok
end

-- The second opener: tries the three entry points on `path`, prints what each gave.
local function second_opener(path)
  return ([[
local hwfota = require "hwfota"
local path = %q
local p, msg, code = hwfota.open(path)
print("open", tostring(p), code, msg)
local s, smsg, scode = hwfota.session(path)
print("session", tostring(s), scode, smsg)
local r = hwfota.run(path)
print("run", r.status, r.code, r.message)
]]):format(path)
end

local function assert_refused(out)
  for _, what in ipairs{"open", "session"} do
    local line = out:match("\n?(" .. what .. "\t[^\n]*)")
    assert(line, what .. " missing in: " .. out)
    assert.matches("^" .. what .. "\tnil\tEBUSY\t", line)
    assert.matches("ModemManager", line, 1, true)
  end
  local line = out:match("(run\t[^\n]*)")
  assert(line, "run missing in: " .. out)
  assert.matches("^run\tfailed\tEBUSY\t.*ModemManager", line)
end

-- The first process, as a child: opens, says so, then talks for `n` rounds.
local function first_talker(path, n)
  return ([[
local hwfota = require "hwfota"
io.stdout:setvbuf("line")
local port = assert(hwfota.open(%q))
print("opened", port:kind())
local ok, bad = 0, 0
for i = 1, %d do
  local res, msg, code = port:command("AT+CSQ", {timeout = 5})
  if res and res.final == "OK" then ok = ok + 1 else bad = bad + 1; print("fail", msg, code) end
  port:poll(0.05)
end
print("talked", ok, bad)
port:close()
]]):format(path, n)
end

describe("two processes on one port", function()
  before_each(start_sim)
  after_each(stop_sim)

  it("refuses a second process with EBUSY naming ModemManager; the first keeps its pending answer", function()
    local a = assert(hwfota.open(sim.path, {timeout = 5}))
    assert.equals("OK", assert(a:command("AT")).final)
    -- a command in flight while the other process tries: its answer waits in the pty
    local got
    assert(a:send("AT+GMR", function(res, msg) got = res or msg end))
    local out, ok = run_child(second_opener(sim.path))
    assert.is_true(ok, out)
    assert_refused(out)
    local deadline = hwfota.now() + 5
    while got == nil and hwfota.now() < deadline do a:poll(0.2) end
    assert.is_table(got, tostring(got))
    assert.equals("OK", got.final)
    assert.equals("OK", assert(a:command("AT+CGSN")).final)
    assert.same({"AT+CMEE?", "AT", "AT+GMR", "AT+CGSN"}, received())   -- the line sync first
    a:close()
    -- once the first one closed, the port is free again (no stale lock)
    local again = assert(hwfota.open(sim.path))
    again:close()
  end)

  it("refuses this process while a child process holds the port and talks", function()
    local pa, name = child(first_talker(sim.path, 20))
    local first = pa:read("l")
    assert.equals("opened\tpty", first)
    for _ = 1, 3 do
      local p, msg, code = hwfota.open(sim.path)
      assert.is_nil(p)
      assert.equals("EBUSY", code)
      assert.matches("ModemManager", msg, 1, true)
      local s, _, scode = hwfota.session(sim.path)
      assert.is_nil(s)
      assert.equals("EBUSY", scode)
      assert.equals("EBUSY", hwfota.run(sim.path).code)
    end
    local rest = pa:read("a")
    assert.is_true(pa:close(), rest)
    os.remove(name)
    assert.matches("talked\t20\t0", rest, 1, true)
    local log = received()
    assert.equals(21, #log)
    assert.equals("AT+CMEE?", table.remove(log, 1))   -- the child's line sync at open
    for _, l in ipairs(log) do assert.equals("AT+CSQ", l) end
  end)

  it("refuses a second opener through libserialport (fake USB device), both ways", function()
    -- first: a child on /dev/ttyUSB2 through libserialport; second: this process, POSIX path
    local pa, name = child(first_talker("/dev/ttyUSB2", 15), true)
    assert.equals("opened\tserial", pa:read("l"))
    local p, msg, code = hwfota.open(sim.path)
    assert.is_nil(p)
    assert.equals("EBUSY", code)
    assert.matches("ModemManager", msg, 1, true)
    -- and a second child through libserialport too
    local out, ok = run_child(second_opener("/dev/ttyUSB2"), true)
    assert.is_true(ok, out)
    assert_refused(out)
    local rest = pa:read("a")
    assert.is_true(pa:close(), rest)
    os.remove(name)
    assert.matches("talked\t15\t0", rest, 1, true)

    -- first: this process on the pty; second: a child through libserialport
    local a = assert(hwfota.open(sim.path, {timeout = 5}))
    out, ok = run_child(second_opener("/dev/ttyUSB2"), true)
    assert.is_true(ok, out)
    assert_refused(out)
    assert.equals("OK", assert(a:command("AT")).final)
    a:close()
    local log = received()
    -- each opener's line sync (AT+CMEE?) before its first command
    assert.equals(18, #log, table.concat(log, ","))
    assert.equals("AT+CMEE?", log[1])
    for i = 2, 16 do assert.equals("AT+CSQ", log[i]) end
    assert.equals("AT+CMEE?", log[17])
    assert.equals("AT", log[18])
  end)
end)
