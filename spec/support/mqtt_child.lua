-- A process for spec/mqtt_spec.lua to kill: connects as router `user` with a
-- last will (hwfota/<user>/online = "offline-will"), says "pid N" and "connected",
-- publishes "online" there and serves the loop until it is killed.
-- Usage: lua5.4 mqtt_child.lua HOST PORT USER PASSWORD_FILE
local hwfota = require "hwfota"
local mqtt_bus = require "hwfota.fleet.mqtt_bus"

local host, port, user, pwfile = arg[1], math.tointeger(tonumber(arg[2])), arg[3], arg[4]
local f = assert(io.open("/proc/self/stat"))
print("pid " .. f:read("a"):match("^(%d+)"))
f:close()
io.stdout:flush()
local topic = "hwfota/" .. user .. "/online"
local bus = assert(mqtt_bus.new{host = host, port = port, client_id = user .. "-child",
  username = user, password_file = pwfile, keepalive = 10,
  will = {topic = topic, payload = "offline-will", retain = true, qos = 1}})
bus:on_connect(function()
  print("connected")
  io.stdout:flush()
  bus:publish(topic, "online", {retain = true, qos = 1})
end)
bus:on_disconnect(function(reason)
  io.stderr:write("disconnected: " .. tostring(reason) .. "\n")
end)
hwfota.loop()
