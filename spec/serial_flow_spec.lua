-- A whole FOTA flow through libserialport's real path: the simulator's pty is
-- presented as USB 12d1:1573 /dev/ttyUSB2 by the fakedev preload (which follows
-- the simulator's symlink at every open, so the module's reset looks like the
-- USB device vanishing and coming back).
local top = os.getenv("HWFOTA_TOP") or "."

local function start_sim(args)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local log = dir .. "/sim.log"
  local cmd = ("%s/build/hwfota-sim --dir %s --log %s %s & echo $!"):format(top, dir, log, args)
  local p = assert(io.popen(cmd))
  local pid = p:read("l")
  p:close()
  -- the ready line goes to our stdout: wait for the link instead (bounded)
  local link = dir .. "/ttyUSB2"
  for _ = 1, 200 do
    if os.execute("test -L " .. link) then break end
    os.execute("sleep 0.02")
  end
  return {dir = dir, log = log, link = link, pid = pid}
end

local function stop_sim(sim)
  os.execute("kill " .. sim.pid .. " 2>/dev/null")
  os.execute("sleep 0.1; rm -rf " .. sim.dir)
end

local function count(log, pattern)
  local n = 0
  for l in io.lines(log) do
    if l:find(pattern, 1, true) then n = n + 1 end
  end
  return n
end

describe("libserialport path against the simulator", function()
  it("runs the whole flow on /dev/ttyUSB2 (kind 'serial'), across the module's reset", function()
    local sim = start_sim("--time-scale 0.05 >/dev/null")
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write[[
local hwfota = require "hwfota"
local port = assert(hwfota.open("/dev/ttyUSB2"))
print("kind", port:kind())
local report = hwfota.run(port, {on_downloaded = function() return "upgrade" end}, {
  apn = "internet", mode = {auto_upgrade = false, resume = true},
  skip_model_check = true, reboot_timeout = 20})
print("status", report.status, report.code, report.message)
print("to", report.to)
print("kind-after", port:kind())
]]
    f:close()
    local p = assert(io.popen(("%s/spec/support/fakedev-run.sh -p %s lua5.4 %s 2>&1")
                              :format(top, sim.link, script)))
    local out = p:read("a")
    local ok = p:close()
    os.remove(script)
    local fwup = count(sim.log, '"line":"AT^FWUP"')
    local resets = count(sim.log, '"ev":"reset"')
    stop_sim(sim)
    assert.is_true(ok, out)
    assert.matches("kind\tserial", out, 1, true)
    assert.matches("status\tupgraded", out, 1, true)
    assert.matches("to\t12.815.01.04.00", out, 1, true)
    assert.matches("kind-after\tserial", out, 1, true)
    assert.equals(1, fwup)
    assert.equals(1, resets)
  end)
end)
