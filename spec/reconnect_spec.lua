-- hwfota.reconnect: the one back-off and retry loop every reconnect uses (issue 14.3).
local reconnect = require "hwfota.reconnect"
local hwfota = require "hwfota"

-- A fake clock: sleep advances it and records each wait.
local function clock(t)
  local c = {t = t or 100, waits = {}}
  c.now = function() return c.t end
  c.sleep = function(s)
    c.waits[#c.waits + 1] = s
    c.t = c.t + s
  end
  return c
end

describe("reconnect.backoff", function()
  it("doubles the wait from 0.1 s up to 2 s, never past the deadline", function()
    local c = clock()
    local b = reconnect.backoff(10, {now = c.now})
    assert.equals(110, b.deadline)
    local at, now, got = nil, 100, {}
    for _ = 1, 9 do
      at = b:next_at(now)
      got[#got + 1] = at - now
      now = at
    end
    -- 0.1 0.2 0.4 0.8 1.6 (at 103.1) 2 2 2 (max), then clamped to the deadline: 0.9, 0
    local want = {0.1, 0.2, 0.4, 0.8, 1.6, 2, 2, 2, 0.9}
    for i = 1, 9 do assert.near(want[i], got[i], 1e-9, i) end
    assert.equals(110, at)
    assert.equals(110, b:next_at(110))
    assert.is_true(b:expired(110))
    assert.is_false(b:expired(109.99))
    b = reconnect.backoff(5, {now = c.now})
    assert.is_true(b:expired(105))
    assert.is_false(b:expired(104.99))
  end)

  it("takes an absolute deadline, its own first and longest waits", function()
    local c = clock()
    local b = reconnect.backoff(nil, {deadline = 101, first = 0.25, max = 0.5, now = c.now})
    assert.equals(100.25, b:next_at(100))
    assert.equals(100.75, b:next_at(100.25))
    assert.equals(101, b:next_at(100.75))
  end)

  it("raises on a bad timeout, first or max", function()
    assert.has_error(function() reconnect.backoff(-1) end)
    assert.has_error(function() reconnect.backoff(0 / 0) end)
    assert.has_error(function() reconnect.backoff("5") end)
    assert.has_error(function() reconnect.backoff(5, {first = -1}) end)
    assert.has_error(function() reconnect.backoff(5, {max = math.huge}) end)
    assert.has_error(function() reconnect.backoff(nil, {}) end)
  end)
end)

describe("reconnect.retry", function()
  it("tries at once, then after each back-off, the last try at the deadline", function()
    local c = clock()
    local tries = {}
    local r, msg, code = reconnect.retry(function()
      tries[#tries + 1] = c.t
      return nil, "not back", "ENOENT"
    end, {timeout = 1, now = c.now, sleep = c.sleep})
    assert.is_nil(r)
    assert.equals("not back", msg)
    assert.equals("ENOENT", code)
    -- 100, 100.1, 100.3, 100.7, then the deadline 101
    assert.equals(5, #tries)
    assert.equals(100, tries[1])
    assert.near(100.7, tries[4], 1e-9)
    assert.near(101, tries[5], 1e-9)
  end)

  it("returns the first success with all its values", function()
    local c = clock()
    local n = 0
    local a, b = reconnect.retry(function()
      n = n + 1
      if n == 3 then return "/dev/ttyUSB3", "second" end
      return nil, "no", "ENOENT"
    end, {timeout = 10, now = c.now, sleep = c.sleep})
    assert.equals("/dev/ttyUSB3", a)
    assert.equals("second", b)
    assert.equals(3, n)
    assert.equals(2, #c.waits)
    assert.near(0.1, c.waits[1], 1e-9)
    assert.near(0.2, c.waits[2], 1e-9)
  end)

  it("stops at once when stop says the failure is final", function()
    local c = clock()
    local n = 0
    local r, msg, code = reconnect.retry(function()
      n = n + 1
      return nil, "closed", "ECLOSED"
    end, {timeout = 10, now = c.now, sleep = c.sleep,
          stop = function(_, _, why) return why == "ECLOSED" end})
    assert.is_nil(r)
    assert.equals("closed", msg)
    assert.equals("ECLOSED", code)
    assert.equals(1, n)
    assert.same({}, c.waits)
  end)

  it("after the caller's own try (tried): waits first; past the deadline returns it", function()
    local c = clock()
    local n = 0
    local function try() n = n + 1; return nil, "again", "ENOENT" end
    local r, msg, code = reconnect.retry(try, {timeout = 0, now = c.now, sleep = c.sleep,
                                               tried = table.pack(nil, "first", "ENOENT")})
    assert.is_nil(r)
    assert.equals("first", msg)
    assert.equals("ENOENT", code)
    assert.equals(0, n)
    r = reconnect.retry(try, {timeout = 1, now = c.now, sleep = c.sleep, tried = {n = 0}})
    assert.is_nil(r)
    assert.near(0.1, c.waits[1], 1e-9)
    assert.equals(4, n)
  end)

  it("without a deadline (math.huge) tries until it succeeds", function()
    local c = clock()
    local n = 0
    local r = reconnect.retry(function()
      n = n + 1
      return n == 20 or nil
    end, {timeout = math.huge, now = c.now, sleep = c.sleep})
    assert.is_true(r)
    assert.equals(20, n)
    assert.equals(2, c.waits[#c.waits])
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() reconnect.retry(nil, {timeout = 1}) end,
                     "bad argument #1 to 'retry' (function expected, got nil)")
    assert.has_error(function() reconnect.retry(function() end) end,
                     "bad argument #2 to 'retry' (table expected, got nil)")
  end)

  it("waits through the loop: another task keeps running meanwhile", function()
    local t0 = hwfota.now()
    local ticks, done = 0, false
    hwfota.spawn(function()
      reconnect.retry(function() return hwfota.now() - t0 >= 1 or nil end, {timeout = 5})
      done = true
    end)
    hwfota.spawn(function()
      while not done do
        ticks = ticks + 1
        hwfota.sleep(0.05)
      end
    end)
    assert.same({}, hwfota.loop())
    assert.is_true(done)
    assert.is_true(ticks >= 10, ticks)
  end)
end)

-- hwfota.run with a journal left by an unfinished run waits for a port the module's
-- reset took away. The reset may tear the port down in the middle of the open (open
-- succeeds, TIOCEXCL fails EIO: EPORTLOST); that is "away" too, not a failed run (seen
-- in flow_journal_spec's "killed in upgrade" on a loaded machine).
describe("hwfota.run: the port lost while it is opened", function()
  local core = require "hwfota.core"
  local real_open = core.open
  local dir
  before_each(function()
    dir = assert(io.popen("mktemp -d /tmp/hwfota-reopen.XXXXXX")):read("l")
  end)
  after_each(function()
    core.open = real_open
    os.execute("rm -rf '" .. dir .. "'")
  end)

  -- core.open answers from `answers` in turn; returns the report and the number of opens
  local function run_with(answers, journal)
    local calls = 0
    core.open = function()
      calls = calls + 1
      local a = answers[math.min(calls, #answers)]
      return nil, a[1], a[2]
    end
    local opts = {reboot_timeout = 5}
    if journal then
      opts.journal = dir .. "/journal"
      local f = assert(io.open(opts.journal, "w"))
      f:write("hwfota-journal 1\nphase=reboot\nfwup_sent=1\n")
      f:close()
    end
    local report = hwfota.run(dir .. "/ttyUSB2", {}, opts)
    core.open = real_open
    return report, calls
  end

  local lost = {"cannot set exclusive mode on X: Input/output error", "EPORTLOST"}
  local denied = {"cannot open X: Permission denied", "EACCES"}

  it("with a journal pending: EPORTLOST at the open is waited out like ENOENT", function()
    local report, calls = run_with({lost, lost, denied}, true)
    assert.equals(3, calls, report.message)
    assert.equals("EACCES", report.code)   -- the wait stops at the first other answer
  end)

  it("without a journal: EPORTLOST at the open fails the run at once", function()
    local report, calls = run_with({lost, denied}, false)
    assert.equals(1, calls)
    assert.equals("failed", report.status)
    assert.equals("EPORTLOST", report.code)
  end)
end)
