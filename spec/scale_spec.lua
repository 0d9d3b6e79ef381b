-- Scale (issue 15): many modules in one process. hwfota.run on 200 simulated
-- modules in tasks (hwfota.spawn + hwfota.loop) through the full flow: more ports
-- than one wait used to take (64); and the open-file limit: raised to the hard
-- limit when a process runs out of fds, an error naming both limits when even
-- that is not enough.
local hwfota = require "hwfota"
local sim = require "support.sim"
local child = require "support.child"

describe("scale: many modules in one process", function()
  it("upgrades 200 modules with hwfota.run in one process, 0 failures", function()
    local n = 200
    local s = sim.start{"--time-scale", "0.05", "--modules", tostring(n)}
    finally(function() s:stop() end)
    assert.equal(n, #s.paths)
    -- timeouts 4x the specs' own: 200 modules on a loaded 2-core machine
    local o = sim.opts{skip_model_check = true, command_timeout = 8, reboot_timeout = 20,
                       detect_timeout = 20, stall_timeout = 20, auto_upgrade_wait = 20}
    local reports = {}
    for i, path in ipairs(s.paths) do
      hwfota.spawn(function()
        local r, err = hwfota.run(path, {}, o)
        reports[i] = r or {status = "error", message = tostring(err)}
      end)
    end
    local t0 = hwfota.now()
    assert.same({}, hwfota.loop())
    local wall = hwfota.now() - t0
    local failed = {}
    for i = 1, n do
      local r = reports[i]
      if not (r and r.status == "upgraded" and r.to == sim.TO) then
        failed[#failed + 1] = ("%d: %s %s"):format(i, r and r.status, r and r.message)
      end
    end
    assert.same({}, failed)
    -- each module upgraded once, and different modules answered
    local imeis = {}
    for i = 1, n do imeis[reports[i].imei] = true end
    local distinct = 0
    for _ in pairs(imeis) do distinct = distinct + 1 end
    assert.equal(n, distinct)
    assert.equal(1, s:count("AT^FWUP", 0))
    assert.equal(1, s:count("AT^FWUP", n - 1))
    assert.is_true(wall < 45, ("200 modules took %.1f s"):format(wall))
  end)

  describe("open files (RLIMIT_NOFILE)", function()
    local s
    setup(function() s = sim.start{"--modules", "48"} end)
    teardown(function() if s then s:stop() end end)

    -- a child under `limits` opens every module's port and says how far it got
    local function open_all(limits)
      local code = ([[
local hwfota = require "hwfota"
local paths, ports = {%s}, {}
for i, p in ipairs(paths) do
  local port, msg, code = hwfota.open(p)
  if not port then print("failed", i, code, msg) os.exit(0) end
  ports[i] = port
end
print("opened", #ports)
]]):format(table.concat((function()
        local q = {}
        for i, p in ipairs(s.paths) do q[i] = ("%q"):format(p) end
        return q
      end)(), ","))
      return child.run(code, limits .. " timeout 60 ")
    end

    it("raises the soft limit to the hard one when a process runs out of fds", function()
      local out, ok = open_all("ulimit -Sn 32 && ulimit -Hn 4096 &&")
      assert.is_true(ok, out)
      assert.matches("opened\t48", out)
    end)

    it("says which limit stops it when even the hard limit is not enough", function()
      local out, ok = open_all("ulimit -Sn 32 && ulimit -Hn 32 &&")
      assert.is_true(ok, out)
      assert.matches("failed\t%d+\tEMFILE\t", out)
      assert.matches("RLIMIT_NOFILE allows %(32, hard limit 32%)", out)
      assert.matches("ulimit %-Hn", out)
    end)
  end)
end)
