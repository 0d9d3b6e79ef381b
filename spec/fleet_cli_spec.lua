-- busted specs for `hwfota fleet ...` (hwfota.fleet.cli through hwfota.cli.main): option
-- parsing, rendering, exit codes, halt/resume across processes. The broker is
-- hwfota.fleet.membus on a virtual clock (injected as the CLI's bus factory), the
-- routers are the simulation's agent model.
local cli = require "hwfota.cli"
local fleetcli = require "hwfota.fleet.cli"
local membus = require "hwfota.fleet.membus"
local vclock = require "hwfota.fleet.vclock"
local sim = require "hwfota.fleet.sim"
local json = require "hwfota.json"

local TO = "12.815.01.05.00"

-- A broker with `n` simulated routers; `fails(i)` says which fail their upgrade.
local function world(n, fails, opts)
  opts = opts or {}
  local clock = vclock.new(1767225600)
  local broker = membus.new{clock = clock, latency = 0.01}
  local env = {clock = clock, broker = broker, rng = sim.rng(7),
               stats = {bad = 0, duplicates = 0, busy = 0, runs = 0, active = 0, peak_active = 0}}
  env.agents = {}
  for i = 1, n do
    env.agents[i] = sim.agent(env, {rid = ("rt%02d"):format(i), model = "MU609",
      imei = ("8672230200%05d"):format(i), firmware = "12.815.01.04.00", country = "DE",
      utc_offset = 0, fails = fails and fails(i) or false,
      download_median = 300, download_sigma = 0.2})
  end
  clock.run(clock.now() + 1)
  env.opened = {}
  env.io = function()
    local out, err = {}, {}
    local io_ = {
      stdout = function(s) out[#out + 1] = s end,
      stderr = function(s) err[#err + 1] = s end,
      getenv = function(k) return (opts.env or {})[k] end,
      fleet = {
        bus = function(o)
          env.opened[#env.opened + 1] = o
          if opts.unreachable then return nil, "connection refused", "ECONNREFUSED" end
          return broker:client{client_id = o.client_id}
        end,
        clock = clock,
        wait = function(pred, seconds)
          local deadline = seconds and clock.now() + seconds
          while not pred() do
            if deadline and clock.now() >= deadline then return false end
            if clock.now() > 1767225600 + 60 * 86400 then error("virtual time ran away") end
            clock.run(clock.now() + 1)
          end
          return true
        end,
      },
    }
    return io_, function() return table.concat(out) end, function() return table.concat(err) end
  end
  function env.run(args)
    local io_, out, err = env.io()
    local rc = cli.main(args, io_)
    return rc, out(), err()
  end
  return env
end

describe("hwfota fleet (CLI)", function()
  it("prints its help and exits 0; no command: help on stderr, exit 2", function()
    local env = world(0)
    local rc, out = env.run{"fleet", "--help"}
    assert.equal(0, rc)
    assert.matches("usage: hwfota fleet COMMAND", out)
    local rc2, out2 = env.run{"fleet", "rollout", "--help"}
    assert.equal(0, rc2)
    assert.matches("%-%-max%-failure%-rate", out2)
    local rc3, out3, err3 = env.run{"fleet"}
    assert.equal(2, rc3)
    assert.equal("", out3)
    assert.matches("usage: hwfota fleet", err3)
    local _, top = env.run{"--help"}
    assert.matches("fleet COMMAND", top)
  end)

  it("rejects bad usage with exit 2 and one clear line", function()
    local env = world(0)
    local cases = {
      {{"fleet", "bogus"}, 'unknown command "bogus"'},
      {{"fleet", "inventory", "--to", "1"}, "option %-%-to does not apply to fleet inventory"},
      {{"fleet", "inventory", "--nope"}, "unknown option %-%-nope"},
      {{"fleet", "rollout"}, "rollout needs %-%-to VERSION"},
      {{"fleet", "rollout", "--to", TO, "--waves", "10%,5%"}, "waves"},
      {{"fleet", "rollout", "--to", TO, "--waves", "a,b"}, "percentages like"},
      {{"fleet", "rollout", "--to", TO, "--max-failure-rate", "x"}, "a percentage like 2%%"},
      {{"fleet", "rollout", "--to", TO, "--concurrency", "0"}, "integer >= 1"},
      {{"fleet", "rollout", "--to", TO, "--window", "1-2"}, "HH:MM%-HH:MM"},
      {{"fleet", "rollout", "--to", "1;2"}, "firmware version"},
      {{"fleet", "rollout", "--to"}, "needs a value"},
      {{"fleet", "inventory", "--csv", "--json"}, "exclude each other"},
      {{"fleet", "inventory", "--broker", "host:99999"}, "HOST:PORT"},
      {{"fleet", "status", "extra"}, "takes no argument"},
    }
    for _, c in ipairs(cases) do
      local rc, _, err = env.run(c[1])
      assert.equal(2, rc, table.concat(c[1], " "))
      assert.matches(c[2], err, 1)
    end
  end)

  it("passes the broker options (and their environment variables) to the bus", function()
    local pw = os.tmpname()
    local f = assert(io.open(pw, "w")); f:write("secret\n"); f:close()
    local env = world(1, nil, {env = {HWFOTA_BROKER_USERNAME = "ops",
                                      HWFOTA_BROKER_PASSWORD_FILE = pw}})
    assert.equal(0, (env.run{"fleet", "inventory", "--broker", "mq.example:8883",
                             "--cafile", "/etc/ca.pem", "--client-id", "me"}))
    local o = env.opened[1]
    assert.equal("mq.example", o.host)
    assert.equal(8883, o.port)
    assert.equal("ops", o.username)
    assert.equal(pw, o.password_file)
    assert.same({cafile = "/etc/ca.pem"}, o.tls)
    assert.equal("me", o.client_id)
    assert.is_nil(o.password)                       -- never the password itself
    os.remove(pw)
    local rc, _, err = env.run{"fleet", "inventory", "--password-file", "/nonexistent/pw"}
    assert.equal(2, rc)
    assert.matches("password%-file", err)
    local env2 = world(1)
    local pw2 = os.tmpname()
    local rc2, _, err2 = env2.run{"fleet", "inventory", "--password-file", pw2}
    os.remove(pw2)
    assert.equal(2, rc2)
    assert.matches("%-%-password%-file needs %-%-username", err2)
  end)

  it("an error inside a command is an internal error (exit 1), never a raw trace", function()
    local env = world(1)
    local io_, _, err = env.io()
    io_.fleet.bus = function() error("boom in the bus") end
    local rc = cli.main({"fleet", "status"}, io_)
    assert.equal(1, rc)
    assert.matches("hwfota fleet: internal error: .*boom in the bus", err())
  end)

  it("an unreachable broker: exit 1 and why", function()
    local env = world(0, nil, {unreachable = true})
    local rc, _, err = env.run{"fleet", "status"}
    assert.equal(1, rc)
    assert.matches("127.0.0.1:1883: connection refused", err)
  end)

  it("inventory: a table, --csv (the IMEI list) and --json", function()
    local env = world(3)
    local rc, out = env.run{"fleet", "inventory"}
    assert.equal(0, rc)
    assert.matches("rt02%s+MU609%s+867223020000002%s+12.815.01.04.00%s+DE%s+yes", out)
    local rc2, csv = env.run{"fleet", "inventory", "--csv"}
    assert.equal(0, rc2)
    local lines = {}
    for l in csv:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(4, #lines)
    assert.equal("model,imei,firmware,country,location,router", lines[1])
    assert.equal("MU609,867223020000001,12.815.01.04.00,DE,,rt01", lines[2])
    local rc3, js = env.run{"fleet", "inventory", "--json"}
    assert.equal(0, rc3)
    local doc = assert(json.decode(js))
    assert.equal(3, #doc.routers)
    assert.equal("867223020000003", doc.routers[3].imei)
    local empty = world(0)
    local rc4, _, err4 = empty.run{"fleet", "inventory"}
    assert.equal(3, rc4)
    assert.matches("no router", err4)
  end)

  it("rollout upgrades every router, exit 0; status shows it", function()
    local env = world(12)
    local rc, out = env.run{"fleet", "rollout", "--to", TO, "--waves", "25%,100%",
                            "--max-failure-rate", "5%", "--concurrency", "3"}
    assert.equal(0, rc, out)
    assert.matches("rollout v12.815.01.05.00: 12.815.01.05.00 to 12 routers known", out)
    assert.matches("wave 1 %(25%%%)", out)
    assert.matches("wave 2 %(100%%%)", out)
    assert.matches("rollout v12.815.01.05.00: to 12.815.01.05.00, done", out)
    for _, a in ipairs(env.agents) do assert.equal(TO, a.firmware) end
    assert.equal(12, env.stats.runs)
    assert.is_true(env.stats.peak_active <= 3)
    local rc2, st = env.run{"fleet", "status"}
    assert.equal(0, rc2)
    assert.matches("done: all 2 waves passed", st)
    assert.matches("routers: 12 %(12 online%); done 12", st)
    local rc3, js = env.run{"fleet", "status", "--json"}
    assert.equal(0, rc3)
    local doc = assert(json.decode(js))
    assert.equal("done", doc.rollouts[1].state)
    assert.equal(12, doc.routers.phases.done)
  end)

  it("rollout halts on failures (exit 1, failing routers named); resume goes on", function()
    local env = world(20, function(i) return i == 3 or i == 11 end)
    local rc, out = env.run{"fleet", "rollout", "--to", TO, "--id", "r1",
                            "--max-failure-rate", "5%", "--waves", "100%"}
    assert.equal(1, rc)
    assert.matches("halted: wave 1: ", out)
    assert.matches("failing routers %(2%)", out)
    assert.matches("rt03%s+wave 1", out)
    assert.matches("rt11%s+wave 1", out)
    local rc2, st = env.run{"fleet", "status", "--id", "r1"}
    assert.equal(0, rc2)
    assert.matches("r1: to 12.815.01.05.00, halted", st)
    -- resume: the failures accepted, not retried
    local rc3, out3 = env.run{"fleet", "resume"}
    assert.equal(0, rc3, out3)
    assert.matches("rollout r1 resumed", out3)
    assert.matches(", done", out3)
    assert.equal(20, env.stats.runs)
    local rc4, _, err4 = env.run{"fleet", "resume"}
    assert.equal(3, rc4)
    assert.matches("no halted rollout", err4)
  end)

  it("a halt waits for the commands already sent (--halt-wait), so it names every failure", function()
    -- 40 routers at 2%: the first failure halts the wave; the second failing router's
    -- command is already out and its result comes later
    local function halt_run(extra)
      local env = world(40, function(i) return i == 3 or i == 11 end)
      local args = {"fleet", "rollout", "--to", TO, "--id", "hw", "--max-failure-rate", "2%",
                    "--waves", "100%"}
      for _, a in ipairs(extra) do args[#args + 1] = a end
      local rc, out = env.run(args)
      assert.equal(1, rc, out)
      assert.matches("halted: wave 1: 1 of 40", out)
      return out
    end
    local out = halt_run{}
    assert.matches("waiting up to 900 s for the %d+ router%(s%) still upgrading", out)
    assert.matches("failing routers %(2%)", out)
    assert.matches("rt03%s+wave 1", out)
    assert.matches("rt11%s+wave 1", out)
    -- --halt-wait 0: the report is the moment of the halt, one failure known
    local out0 = halt_run{"--halt-wait", "0"}
    assert.not_matches("waiting up to", out0)
    assert.matches("failing routers %(1%)", out0)
    local rc, _, err = world(1).run{"fleet", "rollout", "--to", TO, "--halt-wait", "-1"}
    assert.equal(2, rc)
    assert.matches("%-%-halt%-wait needs a number of seconds >= 0", err)
  end)

  it("halt marks a rollout no controller runs; resume --retry-failed retries its failures", function()
    local env = world(6, function(i) return i == 2 end)
    local st = {v = 1, type = "rollout", id = "old", to = TO, waves = {100},
                max_failure_rate = 0.5, salt = "old", state = "running", wave = 1, rev = 3}
    local pub = env.broker:client{client_id = "pub"}
    env.clock.run(env.clock.now() + 1)
    pub:publish("hwfota/fleet/rollout/old", json.encode(st), {retain = true})
    local rc, out = env.run{"fleet", "halt"}
    assert.equal(0, rc)
    assert.matches("rollout old halted %(no controller was running%)", out)
    local saved = assert(json.decode(env.broker.retained["hwfota/fleet/rollout/old"]))
    assert.equal("halted", saved.state)
    env.agents[2].fails = false
    local rc2 = env.run{"fleet", "resume", "--id", "old", "--retry-failed"}
    assert.equal(0, rc2)
    for _, a in ipairs(env.agents) do assert.equal(TO, a.firmware) end
  end)

  it("rollout --state FILE keeps the full state in an atomically written file", function()
    local env = world(5)
    local path = os.tmpname()
    os.remove(path)
    local rc = env.run{"fleet", "rollout", "--to", TO, "--id", "sf", "--state", path}
    assert.equal(0, rc)
    local f = assert(io.open(path))
    local doc = assert(json.decode(f:read("a")))
    f:close()
    os.remove(path)
    assert.equal("sf", doc.id)
    assert.equal("done", doc.routers.rt01[1])
    assert.equal(1, doc.routers.rt01[2])
  end)

  it("EXIT codes are the cli's", function()
    assert.equal(cli.EXIT.OK, fleetcli.EXIT.OK)
    assert.equal(cli.EXIT.FAILURE, fleetcli.EXIT.FAILURE)
    assert.equal(cli.EXIT.USAGE, fleetcli.EXIT.USAGE)
    assert.equal(cli.EXIT.NOTHING, fleetcli.EXIT.NOTHING)
    assert.equal(cli.EXIT.INTERRUPTED, fleetcli.EXIT.INTERRUPTED)
  end)
end)
