-- hwfota.core.write_file_atomic (the journal's writer): a directory that cannot be
-- synced after the rename is a failure the caller hears of, not a silent success.
-- A child lua5.4 runs under spec/support/dirfsync_preload.c (directory fsync -> EIO).
local child = require "support.child"

local function run_child(preload, code)
  return child.run(code, preload and child.preload(preload))
end

local script = [[
local core = require "hwfota.core"
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir " .. dir))
local path = dir .. "/journal"
print("result", core.write_file_atomic(path, "phase=download\n"))
local f = io.open(path, "rb")
print("content", f and f:read("a"))
if f then f:close() end
os.remove(path)
os.remove(dir)
]]

describe("write_file_atomic", function()
  it("writes the file and returns true", function()
    local out, ok = run_child(nil, script)
    assert.is_true(ok, out)
    assert.matches("result\ttrue", out)
    assert.matches("content\tphase=download", out)
  end)

  it("reports a directory fsync failure as nil, message, EIO", function()
    local out, ok = run_child("dirfsync_preload", script)
    assert.is_true(ok, out)
    assert.matches("result\tnil\tcannot fsync the directory /[^\t]*: Input/output error\tEIO", out)
  end)
end)
