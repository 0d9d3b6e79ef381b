-- Issue 11 items 1, 2, 4, 10: end states are not idle, a discard waits for the module,
-- a deferral after the download discards the image, a policy error leaves the module
-- idle. The CLI (in-process, as cli_spec runs it) and hwfota.run against every
-- variant of hwfota-sim's --end-state and --discard-delay/--discard-urc.
local hwfota = require "hwfota"
local sim = require "support.sim"
local run = require("support.clirun").run   -- the command; returns rc, stdout, stderr

local SCALE = "0.05"

local FAST = {"--skip-model-check", "--poll", "0.2"}
local function cmd(s, ...)
  local t = {"--port", s.path, ...}
  for _, a in ipairs(FAST) do t[#t + 1] = a end
  return t
end

local function start(extra)
  local args = {"--time-scale", SCALE}
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return sim.start(args)
end

-- The module's state as the simulator last logged it.
local function last_state(s)
  local st = s:states()
  return st[#st]
end

-- hwfota.run under `policy` on a fresh simulator (`extra`: its arguments); `read(s)`
-- reads what the spec checks from the simulator before it stops. Returns the report,
-- then what `read` returned.
local function run_flow(policy, extra, read)
  local s = start(extra)
  local r
  local ok, e = pcall(function()
    r = hwfota.run(s.path, policy, sim.opts{skip_model_check = true})
  end)
  local got = table.pack(read(s))
  s:stop()
  assert(ok, e)
  return r, table.unpack(got, 1, got.n)
end

-- The variants of the module's behaviour that matter here.
local VARIANTS = {
  {},                                                     -- default: keep, delay 2 s, no URC
  {"--discard-urc", "on"},
  {"--discard-delay", "0"},
  {"--discard-delay", "8"},                               -- several seconds
  {"--end-state", "keep-all"},
  {"--end-state", "keep-all", "--discard-urc", "on"},
  {"--end-state", "idle"},
  {"--end-state", "idle", "--discard-delay", "0"},
}

local function label(v) return #v > 0 and table.concat(v, " ") or "defaults" end

describe("end states (issue 11.1)", function()
  for _, v in ipairs(VARIANTS) do
    it("upgrade --yes twice in a row: the second exits 3, no ECOLLISION (" .. label(v) .. ")", function()
      local s = start(v)
      local ok, e = pcall(function()
        local rc, out, err = run(cmd(s, "upgrade", "--yes"))
        assert.equals(0, rc, out .. err)
        assert.matches("upgraded and verified", out)
        local rc2, out2, err2 = run(cmd(s, "upgrade", "--yes"))
        assert.equals(3, rc2, out2 .. err2)
        assert.not_matches("ECOLLISION", err2)
        assert.not_matches("WAN", err2)
        assert.matches("no new version", out2)
        assert.equals(1, s:count("AT^FWUP"))              -- the first run's, only
        assert.equals(10, last_state(s))                   -- the second run left it idle
      end)
      s:stop()
      assert(ok, e)
    end)
  end

  for _, v in ipairs(VARIANTS) do
    it("hwfota.run twice, the second under a window policy (hwfota run): not_newer, idle (" .. label(v) .. ")", function()
      local policy = require "hwfota.policy"
      local s = start(v)
      local ok, e = pcall(function()
        local r = hwfota.run(s.path, {}, sim.opts{skip_model_check = true})
        assert.equals("upgraded", r.status, r.message)
        local open = policy.window{ranges = {{"00:00", "24:00"}},
                                   clock = function() return {wday = 2, hour = 12, min = 0} end}
        r = hwfota.run(s.path, open, sim.opts{skip_model_check = true})
        assert.equals("not_newer", r.status, r.message)
        assert.equals(10, last_state(s))
        -- and the command with a policy file
        local f = os.tmpname()
        local fh = assert(io.open(f, "w"))
        fh:write('return require("hwfota.policy").window{ranges = {{"00:00", "24:00"}}}')
        fh:close()
        local rc, out, err = run(cmd(s, "run", "--policy", f))
        os.remove(f)
        assert.equals(3, rc, out .. err)
        assert.not_matches("ECOLLISION", err)
      end)
      s:stop()
      assert(ok, e)
    end)
  end

  it("a module keeping 80 after a failed upgrade: the next check clears it and shows the offer", function()
    local s = start{"--upgrade-fail", "80"}
    local ok, e = pcall(function()
      local rc, _, err = run(cmd(s, "upgrade", "--yes"))
      assert.equals(1, rc)
      assert.matches("EUPGRADE", err)
      local rc2, out2, err2 = run(cmd(s, "check"))
      assert.equals(0, rc2, out2 .. err2)
      assert.matches("new version " .. sim.TO, out2, 1, true)
      assert.not_matches("ECOLLISION", err2)
    end)
    s:stop()
    assert(ok, e)
  end)

  it("keep-all: a kept 14 does not fail the next check (exit 3 twice)", function()
    local s = start{"--end-state", "keep-all", "--no-new-version"}
    local ok, e = pcall(function()
      local rc, out, err = run(cmd(s, "check"))
      assert.equals(3, rc, out .. err)
      rc, out, err = run(cmd(s, "check"))
      assert.equals(3, rc, out .. err)
      assert.not_matches("ECOLLISION", err)
      assert.equals(2, s:count("AT^FOTADET"))
      assert.equals(1, s:count("AT^FOTADL=0"))            -- the second run cleared the 14
    end)
    s:stop()
    assert(ok, e)
  end)

  it("a real data session is still ECOLLISION with its advice", function()
    local s = start{"--data-session"}
    local ok, e = pcall(function()
      local rc, _, err = run(cmd(s, "check"))
      assert.equals(1, rc)
      assert.matches("ECOLLISION", err)
      assert.matches("WAN", err)
    end)
    s:stop()
    assert(ok, e)
  end)
end)

describe("a discard waits for the module (issue 11.2)", function()
  for _, v in ipairs(VARIANTS) do
    it("check with a new version exits 0, prints the offer, leaves the module idle (" .. label(v) .. ")", function()
      local s = start(v)
      local ok, e = pcall(function()
        local rc, out, err = run(cmd(s, "check"))
        assert.equals(0, rc, out .. err)
        assert.matches("new version " .. sim.TO, out, 1, true)
        assert.equals(10, last_state(s))
        assert.equals(1, s:count("AT^FOTADL=0"))
        -- and again: the module is idle, the next check works the same
        rc, out, err = run(cmd(s, "check"))
        assert.equals(0, rc, out .. err)
        assert.equals(10, last_state(s))
      end)
      s:stop()
      assert(ok, e)
    end)
  end

  it("declining the upgrade prompt exits 5 with the module idle; a rerun works", function()
    local s = start()
    local ok, e = pcall(function()
      local tty = {isatty = function() return true end, read_line = function() return "n" end}
      local rc, out, err = run(cmd(s, "upgrade"), tty)
      assert.equals(5, rc, out .. err)
      assert.matches("declined", out)
      assert.equals(10, last_state(s))
      rc, out, err = run(cmd(s, "check"))
      assert.equals(0, rc, out .. err)
    end)
    s:stop()
    assert(ok, e)
  end)

  it("a rerun after a run left an offer pending (bare 12, as after Ctrl-C) works", function()
    local s = start()
    local ok, e = pcall(function()
      local r = hwfota.run(s.path, {on_new_version = function() return "defer" end},
                           sim.opts{skip_model_check = true})
      assert.equals("deferred", r.status)
      assert.equals(12, last_state(s))
      local rc, out, err = run(cmd(s, "check"))
      assert.equals(0, rc, out .. err)
      assert.matches("new version " .. sim.TO, out, 1, true)
      assert.equals(10, last_state(s))
    end)
    s:stop()
    assert(ok, e)
  end)
end)

describe("Session:cancel waits for the module (issue 11.2)", function()
  for _, v in ipairs{{}, {"--discard-delay", "8"}, {"--discard-urc", "on"}} do
    it("returns once the module is idle (" .. label(v) .. ")", function()
      local s = start(v)
      local ok, e = pcall(function()
        local sess = assert(hwfota.session(s.path, sim.opts{skip_model_check = true}))
        local offer = assert(sess:detect())
        assert.equals(sim.TO, offer.version)
        assert.equals(12, assert(sess:state()).code)
        assert(sess:cancel())
        assert.equals(10, assert(sess:state()).code)
        sess:close()
      end)
      s:stop()
      assert(ok, e)
    end)
  end
end)

describe("defer/reject after the download discards the image (issue 11.4)", function()
  local function flow(answer, extra)
    return run_flow({on_downloaded = function() return answer end}, extra,
                    function(s) return last_state(s), s:commands() end)
  end

  for _, answer in ipairs{"defer", "reject"} do
    it(answer .. " from on_downloaded: AT^FOTADL=0, module idle, no AT^FWUP", function()
      local r, st, cmds = flow(answer)
      assert.equals(answer == "defer" and "deferred" or "rejected", r.status, r.message)
      assert.equals(10, st)
      local n0, fw = 0, 0
      for _, c in ipairs(cmds) do
        if c == "AT^FOTADL=0" then n0 = n0 + 1 end
        if c == "AT^FWUP" then fw = fw + 1 end
      end
      assert.equals(1, n0)
      assert.equals(0, fw)
    end)
  end

  it("keep_until_reboot keeps the image (state 40), and says the module applies it at its next reboot", function()
    local notices = {}
    local r, st, n0 = run_flow({
      on_downloaded = function() return "keep_until_reboot" end,
      on_event = function(ev) if ev.event == "notice" then notices[#notices + 1] = ev.message end end,
    }, nil, function(s) return last_state(s), s:count("AT^FOTADL=0") end)
    assert.equals("deferred", r.status)
    assert.equals(40, st)
    assert.equals(0, n0)
    assert.matches("next reboot", table.concat(notices, "\n"))
  end)

  it("a window policy decides before the download: closed, nothing is downloaded", function()
    local policy = require "hwfota.policy"
    local closed = policy.window{ranges = {{"01:00", "02:00"}},
                                 clock = function() return {wday = 2, hour = 12, min = 0} end}
    local r, dl = run_flow(closed, nil, function(s) return s:count("AT^FOTADL=1") end)
    assert.equals("deferred", r.status)
    assert.equals(0, dl)
  end)

  it("Session:download keeps the image for s:upgrade (state 40)", function()
    local s = start()
    local ok, e = pcall(function()
      local sess = assert(hwfota.session(s.path, sim.opts{skip_model_check = true}))
      local got = assert(sess:download())
      assert.equals(sim.TO, got.version)
      assert.equals(40, last_state(s))
      assert.equals(0, s:count("AT^FOTADL=0"))
      local up = assert(sess:upgrade())
      assert.equals(sim.TO, up.to)
      sess:close()
    end)
    s:stop()
    assert(ok, e)
  end)
end)

describe("a policy error leaves the module idle (issue 11.10)", function()
  local cases = {
    {"on_new_version", "raises", function() error("boom in the policy") end, "boom in the policy"},
    {"on_new_version", "typo", function() return "donwload" end, "download, defer, reject"},
    {"on_downloaded", "raises", function() error("boom after download") end, "boom after download"},
    {"on_downloaded", "typo", function() return "upgarde" end,
     "upgrade, defer, reject, keep_until_reboot"},
  }
  for _, c in ipairs(cases) do
    it(c[1] .. " " .. c[2] .. ": EPOLICY with the hook's error, module idle", function()
      local r, st, fw = run_flow({[c[1]] = c[3]}, nil,
                                 function(s) return last_state(s), s:count("AT^FWUP") end)
      assert.equals("failed", r.status)
      assert.equals("EPOLICY", r.code)
      assert.matches(c[4], r.message, 1, true)
      assert.matches(c[1], r.message, 1, true)
      assert.equals(10, st)
      assert.equals(0, fw)
    end)
  end
end)
