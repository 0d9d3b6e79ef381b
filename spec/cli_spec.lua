-- The hwfota command (lua/hwfota/cli.lua), run in-process through cli.main with
-- injected output, terminal and environment, against the simulator
-- (spec/support/sim.lua) where it talks to a module.
local hwfota = require "hwfota"
local json = require "dkjson"
local SIM = require "support.sim"   -- the simulator's default versions: SIM.FROM, SIM.TO

local top = os.getenv("HWFOTA_TOP") or "."

local clirun = require "support.clirun"
local run, decode, with, rx_count = clirun.run, clirun.decode, clirun.with, clirun.rx_count

local function tmpfile(text)
  local n = os.tmpname()
  local f = assert(io.open(n, "w"))
  f:write(text)
  f:close()
  return n
end

describe("hwfota command: usage", function()
  it("has --help for the command and every subcommand (exit 0)", function()
    local rc, out = run{"--help"}
    assert.equals(0, rc)
    assert.matches("^usage: hwfota", out)
    for _, c in ipairs{"list", "info", "status", "check", "download", "upgrade", "run",
                       "monitor", "at"} do
      rc, out = run{c, "--help"}
      assert.equals(0, rc, c)
      assert.matches("^usage: hwfota[^\n]* " .. c, out)
      assert.matches("Exit codes: 0 done, 1 failure, 2 usage", out, 1, true)
      rc, out = run{"-h", c}
      assert.equals(0, rc, c)
      assert.matches("^usage: hwfota[^\n]* " .. c, out)
    end
  end)

  it("exits 2 on usage errors, with a message on stderr", function()
    local cases = {
      {}, {"frobnicate"}, {"status", "--bogus"}, {"status", "--yes"}, {"--port"},
      {"at"}, {"at", "AT", "AT"}, {"at", "AT\r\nAT+CFUN=0"}, {"at", "AT\nX"}, {"at", "AT\0X"},
      {"at", ""}, {"run"}, {"status", "extra"}, {"monitor", "--for", "soon"},
      {"--json=yes", "status"}, {"check", "--reboot-timeout", "-5"},
    }
    for _, args in ipairs(cases) do
      local rc, out, err = run(args)
      assert.equals(2, rc, table.concat(args, " "))
      assert.equals("", out, table.concat(args, " "))
      assert.is_true(#err > 0, table.concat(args, " "))
    end
  end)

  it("refuses an upgrade off a terminal without --yes before touching any port", function()
    local rc, _, err = run{"upgrade", "--port", "/nonexistent"}
    assert.equals(2, rc)
    assert.matches("--yes", err, 1, true)
  end)

  it("runs through the command script and exits with main's code", function()
    local env = ("LUA_PATH=%s LUA_CPATH=%s "):format(
      SIM.quote(top .. "/lua/?.lua;" .. top .. "/lua/?/init.lua;;"),
      SIM.quote(top .. "/build/?.so;;"))
    local ok, how, code = os.execute(env .. top .. "/lua/bin/hwfota status --help >/dev/null")
    assert.is_true(ok, tostring(how) .. " " .. tostring(code))
    ok, how, code = os.execute(env .. top .. "/lua/bin/hwfota at 2>/dev/null")
    assert.equals(2, code)
  end)
end)

describe("hwfota command: port selection", function()
  it("picks the only Huawei port, or lists the candidates", function()
    local rc, _, err = run({"info"}, {list_ports = function()
      return {{path = "/dev/ttyS0", huawei = false}}
    end})
    assert.equals(4, rc)
    assert.matches("no Huawei port", err)
    assert.matches("/dev/ttyS0", err)
    rc, _, err = run({"info"}, {list_ports = function()
      return {{path = "/dev/ttyUSB0", huawei = true, product = "MU509"},
              {path = "/dev/ttyUSB2", huawei = true, product = "MU509"}}
    end})
    assert.equals(2, rc)
    assert.matches("/dev/ttyUSB0", err)
    assert.matches("/dev/ttyUSB2", err)
    assert.matches("--port", err)

    local sim = SIM.quick()
    local out
    rc, out = run({"info", "--json"}, {list_ports = function()
      return {{path = "/dev/ttyS0", huawei = false}, {path = sim.path, huawei = true}}
    end})
    sim:stop()
    assert.equals(0, rc)
    local doc = decode(out)
    assert.equals(sim.path, doc.port)
    assert.equals("MU509-b", doc.model)
  end)

  it("lists ports, as JSON too", function()
    local rc, out = run({"list", "--json"}, {list_ports = function()
      return {{path = "/dev/ttyUSB2", huawei = true, vid = 0x12d1, pid = 0x1573, product = "MU509"}}
    end})
    assert.equals(0, rc)
    local doc = decode(out)
    assert.equals("/dev/ttyUSB2", doc.ports[1].path)
    assert.is_true(doc.ports[1].huawei)
    rc, out = run({"list"}, {list_ports = function()
      return {{path = "/dev/ttyUSB2", huawei = true, vid = 0x12d1, pid = 0x1573, product = "MU509"}}
    end})
    assert.equals(0, rc)
    assert.matches("/dev/ttyUSB2%s+12d1:1573%s+MU509%s+huawei", out)
  end)

  it("exits 4 when the port is missing or busy", function()
    local rc, _, err = run{"status", "--port", "/dev/ttyUSB-none"}
    assert.equals(4, rc)
    assert.matches("cannot open", err)
    local sim = SIM.quick()
    local held = assert(hwfota.open(sim.path))
    rc, _, err = run{"status", "--port", sim.path}
    held:close()
    sim:stop()
    assert.equals(4, rc)
    assert.matches("ModemManager", err)
  end)
end)

describe("hwfota command against the simulator", function()
  local sim
  before_each(function() sim = SIM.quick{"--rate", "4000"} end)
  after_each(function() sim:stop() end)

  it("status --json prints one valid JSON document", function()
    local rc, out, err = run{"--port", sim.path, "status", "--json"}
    assert.equals(0, rc, err)
    local doc = decode(out)
    assert.equals("MU509-b", doc.model)
    assert.equals(SIM.FROM, doc.revision)
    assert.equals("867530900000009", doc.imei)
    assert.same({code = 10, name = "idle"}, doc.state)
    assert.equals(json.null, doc.progress)
    rc, out = run{"--port", sim.path, "status"}
    assert.equals(0, rc)
    assert.matches("FOTA state: 10 %(idle%)", out)
    assert.matches("Firmware:  " .. SIM.FROM, out, 1, true)
  end)

  it("at 'AT+GMR' prints the response; --trace shows Run:/Response:", function()
    local rc, out = run{"--port", sim.path, "at", "AT+GMR"}
    assert.equals(0, rc)
    assert.equals(SIM.FROM .. "\nOK\n", out)
    rc, out = run{"--port", sim.path, "at", "AT+GMR", "--trace"}
    assert.equals(0, rc)
    assert.matches("Run: AT+GMR\nResponse: " .. SIM.FROM .. "  OK\n", out, 1, true)
    rc, out = run{"--port", sim.path, "at", "AT+GMR", "--json"}
    assert.equals(0, rc)
    local doc = decode(out)
    assert.same({SIM.FROM}, doc.lines)
    assert.equals("OK", doc.final)
    assert.is_true(doc.ok)
    rc, out = run{"--port", sim.path, "at", "AT^NOSUCH"}
    assert.equals(1, rc)
    assert.matches("COMMAND NOT SUPPORT", out)
  end)

  it("check finds the new version, traces the seed's exchange, and leaves the module idle", function()
    local rc, out, err = run(with{"--port", sim.path, "check", "--json"})
    assert.equals(0, rc, err)
    local doc = decode(out)
    assert.equals("new_version", doc.status)
    assert.equals(SIM.TO, doc.version)
    assert.equals(79114, doc.size)
    assert.equals(SIM.FROM, doc.from)
    rc, out = run(with{"--port", sim.path, "check", "--trace", "--apn", "1234", "--auth", "chap"})
    assert.equals(0, rc)
    for _, l in ipairs{'Run: AT^FOTACFG="1234","","",2', "Response: OK", "Run: AT^FOTADET",
                       "          ^FOTASTATE: 11", "Run: AT^FOTADL=0"} do
      assert.matches(l, out, 1, true)
    end
    assert.matches("new version " .. SIM.TO .. " (79114 bytes)", out, 1, true)
    rc, out = run{"--port", sim.path, "status", "--json"}
    assert.equals(10, decode(out).state.code)
  end)

  it("takes APN, auth, journal and reboot timeout from the service's HWFOTA_* variables", function()
    local rc, out = run(with{"--port", sim.path, "check", "--trace"},
      {env = {HWFOTA_APN = "internet", HWFOTA_APN_USER = "u", HWFOTA_APN_PASSWORD = "p",
              HWFOTA_APN_AUTH = "1", HWFOTA_REBOOT_TIMEOUT = "600", HWFOTA_JOURNAL = os.tmpname()}})
    assert.equals(0, rc)
    assert.matches('Run: AT^FOTACFG="internet","u","p",1', out, 1, true)
    rc = run(with{"--port", sim.path, "check"}, {env = {HWFOTA_REBOOT_TIMEOUT = "soon"}})
    assert.equals(2, rc)
    rc = run(with{"--port", sim.path, "check", "--auth", "kerberos", "--apn", "x"})
    assert.equals(2, rc)
  end)

  it("download prints plain progress lines off a terminal; upgrade of that image needs --force", function()
    local rc, out, err = run(with{"--port", sim.path, "download"})
    assert.equals(0, rc, err)
    assert.is_nil(out:find("\r", 1, true))
    local n = 0
    for pct, done, total in out:gmatch("download +(%d+)%%  (%d+)/(%d+) bytes") do
      n = n + 1
      assert.is_true(tonumber(pct) <= 100)
      assert.is_true(tonumber(done) <= tonumber(total))
    end
    assert.is_true(n >= 2, "expected progress lines:\n" .. out)
    assert.matches("download 100%%  79114/79114 bytes", out)
    assert.matches("state 40 %(downloaded%)", out)
    assert.matches("hwfota upgrade --force", out, 1, true)
    -- downloaded: status shows the progress, download has nothing left to do
    rc, out = run{"--port", sim.path, "status", "--json"}
    local doc = decode(out)
    assert.equals(40, doc.state.code)
    assert.equals(100, doc.progress.percent)
    assert.equals(2, #doc.progress.files)
    rc = run(with{"--port", sim.path, "download"})
    assert.equals(3, rc)
    -- the module does not tell the image's version; forced, it is applied unchecked
    rc, out, err = run(with{"--port", sim.path, "upgrade", "--yes", "--force"})
    assert.equals(0, rc, err)
    assert.matches("upgraded and verified", out)
    assert.equals(1, rx_count(sim, "AT^FOTADL=1"))
  end)

  it("upgrade of a downloaded image of unknown version (no journal) fetches it again to learn it", function()
    local rc, out, err = run(with{"--port", sim.path, "download"})
    assert.equals(0, rc, err)
    rc, out, err = run(with{"--port", sim.path, "upgrade", "--yes"})
    assert.equals(0, rc, err)
    assert.matches("upgraded and verified", out)
    -- never applied unseen: AT^FOTADL=0, a new query, a second download, one AT^FWUP
    assert.equals(1, rx_count(sim, "AT^FOTADL=0"))
    assert.equals(2, rx_count(sim, "AT^FOTADET"))
    assert.equals(2, rx_count(sim, "AT^FOTADL=1"))
    assert.equals(1, rx_count(sim, "AT^FWUP"))
  end)

  it("download --journal then upgrade --journal: the journal keeps the version, no --force", function()
    local journal = os.tmpname()
    os.remove(journal)
    local rc, out, err = run(with{"--port", sim.path, "download", "--journal", journal})
    assert.equals(0, rc, err)
    assert.matches("apply it with: hwfota upgrade --journal", out, 1, true)
    local f = io.open(journal)
    assert.is_not_nil(f, "the journal of a deferred run is kept")
    assert.matches("target=" .. SIM.TO, f:read("a"), 1, true)
    f:close()
    rc, out, err = run(with{"--port", sim.path, "upgrade", "--yes", "--journal", journal})
    assert.equals(0, rc, err)
    assert.matches("upgraded and verified", out)
    -- a run resumed from a journal waits boot_settle (20 s) before AT^FWUP, and says so
    assert.matches("note: [^\n]*waiting 20%.0 s for a boot%-time upgrade report before AT%^FWUP", out)
    assert.is_nil(io.open(journal), "the journal is removed once the run is over")
  end)

  it("draws a progress bar with rate and time left on a terminal", function()
    -- 80 columns (the bar follows the terminal's width: COLUMNS, else stty size)
    local rc, out = run(with{"--port", sim.path, "download"},
                        {isatty = function() return true end, env = {COLUMNS = "80"}})
    assert.equals(0, rc)
    assert.matches("\r%[#*%.*%] +%d+%%  [%d.]+ k?B / 79.1 kB  ", out)
    assert.matches("kB/s  %d+:%d%d left\27%[K", out)
    assert.matches("\r%[##############################%] 100%%", out)
  end)

  it("upgrade --yes runs the whole flow and verifies the new version", function()
    local rc, out, err = run(with{"--port", sim.path, "upgrade", "--yes", "--json"})
    assert.equals(0, rc, err)
    local doc = decode(out)
    assert.equals("upgraded", doc.status)
    assert.equals(SIM.FROM, doc.from)
    assert.equals(SIM.TO, doc.to)
    rc, out = run{"--port", sim.path, "status", "--json"}
    assert.equals(SIM.TO, decode(out).revision)
    -- the offer is now the running version: nothing to do
    rc = run(with{"--port", sim.path, "check"})
    assert.equals(3, rc)
  end)

  it("upgrade asks on a terminal: no declines (exit 5), yes upgrades", function()
    local asked
    local tty = {isatty = function() return true end}
    tty.read_line = function() asked = (asked or 0) + 1; return "n" end
    local rc, out = run(with{"--port", sim.path, "upgrade"}, tty)
    assert.equals(5, rc)
    assert.equals(1, asked)
    assert.matches(("Download and apply firmware %s -> %s (79114 bytes)"):format(SIM.FROM, SIM.TO),
                   out, 1, true)
    assert.matches("[y/N]", out, 1, true)
    assert.matches("declined", out)
    tty.read_line = function() asked = asked + 1; return "y" end
    rc, out = run(with{"--port", sim.path, "upgrade"}, tty)
    assert.equals(0, rc, out)
    assert.equals(2, asked)
  end)

  it("run --policy FILE: a deferring policy exits 5, bad policy files exit 2", function()
    local f = tmpfile('return {on_new_version = function() return "defer", 60, "not tonight" end}')
    local rc, out = run(with{"--port", sim.path, "run", "--policy", f})
    assert.equals(5, rc)
    assert.matches("run: deferred", out)
    assert.matches("not tonight", out)
    os.remove(f)
    f = tmpfile("return 42")
    rc = run(with{"--port", sim.path, "run", "--policy", f})
    assert.equals(2, rc)
    os.remove(f)
    f = tmpfile("return {")
    rc = run(with{"--port", sim.path, "run", "--policy", f})
    assert.equals(2, rc)
    os.remove(f)
    rc = run(with{"--port", sim.path, "run", "--policy", "/nonexistent/policy.lua"})
    assert.equals(2, rc)
  end)

  it("run --policy --syslog logs through syslog, not the terminal", function()
    local f = tmpfile('local policy = require "hwfota.policy"\n' ..
      'return policy.all{policy.gate{from = {"' .. SIM.FROM .. '"}}, policy.retry{attempts = 2, base = 1}}')
    local rc, out, err, log = run(with{"--port", sim.path, "run", "--policy", f, "--syslog"})
    os.remove(f)
    assert.equals(0, rc, err)
    assert.equals("", out)
    local all = table.concat(log, "\n")
    assert.matches("info: new version " .. SIM.TO, all, 1, true)
    assert.matches("info: download 100%", all, 1, true)
    assert.matches(("notice: run: upgraded from %s to %s"):format(SIM.FROM, SIM.TO), all, 1, true)
  end)
end)

describe("hwfota command: --syslog through the logger command", function()
  it("hands each message to `logger -t hwfota -p daemon.LEVEL` on its standard input", function()
    local sim = SIM.quick()
    local bindir = sim.dir .. "/bin"
    local logfile = sim.dir .. "/logger.out"
    os.execute("mkdir -p " .. SIM.quote(bindir))
    local f = assert(io.open(bindir .. "/logger", "w"))
    f:write('#!/bin/sh\nmsg=$(cat)\necho "$* | $msg" >>' .. SIM.quote(logfile) .. '\n')
    f:close()
    os.execute("chmod +x " .. SIM.quote(bindir .. "/logger"))
    local policy = tmpfile('return {}')
    local cmd = ("PATH=%s:$PATH LUA_PATH=%s LUA_CPATH=%s %s/lua/bin/hwfota run --policy %s --port %s " ..
                 "--syslog --poll 0.2 >%s/stdout 2>&1"):format(
      SIM.quote(bindir), SIM.quote(top .. "/lua/?.lua;" .. top .. "/lua/?/init.lua;;"),
      SIM.quote(top .. "/build/?.so;;"), top, SIM.quote(policy), SIM.quote(sim.path),
      SIM.quote(sim.dir))
    local ok, _, code = os.execute(cmd)
    local lf = io.open(logfile)
    local logged = lf and lf:read("a") or ""
    if lf then lf:close() end
    local of = io.open(sim.dir .. "/stdout")
    local printed = of and of:read("a") or ""
    if of then of:close() end
    os.remove(policy)
    sim:stop()
    assert.is_true(ok, "exit " .. tostring(code) .. "\n" .. printed .. logged)
    assert.equals("", printed)
    assert.matches("-t hwfota -p daemon.info | new version " .. SIM.TO, logged, 1, true)
    assert.matches(("-t hwfota -p daemon.notice | run: upgraded from %s to %s"):format(SIM.FROM, SIM.TO),
                   logged, 1, true)
  end)
end)

describe("hwfota command: nothing to do, monitor", function()
  it("check exits 3 when the server has no new version", function()
    local sim = SIM.quick{"--no-new-version"}
    local rc, out = run(with{"--port", sim.path, "check"})
    local rc2, out2 = run(with{"--port", sim.path, "check", "--json"})
    sim:stop()
    assert.equals(3, rc)
    assert.matches("no new version", out)
    assert.equals(3, rc2)
    assert.equals("no_new_version", decode(out2).status)
  end)

  it("monitor prints unsolicited codes until --for expires, JSON at the end", function()
    local sim = SIM.quick{"--noise", "20"}
    local t0 = hwfota.now()
    local rc, out = run{"--port", sim.path, "monitor", "--for", "0.6"}
    local rc2, out2 = run{"--port", sim.path, "monitor", "--for", "0.6", "--json"}
    sim:stop()
    local took = hwfota.now() - t0
    assert.equals(0, rc)
    assert.matches("%d%d:%d%d:%d%d  state 10 %(idle%)", out)
    assert.matches("%d%d:%d%d:%d%d  %^%u+:", out)
    -- bounded (two runs of 0.6 s plus process starts): a generous bound for a loaded
    -- machine; without --for the monitor would run until killed
    assert.is_true(took < 10, took)
    assert.equals(0, rc2)
    local doc = decode(out2)
    assert.is_true(#doc.events >= 1)
    assert.is_string(doc.events[1].line)
  end)

  it("monitor prints each line once after the port came back", function()
    -- the port goes away at model second 20 for 5 (1 s .. 1.25 s: the monitor has it
    -- open by then, even on a loaded machine), then one URC at 34 (1.7 s)
    local sim = SIM.quick{"--port-gone", "time=20", "--urc", "time=34:^FOTASTATE: 10"}
    local rc, out, err = run{"--port", sim.path, "monitor", "--for", "3"}
    sim:stop()
    assert.equals(0, rc, err)
    assert.matches("port back: " .. sim.path, err .. out, 1, true)
    local n = 0
    for _ in out:gmatch("%^FOTASTATE: 10  %(idle%)") do n = n + 1 end
    assert.equals(1, n, out)
  end)
end)
