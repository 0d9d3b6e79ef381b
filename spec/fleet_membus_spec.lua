-- busted specs for hwfota.fleet.membus (the in-memory MQTT broker) and
-- hwfota.fleet.vclock (the virtual clock it runs on in simulations).
local membus = require "hwfota.fleet.membus"
local vclock = require "hwfota.fleet.vclock"

local function setup(latency)
  local clock = vclock.new()
  local broker = membus.new{clock = clock, latency = latency}
  return clock, broker
end

-- A client that records what it receives.
local function recorder(broker, id, opts)
  opts = opts or {}
  local c = broker:client{client_id = id, will = opts.will}
  local got = {}
  c:on_message(function(t, p, r) got[#got + 1] = {t, p, r} end)
  return c, got
end

describe("hwfota.fleet.vclock", function()
  it("fires timers in deadline order, ties in the order they were set", function()
    local c = vclock.new(100)
    local order = {}
    c.timer(2, function() order[#order + 1] = "b" .. c.now() end)
    c.timer(1, function() order[#order + 1] = "a" .. c.now() end)
    c.timer(2, function() order[#order + 1] = "c" .. c.now() end)
    local t = c.timer(1.5, function() order[#order + 1] = "x" end)
    t:cancel()
    assert.equal(3, c.run())
    assert.same({"a101", "b102", "c102"}, order)
  end)
  it("runs a timer set inside a callback in a later step, and stops at until_time", function()
    local c = vclock.new()
    local n = 0
    local function tick() n = n + 1; c.timer(10, tick) end
    c.timer(0, tick)
    c.run(35)
    assert.equal(4, n)          -- at 0, 10, 20, 30
    assert.equal(35, c.now())
    assert.equal(1, c.pending())
  end)
end)

describe("hwfota.fleet.membus", function()
  it("matches + and # as MQTT does", function()
    local m = membus.matches
    assert.is_true(m("hwfota/+/status", "hwfota/r1/status"))
    assert.is_false(m("hwfota/+/status", "hwfota/r1/x/status"))
    assert.is_true(m("hwfota/#", "hwfota/r1/x/status"))
    assert.is_true(m("hwfota/#", "hwfota"))          -- # matches the parent level too
    assert.is_false(m("hwfota/+", "hwfota"))
    assert.is_true(m("+/+", "/x"))                    -- an empty level is a level
    assert.is_false(m("#", "$SYS/x"))
    assert.is_false(m("+/x", "$SYS/x"))
    assert.is_true(m("$SYS/#", "$SYS/x"))
  end)

  it("delivers only after the clock runs, never inside publish", function()
    local clock, broker = setup()
    local a, got = recorder(broker, "a")
    assert.is_false(a:connected())
    a:subscribe("t/#")
    clock.run()
    assert.is_true(a:connected())
    assert.is_true(a:publish("t/1", "hello"))
    assert.same({}, got)                 -- not yet
    clock.run()
    assert.same({{"t/1", "hello", false}}, got)
  end)

  it("a handler's publish is delivered in a later step, not re-entrantly", function()
    local clock, broker = setup()
    local a = broker:client{client_id = "a"}
    local depth, max_depth, n = 0, 0, 0
    a:on_message(function(_, p)
      depth = depth + 1
      max_depth = math.max(max_depth, depth)
      n = n + 1
      if n < 5 then a:publish("t", p .. "+") end
      depth = depth - 1
    end)
    a:subscribe("t")
    clock.run()
    a:publish("t", "x")
    clock.run()
    assert.equal(5, n)
    assert.equal(1, max_depth)
  end)

  it("respects latency", function()
    local clock, broker = setup(0.25)
    local a, got = recorder(broker, "a")
    a:subscribe("t")
    clock.run()
    local t0 = clock.now()
    a:publish("t", "x")
    clock.run(t0 + 0.2)
    assert.same({}, got)
    clock.run()
    assert.equal(1, #got)
    assert.equal(t0 + 0.25, clock.now())
  end)

  it("keeps retained messages, delivers them on subscribe with retained=true, clears on empty", function()
    local clock, broker = setup()
    local p = broker:client{client_id = "p"}
    clock.run()
    p:publish("hwfota/r1/status", "s1", {retain = true})
    p:publish("hwfota/r2/status", "s2", {retain = true})
    p:publish("hwfota/r1/status", "s1b", {retain = true})   -- replaces
    p:publish("hwfota/r3/status", "live")                    -- not retained
    clock.run()
    local s, got = recorder(broker, "s")
    s:subscribe("hwfota/+/status")
    clock.run()
    assert.same({{"hwfota/r1/status", "s1b", true}, {"hwfota/r2/status", "s2", true}}, got)
    p:publish("hwfota/r2/status", "", {retain = true})        -- clears
    clock.run()
    local s2, got2 = recorder(broker, "s2")
    s2:subscribe("hwfota/r2/status")
    clock.run()
    assert.same({}, got2)
    assert.equal(1, broker.nretained)
  end)

  it("delivers a message once to a client whose subscriptions overlap", function()
    local clock, broker = setup()
    local a, got = recorder(broker, "a")
    a:subscribe("x/#"); a:subscribe("x/+"); a:subscribe("x/y")
    clock.run()
    a:publish("x/y", "1")
    clock.run()
    assert.equal(1, #got)
  end)

  it("publishes the will when a client is killed, not when it closes cleanly", function()
    local clock, broker = setup()
    local w = {topic = "hwfota/a/online", payload = "off", retain = true}
    local a = broker:client{client_id = "a", will = w}
    local b = broker:client{client_id = "b", will = {topic = "hwfota/b/online", payload = "off"}}
    local o, got = recorder(broker, "o")
    o:subscribe("hwfota/+/online")
    clock.run()
    b:close()
    membus.kill(a)
    clock.run()
    assert.same({{"hwfota/a/online", "off", false}}, got)
    assert.is_false(a:connected())
    local r, msg, code = a:publish("x", "y")
    assert.is_nil(r); assert.equal("ENOTCONN", code); assert.matches("not connected", msg)
    clock.run(clock.now() + 100)
    assert.is_false(a:connected())       -- a killed client never comes back
    assert.equal("off", broker.retained["hwfota/a/online"])
  end)

  it("on a lost connection: will, on_disconnect; on return: subscriptions re-sent, on_connect", function()
    local clock, broker = setup()
    local a, got = recorder(broker, "a", {will = {topic = "on/a", payload = "0", retain = true}})
    local events = {}
    a:on_connect(function() events[#events + 1] = "connect" end)
    a:on_disconnect(function(why) events[#events + 1] = "disconnect: " .. why end)
    a:subscribe("cmd/a")
    local p = broker:client{client_id = "p"}
    clock.run()
    membus.set_online(a, false)
    p:publish("cmd/a", "missed")           -- lost: a clean session keeps nothing
    p:publish("cmd/a", "kept", {retain = true})
    clock.run()
    assert.is_false(a:connected())
    assert.equal("0", broker.retained["on/a"])
    membus.set_online(a, true)
    clock.run()
    assert.same({"connect", "disconnect: connection lost", "connect"}, events)
    assert.same({{"cmd/a", "kept", true}}, got)
  end)

  it("a message queued before a disconnect is not delivered after the reconnect", function()
    local clock, broker = setup(1)
    local a, got = recorder(broker, "a")
    a:subscribe("t")
    local p = broker:client{client_id = "p"}
    clock.run()
    p:publish("t", "in flight")
    membus.set_online(a, false)
    membus.set_online(a, true)
    clock.run()
    assert.is_true(a:connected())
    assert.same({}, got)
  end)

  it("broker stop and start: no wills, retained kept, clients reconnect", function()
    local clock, broker = setup()
    local a, got = recorder(broker, "a", {will = {topic = "w", payload = "dead", retain = true}})
    local downs = 0
    a:on_disconnect(function() downs = downs + 1 end)
    a:subscribe("r")
    clock.run()
    a:publish("r", "state", {retain = true})
    clock.run()
    broker:stop()
    clock.run()
    assert.is_false(a:connected())
    assert.equal(1, downs)
    assert.is_nil(broker.retained["w"])
    broker:start()
    clock.run()
    assert.is_true(a:connected())
    assert.same({{"r", "state", false}, {"r", "state", true}}, got)
  end)

  it("a second connection with the same client id takes the session over", function()
    local clock, broker = setup()
    local a1 = broker:client{client_id = "a"}
    local why
    a1:on_disconnect(function(r) why = r end)
    clock.run()
    local a2 = broker:client{client_id = "a"}
    clock.run()
    assert.is_false(a1:connected())
    assert.is_true(a2:connected())
    assert.matches("taken over", why)
  end)

  it("rejects bad topics and patterns with nil, message, EINVAL; bad types raise", function()
    local clock, broker = setup()
    local a = broker:client{client_id = "a"}
    clock.run()
    for _, bad in ipairs{"a/+", "a/#", ""} do
      local r, _, code = a:publish(bad, "x")
      assert.is_nil(r); assert.equal("EINVAL", code)
    end
    for _, bad in ipairs{"a/#/b", "a+/b", "a/b#", ""} do
      local r, _, code = a:subscribe(bad)
      assert.is_nil(r, bad); assert.equal("EINVAL", code)
    end
    assert.has_error(function() a:publish("t", 5) end)
    assert.has_error(function() a:on_message("x") end)
    assert.has_error(function() membus.new{} end)
    assert.has_error(function() broker:client{} end)
  end)
end)
