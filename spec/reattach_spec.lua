-- Reattach after the module's reset (issue 15): the port's return -> the host's
-- first command, from the simulator's own log (its "port up" after the reset, then
-- the first line it receives). With the path watch (inotify on the port's
-- directory) the host reopens as soon as the link is back; the back-off alone
-- (0.1 s doubling) would find it up to a whole wait later. The simulator's port
-- stays away 0.8 s (--reset-gap 16 at --time-scale 0.05): between the back-off's
-- tries at 0.7 s and 1.5 s after the loss, so a host without the watch is ~0.7 s
-- late. The target is < 50 ms; asserted < 250 ms (a loaded 2-core machine), the
-- median is printed.
local hwfota = require "hwfota"
local pathwatch = require "hwfota.pathwatch"
local sim = require "support.sim"
local child = require "support.child"

local GAP = "16"        -- model seconds: 0.8 s real at --time-scale 0.05
local LIMIT = 0.25      -- seconds (target 0.05)

-- The seed's flow with AT^FWUP from the host; returns the report, the delay from the
-- port's return to the first command after it, and the trace lines.
local function one_run(extra)
  local s = sim.quick{"--reset-gap", GAP, "--boot-time", "0.5"}
  local trace = {}
  local o = {setup = {}, skip_model_check = true, check_prereq = false,
    trace = function(dir, text) trace[#trace + 1] = dir .. " " .. text end}
  for k, v in pairs(extra or {}) do o[k] = v end
  local ok, report = pcall(hwfota.run, s.path, {}, sim.opts(o))
  local entries = s:read()
  s:stop()
  assert(ok, report)
  local reset, up, first
  for _, e in ipairs(entries) do
    if e.m == 0 then
      if not reset and e.ev == "reset" then reset = e
      elseif reset and not up and e.ev == "port" and e.what == "up" then up = e
      elseif up and not first and e.dir == "rx" then first = e end
    end
  end
  assert(reset and up and first, "the simulator's log has no reset, port up and command after it")
  return report, first.t - up.t, trace
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function has(lines, text)
  for _, l in ipairs(lines) do if l:find(text, 1, true) then return true end end
  return false
end

describe("reattach after the module's reset", function()
  it("the first command follows the port's return within 250 ms (target 50 ms) with the path watch", function()
    local delays = {}
    for i = 1, 5 do
      local report, delay, trace = one_run()
      assert.equal("upgraded", report.status, report.message)
      assert.is_true(has(trace, "(watching "), "the driver watched for the port: " .. table.concat(trace, "\n"))
      delays[i] = delay
    end
    local m = median(delays)
    print(("\nreattach (path watch): median %.1f ms over %d runs (%s ms)"):format(m * 1000, #delays,
      table.concat((function() local t = {} for i, d in ipairs(delays) do t[i] = ("%.1f"):format(d * 1000) end return t end)(), ", ")))
    assert.is_true(m < LIMIT, ("median reattach %.3f s, limit %.3f s"):format(m, LIMIT))
  end)

  it("without the watch (reopen_watch = false) the back-off still brings the port back", function()
    local report, delay, trace = one_run{reopen_watch = false}
    assert.equal("upgraded", report.status, report.message)
    assert.is_true(has(trace, "(no path watch: reopen_watch = false)"), table.concat(trace, "\n"))
    assert.is_false(has(trace, "(watching "))
    print(("\nreattach (back-off only): %.1f ms"):format(delay * 1000))
  end)

  it("reopen_watch must be a boolean", function()
    assert.has_error(function() hwfota.run("/nonexistent/ttyUSB9", {}, {reopen_watch = "no"}) end,
      "bad option 'reopen_watch' (boolean expected)")
  end)

  it("HWFOTA_NO_INOTIFY turns the watch off: subscribe fails ENOTSUP, the flow falls back to the back-off", function()
    local s = sim.quick{"--reset-gap", "4"}
    local code = ([[
      local hwfota = require "hwfota"
      local pathwatch = require "hwfota.pathwatch"
      print("subscribe", pathwatch.subscribe({{dir = "/tmp", name = "x"}}, function() end))
      local opts = dofile(%q).opts{setup = {}, skip_model_check = true, check_prereq = false,
        trace = function(d, t) if t:find("port lost", 1, true) then print("trace", t) end end}
      local r = hwfota.run(%q, {}, opts)
      print("report", r.status, r.message)
    ]]):format(sim.top .. "/spec/support/sim.lua", s.path)
    local out = child.run(code, "HWFOTA_NO_INOTIFY=1 timeout 60 ")
    s:stop()
    assert.matches("subscribe\tnil\tthe path watch is turned off (HWFOTA_NO_INOTIFY)\tENOTSUP", out, 1, true)
    assert.matches("(no path watch: the path watch is turned off (HWFOTA_NO_INOTIFY))", out, 1, true)
    assert.matches("report\tupgraded", out, 1, true)
  end)
end)

describe("hwfota.pathwatch", function()
  local dir
  before_each(function() dir = sim.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. sim.quote(dir)) end)

  local function wait_until(pred, seconds)
    local deadline = require("hwfota.core").now() + seconds
    while not pred() and require("hwfota.core").now() < deadline do hwfota.sleep(0.01) end
    return pred()
  end

  it("calls back when the name is renamed in (as the simulator and udev publish a link), not for others", function()
    local hits = 0
    local sub = assert(pathwatch.subscribe({{dir = dir, name = "ttyUSB2"}}, function() hits = hits + 1 end))
    io.open(dir .. "/other", "w"):close()
    hwfota.sleep(0.05)
    assert.equal(0, hits)
    os.execute(("ln -s /dev/null %s/ttyUSB2.tmp && mv %s/ttyUSB2.tmp %s/ttyUSB2"):format(dir, dir, dir))
    assert.is_true(wait_until(function() return hits > 0 end, 2))
    assert.is_true(sub:cancel())
    assert.is_false(sub:active())
    assert.is_false(sub:cancel())
  end)

  it("waits for a directory that does not exist yet from its parent (/dev/serial/by-id comes and goes)", function()
    local hits = 0
    local sub = assert(pathwatch.subscribe({{dir = dir .. "/serial/by-id", name = "usb-x"}},
      function() hits = hits + 1 end))
    assert.equal(dir .. "/serial/by-id/usb-x", sub:describe())
    os.execute(("mkdir -p %s/serial/by-id"):format(dir))
    assert.is_true(wait_until(function() return hits > 0 end, 2))
    -- re-armed down to by-id itself: the link appearing there calls back again
    local before = hits
    hwfota.sleep(0.05)
    before = hits
    io.open(dir .. "/serial/by-id/usb-x", "w"):close()
    assert.is_true(wait_until(function() return hits > before end, 2))
    sub:cancel()
  end)

  it("a name nil stands for any name (a port found again by USB identity)", function()
    local hits = 0
    local sub = assert(pathwatch.subscribe({{dir = dir}}, function() hits = hits + 1 end))
    io.open(dir .. "/ttyUSB7", "w"):close()
    assert.is_true(wait_until(function() return hits > 0 end, 2))
    sub:cancel()
  end)

  it("reconnect.retry with watch tries as soon as the name is back, not at its next back-off try", function()
    local reconnect = require "hwfota.reconnect"
    local core = require "hwfota.core"
    local path = dir .. "/ttyUSB2"
    local function try()
      local f = io.open(path)
      if f then f:close(); return true end
      return nil, "not back", "ENOENT"
    end
    for _, watched in ipairs{true, false} do
      os.remove(path)
      local t = hwfota.timer(0.3, function() io.open(path, "w"):close() end)
      local t0 = core.now()
      local ok = reconnect.retry(try, {timeout = 10, first = 2, max = 2,
        watch = watched and pathwatch.port_targets(path) or nil})
      local took = core.now() - t0
      t:cancel()
      assert.is_true(ok)
      if watched then
        assert.is_true(took < 1.5, ("with the watch: back after %.3f s"):format(took))
      else
        assert.is_true(took >= 1.9, ("without: the back-off's 2 s, took %.3f s"):format(took))
      end
    end
  end)

  it("port_targets: the path, its link's target, the by-id link and the identity's directory", function()
    local t = pathwatch.port_targets("/dev/serial/by-id/usb-Huawei-if02", {real = "/dev/ttyUSB2",
      identity = {path = "/dev/ttyUSB2", by_id = "/dev/serial/by-id/usb-Huawei-if02"}})
    assert.same({{dir = "/dev/serial/by-id", name = "usb-Huawei-if02"}, {dir = "/dev", name = "ttyUSB2"},
      {dir = "/dev"}}, t)
    assert.same({"/dev", "ttyUSB2"}, {pathwatch.split("/dev/ttyUSB2")})
    assert.same({"/", "dev"}, {pathwatch.split("/dev/")})
  end)

  it("refuses bad arguments, and a target with no watchable directory", function()
    assert.has_error(function() pathwatch.subscribe({}, function() end) end)
    assert.has_error(function() pathwatch.subscribe({{dir = "/tmp", name = "a/b"}}, function() end) end)
    assert.has_error(function() pathwatch.subscribe({{dir = "/tmp"}}, "f") end)
    local f = dir .. "/file"
    io.open(f, "w"):close()
    local sub, msg, code = pathwatch.subscribe({{dir = f, name = "x"}}, function() end)
    assert.is_nil(sub)
    assert.equal("ENOENT", code)
    assert.matches("cannot watch any of", msg)
  end)
end)
