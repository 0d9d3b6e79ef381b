-- hwfota.mqtt (the libmosquitto binding) and hwfota.fleet.mqtt_bus against a real,
-- private Mosquitto broker (spec/support/broker.lua) with a password file and the
-- fleet contract's ACL (issue 16).
local hwfota = require "hwfota"
local broker = require "support.broker"

local top = os.getenv("HWFOTA_TOP") or "."
local has_mqtt, mqtt = pcall(require, "hwfota.mqtt")
local has_broker, no_broker = broker.available()
local mqtt_bus = require "hwfota.fleet.mqtt_bus"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Serve the loop (watchers, timers) until pred() is true or `timeout` seconds pass.
local function run_until(pred, timeout)
  local deadline = hwfota.now() + (timeout or 5)
  while not pred() do
    if hwfota.now() >= deadline then return false end
    hwfota.poll({}, 0.05)
  end
  return true
end

-- Serve the loop for `seconds`.
local function run_for(seconds)
  run_until(function() return false end, seconds)
end

local USERS = {
  {name = "controller", password = "c-secret"},
  {name = "r1", password = "p1-secret"},
  {name = "r2", password = "p2-secret"},
}

local function skip_reason()
  if not has_mqtt then
    return "hwfota.mqtt is not built (libmosquitto-dev missing): " .. tostring(mqtt):match("^[^\n]*")
  end
  if not has_broker then return no_broker end
end

if skip_reason() then
  describe("hwfota.mqtt", function()
    pending(skip_reason())
  end)
  return
end

describe("hwfota.mqtt and mqtt_bus against mosquitto", function()
  local b
  local buses = {}
  local serial = 0   -- client ids are unique across tests (sessions are persistent)

  -- A bus for `user` (its password from the broker's file); closed after each test.
  local function bus(user, extra)
    serial = serial + 1
    local o = {host = b.host, port = b.port, client_id = user .. "-" .. serial,
               username = user, password_file = b:password_file(user), keepalive = 10,
               backoff = {first = 0.2, max = 1}}
    for k, v in pairs(extra or {}) do o[k] = v end
    local x, err, code = mqtt_bus.new(o)
    assert(x, tostring(err) .. " " .. tostring(code))
    buses[#buses + 1] = x
    return x
  end

  -- Messages a bus receives, in order.
  local function inbox(x)
    local box = {}
    x:on_message(function(topic, payload, retained)
      box[#box + 1] = {topic = topic, payload = payload, retained = retained}
    end)
    return box
  end

  local function connected(...)
    local list = {...}
    return run_until(function()
      for _, x in ipairs(list) do if not x:connected() then return false end end
      return true
    end, 10)
  end

  setup(function()
    b = assert(broker.start{users = USERS})
  end)

  teardown(function()
    if b then b:cleanup() end
  end)

  after_each(function()
    for _, x in ipairs(buses) do x:close() end
    buses = {}
    if not b:running() then assert(b:start()) end
  end)

  it("publishes and subscribes: a round trip through the broker", function()
    local ctl = bus("controller")
    local box = inbox(ctl)
    ctl:subscribe("hwfota/+/status", {qos = 1})
    local r1 = bus("r1")
    assert.is_true(connected(ctl, r1))
    run_for(0.2)   -- the SUBACK
    assert.is_true(r1:publish("hwfota/r1/status", '{"v":1}', {qos = 1}))
    assert.is_true(run_until(function() return #box == 1 end))
    assert.same({topic = "hwfota/r1/status", payload = '{"v":1}', retained = false}, box[1])
  end)

  it("delivers a retained message on subscribe with retained=true", function()
    local r1 = bus("r1")
    assert.is_true(connected(r1))
    assert.is_true(r1:publish("hwfota/r1/inventory", "inv-1", {retain = true, qos = 1}))
    run_for(0.3)
    local ctl = bus("controller")
    local box = inbox(ctl)
    ctl:subscribe("hwfota/+/inventory", {qos = 1})
    assert.is_true(run_until(function() return #box >= 1 end))
    assert.same({topic = "hwfota/r1/inventory", payload = "inv-1", retained = true}, box[1])
  end)

  it("refuses a wrong password with a clear message (and keeps retrying)", function()
    local path = b.dir .. "/wrong.pw"
    local f = assert(io.open(path, "w")); f:write("not-the-password\n"); f:close()
    local x = bus("r1", {password_file = path})
    local reasons = {}
    x:on_disconnect(function(reason) reasons[#reasons + 1] = reason end)
    assert.is_true(run_until(function() return #reasons >= 2 end, 10))
    assert.is_false(x:connected())
    assert.matches("connection refused: Connection Refused: not authorised", reasons[1], 1, true)
    assert.equal(0, x:stats().connects)
  end)

  it("the raw client reports the CONNACK refusal through on_connect", function()
    local c = assert(mqtt.new{client_id = "raw-wrong"})
    assert.is_true(c:username_pw_set("r1", "nope"))
    local got
    c:on_connect(function(rc, text) got = {rc, text} end)
    assert.is_true(c:connect(b.host, b.port, 10))
    local w = hwfota.watch(c:socket(), "r", function() c:loop_read() end)
    c:loop_write()
    assert.is_true(run_until(function() return got ~= nil end))
    w:cancel()
    c:close()
    assert.equal(5, got[1])
    assert.matches("not authorised", got[2])
  end)

  it("an unreadable password file: nil, message, code", function()
    local x, err, code = mqtt_bus.new{port = b.port, username = "r1",
      password_file = b.dir .. "/no-such.pw"}
    assert.is_nil(x)
    assert.matches("password file", err)
    assert.matches("no%-such%.pw", err)
    assert.equal("ENOENT", code)
    x, err, code = mqtt_bus.new{port = b.port, username = "r1", password_file = b.dir}
    assert.is_nil(x)
    assert.matches("password file", err)
    assert.equal("EISDIR", code)
  end)

  it("without hwfota.mqtt, new says so: nil, message, ENOTSUP", function()
    local saved = package.loaded["hwfota.mqtt"]
    package.loaded["hwfota.mqtt"] = nil
    package.preload["hwfota.mqtt"] = function() error("module 'hwfota.mqtt' not found") end
    local ok, x, err, code = pcall(mqtt_bus.new, {port = b.port})
    package.preload["hwfota.mqtt"] = nil
    package.loaded["hwfota.mqtt"] = saved
    assert.is_true(ok, tostring(x))
    assert.is_nil(x)
    assert.matches("hwfota.mqtt is not available", err, 1, true)
    assert.matches("libmosquitto-dev", err, 1, true)
    assert.equal("ENOTSUP", code)
  end)

  it("wrong argument types raise", function()
    assert.has_error(function() mqtt_bus.new{port = "x"} end)
    assert.has_error(function() mqtt_bus.new{port = b.port, password_file = "/x"} end)
    local x = bus("r1")
    assert.has_error(function() x:publish("t", 5) end)
    assert.has_error(function() x:publish("t", "p", {qos = 2}) end)
    assert.has_error(function() x:subscribe(nil) end)
    assert.has_error(function() x:on_message("f") end)
  end)

  it("ACL: router r1 cannot command r2 nor the fleet, nor read r2's commands", function()
    local ctl = bus("controller")
    local seen = inbox(ctl)
    ctl:subscribe("hwfota/#", {qos = 1})
    local r1 = bus("r1")
    local r1box = inbox(r1)
    r1:subscribe("hwfota/r2/cmd", {qos = 1})
    r1:subscribe("hwfota/r1/cmd", {qos = 1})
    local r2 = bus("r2")
    local r2box = inbox(r2)
    r2:subscribe("hwfota/r2/cmd", {qos = 1})
    r2:subscribe("hwfota/fleet/cmd", {qos = 1})
    assert.is_true(connected(ctl, r1, r2))
    run_for(0.3)
    -- r1 tries to command r2 and the fleet: the broker drops both
    r1:publish("hwfota/r2/cmd", "from-r1", {qos = 1})
    r1:publish("hwfota/fleet/cmd", "from-r1", {qos = 1})
    -- r1's own topic goes through (the probe that the path works)
    r1:publish("hwfota/r1/status", "r1-ok", {qos = 1})
    -- the controller commands r2: r2 gets it, r1 (subscribed to it) does not
    ctl:publish("hwfota/r2/cmd", "from-ctl", {qos = 1})
    ctl:publish("hwfota/r1/cmd", "ctl-to-r1", {qos = 1})
    assert.is_true(run_until(function()
      return #r2box >= 1 and #r1box >= 1 and #seen >= 3
    end))
    run_for(0.5)
    local from_r1 = {}
    for _, m in ipairs(seen) do
      if m.payload == "from-r1" then from_r1[#from_r1 + 1] = m.topic end
    end
    assert.same({}, from_r1)
    local probe = false
    for _, m in ipairs(seen) do probe = probe or m.payload == "r1-ok" end
    assert.is_true(probe, "r1's own status did not arrive: the test proves nothing")
    assert.same({{topic = "hwfota/r2/cmd", payload = "from-ctl", retained = false}}, r2box)
    assert.same({{topic = "hwfota/r1/cmd", payload = "ctl-to-r1", retained = false}}, r1box)
  end)

  it("reconnects after a broker restart, re-subscribes, and gets what comes after", function()
    -- a clean session: the broker forgets its subscription, only the bus can renew it
    local ctl = bus("controller", {clean_session = true})
    local box = inbox(ctl)
    local connects, downs = 0, 0
    ctl:on_connect(function() connects = connects + 1 end)
    ctl:on_disconnect(function() downs = downs + 1 end)
    ctl:subscribe("hwfota/+/status", {qos = 1})
    local r1 = bus("r1")
    assert.is_true(connected(ctl, r1))
    assert.equal(1, connects)
    assert(b:restart())
    assert.is_true(run_until(function() return downs >= 1 end, 10))
    assert.is_true(run_until(function() return ctl:connected() and r1:connected() end, 15))
    assert.equal(2, connects)
    run_for(0.3)
    assert.is_true(r1:publish("hwfota/r1/status", "after-restart", {qos = 1}))
    assert.is_true(run_until(function() return #box >= 1 end))
    assert.equal("after-restart", box[#box].payload)
  end)

  it("keeps a qos 1 publish made while the broker is down, and sends it on return", function()
    local ctl = bus("controller")
    local box = inbox(ctl)
    ctl:subscribe("hwfota/+/status", {qos = 1})
    local r1 = bus("r1")
    assert.is_true(connected(ctl, r1))
    b:stop()
    assert.is_true(run_until(function() return not r1:connected() end, 10))
    assert.is_true(r1:publish("hwfota/r1/status", "while-down", {qos = 1}))
    local ok, err, code = r1:publish("hwfota/r1/status", "qos0-while-down", {qos = 0})
    assert.is_nil(ok)
    assert.equal("ENOTCONN", code)
    assert.matches("not connected", err)
    assert(b:start())
    assert.is_true(run_until(function()
      for _, m in ipairs(box) do if m.payload == "while-down" then return true end end
      return false
    end, 15))
  end)

  it("finds a broker that stopped answering by its keepalive (loop_misc on the timer)", function()
    local r1 = bus("r1", {keepalive = 5})
    local reasons = {}
    r1:on_disconnect(function(reason) reasons[#reasons + 1] = reason end)
    assert.is_true(connected(r1))
    b:pause()
    local ok = run_until(function() return #reasons >= 1 end, 20)
    b:resume()
    assert.is_true(ok, "no disconnect within 20 s of a silent broker")
    assert.matches("keepalive", reasons[1])
    assert.is_false(r1:connected())
    assert.is_true(run_until(function() return r1:connected() end, 10))
  end)

  it("keeps a qos 1 publish made before the first connection (broker down at start)", function()
    -- the controller's persistent session holds its subscription across the restart,
    -- so whichever reconnects first, the message reaches it
    local ctl = bus("controller")
    local box = inbox(ctl)
    ctl:subscribe("hwfota/+/status", {qos = 1})
    assert.is_true(connected(ctl))
    run_for(0.3)
    b:stop()
    -- a clean session (the persistent one is kept by the session anyway)
    local r1 = bus("r1", {clean_session = true})
    assert.is_true(r1:publish("hwfota/r1/status", "before-first", {qos = 1}))
    run_for(0.5)   -- the first attempts fail
    assert.is_false(r1:connected())
    assert(b:start())
    assert.is_true(run_until(function()
      for _, m in ipairs(box) do if m.payload == "before-first" then return true end end
      return false
    end, 10))
  end)

  it("backs off: waits double from the first and stay under the max", function()
    b:stop()
    local x = bus("r1", {backoff = {first = 0.1, max = 0.4}})
    local waits = {}
    x:on_disconnect(function() waits[#waits + 1] = x:stats().next_wait end)
    assert.is_true(run_until(function() return #waits >= 5 end, 10))
    assert.is_true(waits[1] > 0.07 and waits[1] <= 0.1, tostring(waits[1]))
    assert.is_true(waits[2] > 0.15 and waits[2] <= 0.2, tostring(waits[2]))
    for i = 3, 5 do assert.is_true(waits[i] > 0.29 and waits[i] <= 0.4, tostring(waits[i])) end
    assert(b:start())
    assert.is_true(run_until(function() return x:connected() end, 5))
  end)

  it("publishes the last will when the client process is killed (kill -9)", function()
    local ctl = bus("controller")
    local box = inbox(ctl)
    ctl:subscribe("hwfota/+/online", {qos = 1})
    assert.is_true(connected(ctl))
    run_for(0.2)
    local child = top .. "/spec/support/mqtt_child.lua"
    local cmd = ("exec lua5.4 %s %s %d r1 %s"):format(q(child), q(b.host), b.port,
      q(b:password_file("r1")))
    local p = assert(io.popen(cmd .. " 2>&1", "r"))
    local pid = tonumber((p:read("l") or ""):match("^pid (%d+)$"))
    assert.is_truthy(pid, "the child did not start")
    local line = p:read("l")
    assert.equal("connected", line)
    assert.is_true(run_until(function()
      for _, m in ipairs(box) do if m.payload == "online" then return true end end
      return false
    end))
    os.execute("kill -9 " .. pid)
    p:close()
    assert.is_true(run_until(function()
      for _, m in ipairs(box) do if m.payload == "offline-will" then return true end end
      return false
    end, 20))
  end)

  it("a restarted broker keeps retained messages and a persistent session's queued qos 1", function()
    local r1 = bus("r1", {client_id = "r1-persistent"})
    local r1box = inbox(r1)
    r1:subscribe("hwfota/r1/cmd", {qos = 1})
    local ctl = bus("controller")
    assert.is_true(connected(r1, ctl))
    run_for(0.3)
    assert.is_true(r1:publish("hwfota/r1/inventory", "inv-kept", {retain = true, qos = 1}))
    run_for(0.3)
    r1:close()   -- r1 is away; its session (subscription, queue) stays on the broker
    assert.is_true(ctl:publish("hwfota/r1/cmd", "queued-cmd", {qos = 1}))
    run_for(0.3)
    assert(b:restart())
    assert.is_true(run_until(function() return ctl:connected() end, 10))
    -- the same client id comes back: the queued command is delivered, no subscribe needed
    local again = bus("r1", {client_id = "r1-persistent"})
    local box2 = inbox(again)
    assert.is_true(run_until(function() return #box2 >= 1 end, 10))
    assert.same({topic = "hwfota/r1/cmd", payload = "queued-cmd", retained = false}, box2[1])
    assert.same({}, r1box)
    -- and a new subscriber still gets the retained inventory
    local seen = inbox(ctl)
    ctl:subscribe("hwfota/r1/inventory", {qos = 1})
    assert.is_true(run_until(function() return #seen >= 1 end))
    assert.same({topic = "hwfota/r1/inventory", payload = "inv-kept", retained = true}, seen[1])
  end)

  it("a handler that raises is reported and the bus goes on", function()
    local logged = {}
    local ctl = bus("controller", {log = function(line) logged[#logged + 1] = line end})
    local n = 0
    ctl:on_message(function(_, payload)
      n = n + 1
      if payload == "bad" then error("handler bug") end
    end)
    ctl:subscribe("hwfota/+/status", {qos = 1})
    local r1 = bus("r1")
    assert.is_true(connected(ctl, r1))
    run_for(0.2)
    r1:publish("hwfota/r1/status", "bad", {qos = 1})
    r1:publish("hwfota/r1/status", "good", {qos = 1})
    assert.is_true(run_until(function() return n >= 2 end))
    assert.equal(1, ctl:stats().handler_errors)
    assert.equal(1, #logged)
    assert.matches("on_message handler failed: .*handler bug", logged[1])
    assert.is_true(ctl:connected())
  end)

  it("a handler may close its own bus (the client is destroyed after libmosquitto returned)", function()
    local ctl = bus("controller")
    local n = 0
    ctl:on_message(function() n = n + 1; ctl:close() end)
    ctl:subscribe("hwfota/+/status", {qos = 1})
    local r1 = bus("r1")
    assert.is_true(connected(ctl, r1))
    run_for(0.2)
    r1:publish("hwfota/r1/status", "one", {qos = 1})
    r1:publish("hwfota/r1/status", "two", {qos = 1})
    assert.is_true(run_until(function() return n >= 1 end))
    run_for(0.5)
    assert.equal(1, n)
    assert.is_false(ctl:connected())
    local ok, _, code = ctl:publish("hwfota/x/cmd", "p", {qos = 1})
    assert.is_nil(ok)
    assert.equal("ECLOSED", code)
  end)

  describe("the raw client (hwfota.mqtt)", function()
    -- A raw client connected as the controller, its socket served by a watcher.
    local function raw(id)
      local c = assert(mqtt.new{client_id = id})
      assert.is_true(c:username_pw_set("controller", "c-secret"))
      local up = false
      c:on_connect(function(rc) up = rc == 0 end)
      assert.is_true(c:connect(b.host, b.port, 10))
      local w
      w = hwfota.watch(c:socket(), "rw", function(ready)
        if ready:find("r") then c:loop_read() end
        if ready:find("w") and c:socket() then c:loop_write() end
        if not c:socket() then w:cancel() end
      end)
      assert.is_true(run_until(function() return up end))
      return c, w
    end

    it("an error in a Lua callback is raised from loop_read, after libmosquitto returned", function()
      local c, w = raw("raw-err")
      w:cancel()
      local got = {}
      c:on_message(function(topic, payload, retained, qos)
        got[#got + 1] = payload
        if payload == "boom" then error("callback says boom") end
      end)
      c:subscribe("hwfota/r9/cmd", 1)
      c:publish("hwfota/r9/cmd", "boom", 1)
      c:publish("hwfota/r9/cmd", "after", 1)
      local errors = {}
      local deadline = hwfota.now() + 5
      while #got < 2 and hwfota.now() < deadline do
        hwfota.poll({}, 0.05)
        if c:want_write() then c:loop_write() end
        local ok, err = pcall(c.loop_read, c)
        if not ok then errors[#errors + 1] = err end
      end
      c:close()
      assert.same({"boom", "after"}, got)
      assert.equal(1, #errors)
      assert.matches("callback says boom", errors[1])
    end)

    it("closes with <close> and __gc; a closed client raises on use", function()
      local c
      do
        local x <close> = assert(mqtt.new{})
        c = x
        assert.matches("open", tostring(x))
      end
      assert.matches("closed", tostring(c))
      assert.has_error(function() c:publish("t", "p") end, "hwfota.mqtt: the client is closed")
      c:close()   -- idempotent
    end)

    it("checks its arguments and reports libmosquitto's refusals", function()
      assert.has_error(function() mqtt.new{client_id = 5} end)
      local x, err, code = mqtt.new{clean_session = false}
      assert.is_nil(x)
      assert.matches("client_id", err)
      assert.equal("EINVAL", code)
      local c = assert(mqtt.new{})
      assert.has_error(function() c:publish("t", "p", 3) end)
      assert.has_error(function() c:connect("127.0.0.1", 0) end)
      local ok
      ok, err, code = c:publish("hwfota/#", "p", 0)
      assert.is_nil(ok)
      assert.equal("EINVAL", code)
      assert.matches("^mqtt: publish failed: ", err)
      ok, err, code = c:publish("t", "p", 0)
      assert.is_nil(ok)
      assert.equal("ENOTCONN", code)
      ok, err, code = c:connect("127.0.0.1", broker.free_port(), 10)
      if ok then   -- a non-blocking connect may only fail on the first read
        local deadline = hwfota.now() + 2
        repeat
          hwfota.poll({}, 0.02)
          local fd = c:socket()
          if fd then ok, err, code = c:loop_write() end
          if ok and c:socket() then ok, err, code = c:loop_read() end
        until not ok or hwfota.now() > deadline
      end
      assert.is_nil(ok)
      assert.matches("refused", err)
      c:close()
      local major = mqtt.version()
      assert.is_true(major >= 1)
    end)
  end)

  describe("TLS", function()
    local has_openssl = os.execute("command -v openssl >/dev/null 2>&1") == true
    if not has_openssl then
      pending("openssl is not installed (Debian package openssl): no certificate to test with")
      return
    end

    -- A CA and a server certificate for 127.0.0.1 (its IP in subjectAltName), made now.
    local function make_certs(dir)
      local cmds = {
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
          "-keyout ca.key -out ca.crt -days 2 -subj /CN=hwfota-test-ca",
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
          "-keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "printf 'subjectAltName=IP:127.0.0.1\\n' >san.ext",
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial " ..
          "-out server.crt -days 2 -extfile san.ext",
        -- a second CA that signed nothing here: a client trusting it must refuse the server
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
          "-keyout other.key -out other.crt -days 2 -subj /CN=other-ca",
        "chmod 644 *.crt *.key",
      }
      for _, c in ipairs(cmds) do
        assert(os.execute(("cd %s && %s >/dev/null 2>&1"):format(q(dir), c)) == true, c)
      end
    end

    local tb, certs
    setup(function()
      local p = io.popen("mktemp -d /tmp/hwfota-certs.XXXXXX")
      certs = p:read("l")
      p:close()
      make_certs(certs)
      tb = assert(broker.start{users = USERS, tls = {cafile = certs .. "/ca.crt",
        certfile = certs .. "/server.crt", keyfile = certs .. "/server.key"}})
    end)
    teardown(function()
      if tb then tb:cleanup() end
      if certs then os.execute("rm -rf " .. q(certs)) end
    end)

    it("connects over TLS with the CA, and a message goes through", function()
      local ctl = bus("controller", {port = tb.port, password_file = tb:password_file("controller")})
      local box = inbox(ctl)
      ctl:subscribe("hwfota/+/status", {qos = 1})
      local r1 = bus("r1", {port = tb.tls.port, password_file = tb:password_file("r1"),
        tls = {cafile = certs .. "/ca.crt"}})
      assert.is_true(connected(ctl, r1))
      run_for(0.2)
      assert.is_true(r1:publish("hwfota/r1/status", "over-tls", {qos = 1}))
      assert.is_true(run_until(function() return #box >= 1 end))
      assert.equal("over-tls", box[1].payload)
    end)

    it("refuses a server its CA did not sign", function()
      local reasons = {}
      local r1 = bus("r1", {port = tb.tls.port, password_file = tb:password_file("r1"),
        tls = {cafile = certs .. "/other.crt"}})
      r1:on_disconnect(function(reason) reasons[#reasons + 1] = reason end)
      assert.is_true(run_until(function() return #reasons >= 1 end, 10))
      assert.is_false(r1:connected())
      assert.equal(0, r1:stats().connects)
      assert.matches("TLS error.*certificate verify failed", reasons[1])
    end)

    it("a missing CA file: nil, message, code from new", function()
      local x, err, code = mqtt_bus.new{port = tb.tls.port, tls = {cafile = certs .. "/none.crt"}}
      assert.is_nil(x)
      assert.matches("TLS", err)
      assert.is_string(code)
    end)
  end)

  it("an idle connected bus in hwfota.loop uses (near) no CPU for 3 s", function()
    local ctl = bus("controller", {keepalive = 5})
    ctl:subscribe("hwfota/#", {qos = 1})
    assert.is_true(connected(ctl))
    local function cpu()
      local f = assert(io.open("/proc/self/stat"))
      local stat = f:read("a")
      f:close()
      local fields = {}
      for w in stat:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = w end
      return (tonumber(fields[12]) + tonumber(fields[13])) / 100   -- utime + stime
    end
    local stop = hwfota.timer(3, function() ctl:close() end)
    local before, t0 = cpu(), hwfota.now()
    hwfota.loop()   -- returns when the bus is closed (nothing left to serve)
    local used, took = cpu() - before, hwfota.now() - t0
    assert.is_false(stop:active())
    assert.is_true(took >= 2.9, "the loop ended early: " .. took)
    assert.is_true(used < 0.05, ("used %.2f s of CPU in %.1f s"):format(used, took))
  end)
end)
