-- The hwfota command (lua/hwfota/cli.lua): usage errors stay usage errors (issue 12.10),
-- a flow command waits for a module its journal says is resetting (issue 11.9), and the
-- small field items of issue 11.12 (--apn '', AT^FOTACFG? in status and EDETECT, JSON
-- error document, the progress bar on a narrow terminal, unknown module error codes),
-- and --allow-model (issue 11.5). Run in-process through cli.main, as cli_spec does.
local hwfota = require "hwfota"
local sim_support = require "support.sim"
local clirun = require "support.clirun"
local run, decode, with, log_lines = clirun.run, clirun.decode, clirun.with, clirun.log_text
-- a firmware at the MU509-b minimum and its successor: the model check passes
-- whatever the simulator's defaults are
local OK_VERSIONS = {"--version-from", "12.815.03.01.00", "--version-to", "12.815.03.02.00"}
-- the simulator with OK_VERSIONS and extra arguments, stopped when the test ends
local function start_sim(extra)
  local args = {}
  for _, a in ipairs(OK_VERSIONS) do args[#args + 1] = a end
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local sim = sim_support.quick(args)
  finally(function() sim:stop() end)
  return sim
end

describe("hwfota command: bad values are usage errors (exit 2, one line)", function()
  local long = ("x"):rep(5000)
  local cases = {
    {"at", "AT", "--timeout", "0"}, {"at", "AT", "--timeout", "1e308"},
    {"at", "AT", "--timeout", "nan"}, {"at", "AT", "--timeout", "1e999"},
    {"at", "AT", "--timeout", "-1"}, {"at", "AT", "--timeout", "3601"},
    {"at", ("A"):rep(600), "--port", "/nonexistent"},
    {"check", "--journal", "/tmp/" .. long, "--port", "/nonexistent"},
    {"check", "--journal", "", "--port", "/nonexistent"},
    {"run", "--policy", "", "--port", "/nonexistent"},
    {"upgrade", "--yes", "--journal", "/tmp/" .. long:sub(1, 3500), "--port", "/nonexistent"},
    {"run", "--policy", "/dev/null", "--journal", "/tmp/" .. long:sub(1, 3500), "--port", "/nonexistent"},
    {"status", "--port", "/tmp/" .. long:sub(1, 300)},
    {"check", "--apn", long:sub(1, 100), "--port", "/nonexistent"},
    {"check", "--apn", 'in"ternet', "--port", "/nonexistent"},
    {"check", "--apn", "x", "--user", "a;b", "--port", "/nonexistent"},
    {"check", "--reboot-timeout", "1e308", "--port", "/nonexistent"},
    {"check", "--reboot-timeout", "0", "--port", "/nonexistent"},
    {"download", "--poll", "1e-300", "--port", "/nonexistent"},
    {"download", "--poll", "1e308", "--port", "/nonexistent"},
    {"monitor", "--for", "1e308", "--port", "/nonexistent"},
    {"monitor", "--for", "-1", "--port", "/nonexistent"},
    {"check", "--allow-model", "MU709", "--port", "/nonexistent"},
    {"check", "--allow-model", "MU709=eleven", "--port", "/nonexistent"},
    {"check", "--allow-model", "=11.0", "--port", "/nonexistent"},
    {"check", "--allow-model", long:sub(1, 60) .. "=11.0", "--port", "/nonexistent"},
    {"run", "--policy", "/tmp/" .. long:sub(1, 4000), "--port", "/nonexistent"},
  }
  for _, args in ipairs(cases) do
    local name = table.concat(args, " ")
    if #name > 90 then name = name:sub(1, 90) .. "..." end
    it(name, function()
      local rc, out, err = run(args)
      assert.equals(2, rc, err)
      assert.equals("", out)
      assert.is_nil(err:find("traceback", 1, true), err)
      assert.is_nil(err:find("internal error", 1, true), err)
      local first = err:match("^hwfota: ([^\n]+)\n")
      assert.is_not_nil(first, err)
      assert.is_true(#first < 200, "a short message: " .. first)
      -- the message and at most the hint "try: hwfota --help"
      local n = select(2, err:gsub("\n", ""))
      assert.is_true(n <= 2, err)
    end)
  end

  it("takes the same checks from the environment", function()
    local rc, _, err = run({"check", "--port", "/nonexistent"}, {env = {HWFOTA_REBOOT_TIMEOUT = "nan"}})
    assert.equals(2, rc, err)
    rc, _, err = run({"info"}, {env = {HWFOTA_PORT = "/tmp/" .. ("y"):rep(300)}})
    assert.equals(2, rc, err)
    rc, _, err = run({"check", "--port", "/nonexistent"}, {env = {HWFOTA_JOURNAL = "/tmp/" .. ("z"):rep(3500)}})
    assert.equals(2, rc, err)
  end)
end)

describe("hwfota command: a missing port", function()
  it("names the path once, and prints a JSON error document with --json", function()
    local rc, out, err = run{"status", "--port", "/dev/ttyUSB-none"}
    assert.equals(4, rc)
    assert.matches("cannot open /dev/ttyUSB-none", err, 1, true)
    assert.is_nil(err:find("cannot open.*cannot open"), err)
    assert.equals("", out)
    rc, out, err = run{"status", "--port", "/dev/ttyUSB-none", "--json"}
    assert.equals(4, rc)
    local doc = decode(out)
    assert.equals("failed", doc.status)
    assert.equals("ENOENT", doc.code)
    assert.matches("cannot open /dev/ttyUSB-none", doc.message, 1, true)
    assert.equals("/dev/ttyUSB-none", doc.port)
    rc, out = run({"check", "--json"}, {list_ports = function() return {} end})
    assert.equals(4, rc)
    assert.equals("failed", decode(out).status)
  end)
end)

describe("hwfota command: the journal says a reset is under way (issue 11.9)", function()
  local sim, journal, link
  before_each(function()
    local args = {"--rate", "4000"}
    for _, a in ipairs(OK_VERSIONS) do args[#args + 1] = a end
    sim = sim_support.quick(args)
    journal = os.tmpname()
    os.remove(journal)
    link = sim.dir .. "/later"
  end)
  after_each(function()
    sim:stop()
    os.remove(journal)
  end)

  -- a journal of a real unfinished run: downloaded, deferred (state 40, target kept)
  local function leave_journal()
    local rc, _, err = run(with{"--port", sim.path, "download", "--journal", journal})
    assert.equals(0, rc, err)
    assert.is_not_nil(io.open(journal), "journal kept")
  end

  for _, cmd in ipairs{"check", "download"} do
    it(cmd .. " waits for the port to come back, then carries on", function()
      leave_journal()
      local slept = 0
      local rc, out, err = run(with{"--port", link, cmd, "--journal", journal, "--reboot-timeout", "10"}, {
        sleep = function(s)
          slept = slept + 1
          if slept == 2 then   -- the module's port comes back (its reset is over)
            assert(os.execute(("ln -s %s %s"):format(sim_support.quote(sim.path), sim_support.quote(link))))
          end
          hwfota.sleep(s)
        end,
      })
      assert.is_true(slept >= 2, "it waited")
      assert.matches("may be resetting; waiting up to 10 s", out, 1, true)
      assert.matches(link .. " is back", out, 1, true)
      -- state 40 with the journal: check reports the update under way, download has
      -- nothing left to do
      assert.equals(cmd == "check" and 0 or 3, rc, err .. out)
    end)
  end

  it("without --port: waits for the module's ports to be listed again", function()
    leave_journal()
    local calls = 0
    local rc, out, err = run(with{"check", "--journal", journal, "--reboot-timeout", "10"}, {
      list_ports = function()
        calls = calls + 1
        if calls < 3 then return {{path = "/dev/ttyS0", huawei = false}} end
        return {{path = sim.path, huawei = true, role = "pcui", interface = 2}}
      end,
    })
    assert.equals(0, rc, err .. out)   -- state 40 under way: check says so
    assert.is_true(calls >= 3)
    assert.matches("no Huawei port and the journal", out, 1, true)
    assert.matches("an update is under way: state 40", out, 1, true)
  end)

  it("gives up after --reboot-timeout, exit 4, and says why", function()
    leave_journal()
    local t0 = hwfota.now()
    local rc, _, err = run(with{"--port", link, "upgrade", "--yes", "--journal", journal,
                                "--reboot-timeout", "0.6"})
    local took = hwfota.now() - t0
    assert.equals(4, rc, err)
    assert.matches("did not come back within 0.6 s", err, 1, true)
    assert.is_true(took >= 0.5 and took < 5, took)
    assert.is_not_nil(io.open(journal), "the journal is left for the next run")
  end)

  it("without a pending journal a missing port fails at once", function()
    local t0 = hwfota.now()
    local rc = run(with{"--port", link, "upgrade", "--yes", "--journal", journal,
                        "--reboot-timeout", "5"})
    assert.equals(4, rc)
    assert.is_true(hwfota.now() - t0 < 1)
  end)
end)

describe("hwfota command: small field items (issue 11.12)", function()
  it("--apn '' sends no AT^FOTACFG (only an APN does)", function()
    local sim = start_sim{"--no-new-version"}
    local rc, _, err = run(with{"--port", sim.path, "check", "--apn", ""})
    local rc2 = run(with{"--port", sim.path, "check", "--apn", "internet"})
    local log = log_lines(sim)
    sim:stop()
    assert.equals(3, rc, err)
    assert.equals(3, rc2)
    local n = 0
    for _ in log:gmatch('"line":"AT%^FOTACFG=') do n = n + 1 end
    assert.equals(1, n)   -- the second run's only
  end)

  it("status shows AT^FOTACFG? (never the password)", function()
    local sim = start_sim{"--no-new-version"}
    run(with{"--port", sim.path, "check", "--apn", "internet", "--user", "me", "--password", "s3cret",
             "--auth", "chap"})
    local rc, out = run{"--port", sim.path, "status"}
    local rc2, out2 = run{"--port", sim.path, "status", "--json"}
    sim:stop()
    assert.equals(0, rc)
    assert.matches('FOTA server: APN "internet", user "me", password set, auth 2 (CHAP)', out, 1, true)
    assert.is_nil(out:find("s3cret", 1, true))
    assert.equals(0, rc2)
    local doc = decode(out2)
    assert.same({apn = "internet", user = "me", password_set = true, auth = 2}, doc.fotacfg)
    assert.is_nil(out2:find("s3cret", 1, true))
  end)

  it("EDETECT shows the module's AT^FOTACFG? and an unknown code as not in the table", function()
    local sim = start_sim{"--detect-fail", "99"}
    local rc, out, err = run(with{"--port", sim.path, "check", "--apn", "lab.apn", "--json"})
    sim:stop()
    assert.equals(1, rc)
    local doc = decode(out)
    assert.equals("EDETECT", doc.code)
    assert.matches("code 99 (not in the table)", doc.message, 1, true)
    assert.matches('AT^FOTACFG? says: APN "lab.apn", user "", no password, auth 0 (none)',
                   doc.message, 1, true)
    assert.matches("code 99 (not in the table)", err, 1, true)
  end)

  for _, cols in ipairs{40, 24} do
    it(("the progress bar fits a narrow terminal (COLUMNS=%d)"):format(cols), function()
      local sim = start_sim{"--rate", "4000"}
      local rc, out, err = run(with{"--port", sim.path, "download"},
                               {isatty = function() return true end, env = {COLUMNS = tostring(cols)}})
      assert.equals(0, rc, err)
      local bars = 0
      -- every redraw: "\r" then the line then "\27[K"
      for line in out:gmatch("\r([^\r\n]-)\27%[K") do
        if line:find("%d+%%") then
          bars = bars + 1
          assert.is_true(#line < cols, ("%d columns: %q"):format(cols, line))
        end
      end
      assert.is_true(bars >= 2, out)
      assert.matches("100%", out, 1, true)
    end)
  end
end)

describe("hwfota command: --allow-model (issue 11.5)", function()
  it("runs a module below the built-in table once its row is added", function()
    -- the seed's demo version, below the MU509-b minimum
    local sim = sim_support.quick{"--version-from", "12.815.01.03.00", "--version-to", "12.815.01.04.00"}
    finally(function() sim:stop() end)
    local rc, out, err = run(with{"--port", sim.path, "check", "--json"})
    assert.equals(1, rc)
    local doc = decode(out)
    assert.equals("EUNSUPPORTED", doc.code)
    assert.matches("--allow-model MU509-b=12.815.01.03.00", doc.message, 1, true)
    rc, out, err = run(with{"--port", sim.path, "check", "--allow-model", "MU509=12.815.01.03.00"})
    sim:stop()
    assert.equals(0, rc, err)
    assert.matches("new version 12.815.01.04.00", out, 1, true)
  end)
end)

describe("hwfota info: the supported table as ATI prints the model (issue 11.5)", function()
  it("\"MU509\" on 11.x firmware is the MU509-c row", function()
    local sim = sim_support.quick{"--model", "MU509", "--version-from", "11.815.00.80.00"}
    finally(function() sim:stop() end)
    local rc, out = run{"--port", sim.path, "info", "--json"}
    assert.equals(0, rc)
    local doc = decode(out)
    assert.is_true(doc.supported)
    assert.equals("11.815.00.78.00", doc.min_firmware)
  end)
end)

describe("on_progress sees 100 % (issue 11.12)", function()
  for _, poll in ipairs{3, 0.1} do
    it(("when the module reaches 40 before the next progress poll (every %g s)"):format(poll), function()
      -- with 3 s the whole download is over before the first AT^FOTADLQ
      local s = sim_support.start{"--time-scale", "0.03", table.unpack(OK_VERSIONS)}
      finally(function() s:stop() end)
      local seen = {}
      local report = hwfota.run(s.path, {
        on_progress = function(p) seen[#seen + 1] = {p.percent, p.done, p.total} end,
      }, sim_support.opts{dl_poll = poll, dl_poll_idle = poll})
      assert.equals("upgraded", report.status, report.message)
      assert.is_true(#seen >= 1, "progress seen")
      assert.same({100, 79114, 79114}, seen[#seen])
      for i = 2, #seen do assert.is_true(seen[i][1] >= seen[i - 1][1]) end
    end)
  end
end)
