-- hwfota.argv: the example scripts' command line, read by a table of options.
local argv = require "hwfota.argv"

-- A usage that raises what it is told (the scripts' usage exits instead).
local function usage(msg) error("usage: " .. tostring(msg), 0) end

local function parse(args, options, o)
  local ok, r = pcall(argv.parse, args, options, usage, o)
  if ok then return r end
  return nil, r
end

describe("hwfota.argv", function()
  local OPTS = argv.with(argv.FLOW, {"port",
    ["--once"] = argv.flag("once"),
    ["--tcp"] = argv.number("tcp", "--tcp needs a port number"),
    ["--allow-model"] = argv.model_row("models"),
  })

  it("reads values, numbers, flags, repeated model rows and the positional name", function()
    local o = parse({"--apn", "net", "/dev/ttyUSB2", "--once", "--reboot-timeout", "90",
                     "--tcp", "7788", "--allow-model", "MU709=11.0.0.0.0",
                     "--allow-model", "MU609=12.1"}, OPTS, {user = "u", apn = "1234"})
    assert.same({apn = "net", user = "u", port = "/dev/ttyUSB2", once = true,
                 reboot_timeout = 90, tcp = 7788,
                 models = {MU709 = "11.0.0.0.0", MU609 = "12.1"}}, o)
  end)

  it("sends every mistake to usage, with the scripts' messages", function()
    local cases = {
      {{"--apn"}, "usage: missing value after --apn"},
      {{"--bogus"}, "usage: unknown option --bogus"},
      {{"a", "b"}, "usage: too many arguments"},
      {{"--reboot-timeout", "x"}, "usage: bad number"},
      {{"--tcp", "x"}, "usage: --tcp needs a port number"},
      {{"--allow-model", "=1"}, "usage: --allow-model needs MODEL=VERSION, e.g. MU709=11.0.0.0.0"},
    }
    for _, c in ipairs(cases) do
      local o, err = parse(c[1], OPTS)
      assert.is_nil(o)
      assert.equals(c[2], err)
    end
  end)

  it("takes no positional argument when the table names none", function()
    local _, err = parse({"x"}, {["--once"] = argv.flag("once")})
    assert.equals("usage: too many arguments", err)
    assert.same({once = true}, parse({"--once"}, {["--once"] = argv.flag("once")}))
  end)

  it("merges tables: a later row wins, the positional names of the last that has any", function()
    local t = argv.with({"a", ["--x"] = argv.flag("x")}, {["--x"] = argv.flag("y")}, {"b", "c"})
    assert.same({"b", "c"}, {t[1], t[2]})
    assert.same({y = true, b = "1", c = "2"}, parse({"--x", "1", "2"}, t))
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() argv.parse("x", {}, usage) end,
                     "bad argument #1 to 'parse' (table expected, got string)")
    assert.has_error(function() argv.parse({}, {}, nil) end,
                     "bad argument #3 to 'parse' (function expected, got nil)")
    assert.has_error(function() argv.with({}, 1) end,
                     "bad argument #2 to 'with' (table expected, got number)")
  end)

  describe("long (the agent's and fleet's commands)", function()
    local OPTS = {
      ["--id"] = {"id", true, cmds = {status = true, rollout = true}},
      ["--to"] = {"to", true, cmds = {rollout = true}},
      ["--json"] = {"json", false},
      ["--allow-model"] = {"allow_model", true, many = true},
    }
    it("reads values, --name=value, flags and repeated options", function()
      local o = assert(argv.long({"--id", "a", "--to=1.2", "--json", "--allow-model", "X=1",
                                  "--allow-model=Y=2"}, OPTS, "fleet rollout"))
      assert.same({id = "a", to = "1.2", json = true, allow_model = {"X=1", "Y=2"}}, o)
    end)
    it("returns each mistake as nil and one line", function()
      for _, case in ipairs{
        {{"--nope"}, "fleet status", "unknown option %-%-nope"},
        {{"extra"}, "fleet status", "fleet status takes no argument %(got \"extra\"%)"},
        {{"--to", "1"}, "fleet status", "option %-%-to does not apply to fleet status"},
        {{"--id"}, "fleet status", "option %-%-id needs a value"},
        {{"--json=1"}, "agent", "option %-%-json takes no value"},
        {{"--id", ("x"):rep(4097)}, "fleet status", "value too long or with a NUL byte"},
        {{"--id", "a\0b"}, "fleet status", "value too long or with a NUL byte"},
      } do
        local o, err = argv.long(case[1], OPTS, case[2])
        assert.is_nil(o)
        assert.matches(case[3], err)
      end
    end)
  end)
end)
