-- The examples (examples/*.lua) run as integrators run them: lua5.4 processes against
-- the simulator. (sms-trigger.lua is not here yet: it needs the simulator to deliver
-- an SMS.)
local SIM = require "support.sim"   -- the simulator's default versions: SIM.FROM, SIM.TO

local top = os.getenv("HWFOTA_TOP") or "."
local q = SIM.quote
local ENV = ("LUA_PATH=%s LUA_CPATH=%s "):format(
  q(top .. "/lua/?.lua;" .. top .. "/lua/?/init.lua;;"), q(top .. "/build/?.so;;"))

-- Run an example to its end (at most 30 s); returns exit code, stdout+stderr.
local function example(name, args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = q(a) end
  local cmd = ("%s timeout 30 lua5.4 %s %s 2>&1"):format(ENV, q(top .. "/examples/" .. name),
                                                     table.concat(quoted, " "))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

describe("examples/status.lua", function()
  it("prints model, firmware, IMEI and FOTA state", function()
    local sim = SIM.quick()
    local rc, out = example("status.lua", {sim.path})
    sim:stop()
    assert.equals(0, rc, out)
    assert.matches("Model:       MU509-b", out, 1, true)
    assert.matches("Firmware:    " .. SIM.FROM, out, 1, true)
    assert.matches("IMEI:        867530900000009", out, 1, true)
    assert.matches("FOTA state:  10 (idle)", out, 1, true)
  end)

  it("prints the download progress of a downloaded image, and fails cleanly without a module", function()
    local sim = SIM.quick()
    -- download without applying, through the command
    local cli = require "hwfota.cli"
    local rc = cli.main({"--port", sim.path, "download", "--poll", "0.2"},
                        {stdout = function() end, stderr = function() end,
                         isatty = function() return false end, getenv = function() end})
    assert.equals(0, rc)
    local out
    rc, out = example("status.lua", {sim.path})
    sim:stop()
    assert.equals(0, rc, out)
    assert.matches("FOTA state:  40 (downloaded)", out, 1, true)
    assert.matches('file 1 IMAGE    1324 / 1324 bytes', out, 1, true)
    assert.matches("Download:    100% (79114 / 79114 bytes)", out, 1, true)
    rc, out = example("status.lua", {"/dev/ttyUSB-none"})
    assert.equals(1, rc)
    assert.matches("cannot open", out)
    rc = example("status.lua", {})
    assert.equals(2, rc)
  end)
end)

describe("examples/rollout.lua", function()
  local sim
  before_each(function() sim = SIM.quick() end)
  after_each(function() sim:stop() end)

  it("upgrades inside the window and the cohort, WAN down around the data phase", function()
    local rc, out = example("rollout.lua", {sim.path, "--at", "tue 02:30", "--percent", "100"})
    assert.equals(0, rc, out)
    local down = out:find("[stub] ifdown wan", 1, true)
    local offer = out:find("offer: " .. SIM.TO .. " (79114 bytes)", 1, true)
    local up = out:find("[stub] ifup wan", 1, true)
    local done = out:find(("upgraded and verified: %s -> %s"):format(SIM.FROM, SIM.TO), 1, true)
    assert.is_truthy(down and offer and up and done, out)
    assert.is_true(down < offer and offer < up and up < done, out)
  end)

  it("defers outside the window (with the time of the next opening) and outside the cohort", function()
    local rc, out = example("rollout.lua", {sim.path, "--at", "tue 12:00", "--percent", "100"})
    assert.equals(5, rc, out)
    assert.matches("deferred: window: outside the maintenance window, ask again in 46800 s", out, 1, true)
    assert.matches("[stub] ifup wan", out, 1, true)
    rc, out = example("rollout.lua", {sim.path, "--at", "tue 02:30", "--percent", "0"})
    assert.equals(5, rc, out)
    assert.matches("deferred: cohort: outside the 0 % cohort", out, 1, true)
    assert.is_nil(out:find("downloading", 1, true))
  end)

  it("refuses a version the gate does not allow, and bad options", function()
    local rc, out = example("rollout.lua", {sim.path, "--at", "tue 02:30", "--percent", "100",
                                            "--target", "12.815.03.05.00"})
    assert.equals(5, rc, out)
    assert.matches("rejected: gate: " .. SIM.TO .. " is not the pinned target 12.815.03.05.00", out, 1, true)
    rc = example("rollout.lua", {sim.path, "--window", "late"})
    assert.equals(2, rc)
    rc = example("rollout.lua", {sim.path, "--percent", "150"})
    assert.equals(2, rc)
  end)
end)

describe("examples/socket-trigger.lua", function()
  it("starts the flow on a command received on a unix socket", function()
    local unix = require "socket.unix"
    local sim = SIM.quick{"--rate", "4000"}
    local sock = sim.dir .. "/trigger.sock"
    local cmd = ("%s timeout 30 lua5.4 %s %s --unix %s --once --token s3cret 2>&1; echo \"exit=$?\"")
                :format(ENV, q(top .. "/examples/socket-trigger.lua"), q(sim.path), q(sock))
    local p = assert(io.popen(cmd))
    local first = p:read("l")
    local function ask(line)
      local c = assert(unix.stream())
      assert(c:connect(sock))
      c:send(line .. "\n")
      local a = c:receive("*l")
      c:close()
      return a
    end
    local ok, err = pcall(function()
      assert.matches("listening on " .. sock, first, 1, true)
      assert.equals("idle last=none from=- to=- code=-", ask("status"))
      assert.equals("error not authorised", ask("upgrade"))
      assert.equals("error not authorised", ask("upgrade guess"))
      assert.equals("error unknown command (upgrade, status, quit)", ask("reboot"))
      assert.equals("started", ask("upgrade s3cret"))
      local st = ask("status")
      assert.matches("^running", st)
      assert.equals("busy", ask("upgrade s3cret"))
    end)
    local rest = p:read("a")
    p:close()
    sim:stop()
    assert(ok, err)
    assert.matches("trigger received", rest, 1, true)
    assert.matches(("upgraded and verified: %s -> %s"):format(SIM.FROM, SIM.TO), rest, 1, true)
    assert.matches("exit=0", rest, 1, true)
    assert.is_nil(io.open(sock), "the socket file is removed at exit")
  end)
end)

describe("examples/upgrade.lua", function()
  local simdefaults = require "support.sim"   -- the simulator's default versions

  it("runs the seed's flow to a verified upgrade, then says there is nothing to do", function()
    local sim = SIM.quick()
    local journal = sim.dir .. "/journal"
    local rc, out = example("upgrade.lua", {sim.path, "--journal", journal})
    local rc2, out2 = example("upgrade.lua", {sim.path, "--quiet"})
    sim:stop()
    assert.equals(0, rc, out)
    for _, line in ipairs{"Run: AT+GMR", 'Run: AT^FOTACFG="1234","","",2', "Run: AT^FOTAMODE=0,0,1,1",
                          "Run: AT^FOTADET", "Run: AT^FOTADL=1"} do
      assert.matches("\n" .. line .. "\n", "\n" .. out, 1, true)
    end
    assert.matches(("Upgraded and verified: %s -> %s"):format(simdefaults.FROM, simdefaults.TO), out, 1, true)
    assert.is_nil(out:find("Run: AT^FWUP", 1, true), "automatic upgrade: no AT^FWUP")
    assert.is_nil(io.open(journal), "journal removed after the upgrade")
    -- (AT^FOTADLQ only if the 3 s poll comes before the simulated download's end)
    -- the module now runs the new version (the server offers it again, or nothing):
    -- nothing to do, exit 3
    assert.equals(3, rc2, out2)
    local same = ("The offered version %s is not newer than the running %s: nothing to do.")
                 :format(simdefaults.TO, simdefaults.TO)
    assert.is_truthy(out2:find(same, 1, true) or out2:find("No new version for this module.", 1, true),
                     out2)
  end)

  it("exits 1 with the reason when the run fails, 2 on bad usage", function()
    local sim = SIM.quick{"--detect-fail", "21"}
    local rc, out = example("upgrade.lua", {sim.path, "--quiet"})
    sim:stop()
    assert.equals(1, rc, out)
    assert.matches("FOTA failed: .*%(EDETECT%)", out)
    assert.equals(2, (example("upgrade.lua", {})))
  end)
end)
