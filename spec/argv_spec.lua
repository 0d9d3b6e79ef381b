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
end)
