-- spec/run-tests.sh in parallel (issue 15, `make test` wall time): the suites run as
-- jobs side by side, split into the parts a check names, and the output and the counts
-- are those of a run one job at a time. Runs the real script in a throw-away tree of
-- stand-in suites (C test binaries, checks with and without parts, two spec files).
-- Also the fault campaign's --shard, which the faults check's parts use.
local top = os.getenv("HWFOTA_TOP") or "."

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out:gsub("rc=%d+%s*$", "")
end

local function write(path, text, exec)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  if exec then assert(os.execute("chmod +x " .. q(path))) end
end

-- A tree: build/tests/test_a, test_b; spec/checks/parted (parts p1 p2 p3: each waits
-- until all three have started, so they pass only when run side by side), plain; a spec
-- file and a flow spec file (one more `it` with HWFOTA_SIM_CLOSED_PORT=keep). BAD names a part that fails ("fail") or prints no tally
-- ("silent").
local function tree(bad)
  local d = assert(io.popen("mktemp -d /tmp/hwfota-runtests.XXXXXX")):read("l")
  assert(os.execute("mkdir -p " .. q(d .. "/spec/checks") .. " " .. q(d .. "/build/tests")))
  assert(os.execute("cp " .. q(top .. "/spec/run-tests.sh") .. " " .. q(d .. "/spec/")))
  write(d .. "/build/tests/test_a", "#!/bin/sh\necho '#tally a passed=3 failed=0'\n", true)
  write(d .. "/build/tests/test_b", "#!/bin/sh\necho '#tally b passed=2 failed=0'\n", true)
  write(d .. "/spec/checks/parted", ([[#!/bin/sh
# run-tests: parts
cd "$(dirname "$0")/../.." || exit 2
case $1 in
--parts) echo "building" >&2; printf 'p1\np2\np3\n'; exit 0;;
--part)
    mkdir -p build/meet && : >"build/meet/$2"
    n=0; while [ "$(ls build/meet | wc -l)" -lt 3 ]; do
        n=$((n + 1)); [ "$n" -gt 600 ] && { echo "$2 ran alone"; exit 1; }; sleep 0.05; done
    echo "#note parted: a note every part prints"
    case "$2:%s" in
    p2:fail) echo "boom: the log of the failing part"; echo "#tally parted passed=0 failed=1"; exit 1;;
    p3:silent) echo "no tally here"; exit 0;;
    esac
    echo "#tally parted passed=1 failed=0"; exit 0;;
esac
echo "#note parted: a note every part prints"
echo "#tally parted passed=3 failed=0"
]]):format(bad or ""), true)
  write(d .. "/spec/checks/plain", "#!/bin/sh\necho '#note plain note'\necho '#tally plain passed=4 failed=0'\n", true)
  write(d .. "/spec/x_spec.lua", 'describe("x", function() it("a", function() end) it("b", function() end) end)\n')
  write(d .. "/spec/flow_y_spec.lua",
    'local keep = os.getenv("HWFOTA_SIM_CLOSED_PORT") == "keep"\n'
    .. 'describe("y", function() it("y", function() end) if keep then it("keep", function() end) end end)\n')
  return d
end

local function run(d, jobs)
  return sh("HWFOTA_TEST_JOBS=" .. jobs .. " sh " .. q(d .. "/spec/run-tests.sh") .. " </dev/null")
end

-- the output without the scheduler's own "== " lines
local function results(out)
  local t = {}
  for l in out:gmatch("[^\n]+") do if not l:find("^== ") then t[#t + 1] = l end end
  return table.concat(t, "\n")
end

describe("spec/run-tests.sh in parallel", function()
  local dirs = {}
  after_each(function()
    for _, d in ipairs(dirs) do os.execute("rm -rf " .. q(d)) end
    dirs = {}
  end)

  it("runs parts side by side and prints what a serial run prints, counts included", function()
    local d = tree()
    dirs[#dirs + 1] = d
    local rc1, serial = run(d, 1)
    assert.equals(0, rc1, serial)
    os.execute("rm -rf " .. q(d .. "/build/meet"))
    local rc4, par = run(d, 4)
    assert.equals(0, rc4, par)
    -- 2 binaries, 3 parts, plain, 2 spec files, 1 flow spec file again (keep)
    assert.matches("== 9 jobs, 4 at a time", par, 1, true)
    assert.matches("== 6 jobs, 1 at a time", serial, 1, true)
    assert.equals(results(serial), results(par))
    assert.matches("-- spec/checks/parted: 3 ok, 0 not ok\n   note: parted: a note every part prints\n"
                   .. "-- spec/checks/plain: 4 ok, 0 not ok\n   note: plain note\n", par, 1, true)
    assert.matches("-- busted: 3 ok, 0 not ok\n-- busted spec/flow_*_spec.lua, closed port keep: 2 ok, 0 not ok\n",
                   par, 1, true)
    assert.matches("   C unit:                5 passed, 0 failed\n", par, 1, true)
    assert.matches("   specs:                 3 passed, 0 failed\n", par, 1, true)
    assert.matches("   flow specs, keep:      2 passed, 0 failed\n", par, 1, true)
    assert.matches("   other checks:          7 passed, 0 failed\n17 passed, 0 failed\n$", par)
    -- every job timed, for the next run's order
    local f = assert(io.open(d .. "/build/test-times"))
    local n = 0
    for _ in f:lines() do n = n + 1 end
    f:close()
    assert.equals(9, n)
  end)

  it("prints a failing part's log in full, counts it and exits non-zero", function()
    local d = tree("fail")
    dirs[#dirs + 1] = d
    local rc, out = run(d, 3)
    assert.equals(1, rc, out)
    assert.matches("boom: the log of the failing part\n#tally parted passed=0 failed=1\n"
                   .. "-- spec/checks/parted: 2 ok, 1 not ok\n", out, 1, true)
    assert.matches("\n16 passed, 1 failed\n$", out)
  end)

  it("counts a part that prints no tally as one failure", function()
    local d = tree("silent")
    dirs[#dirs + 1] = d
    local rc, out = run(d, 3)
    assert.equals(1, rc, out)
    assert.matches("no tally here\n!! spec/checks/parted --part p3: no tally (exit 0)\n"
                   .. "-- spec/checks/parted: 2 ok, 1 not ok\n", out, 1, true)
  end)

  it("rejects a HWFOTA_TEST_JOBS that is not a positive number", function()
    local d = tree()
    dirs[#dirs + 1] = d
    local rc, out = run(d, "x")
    assert.equals(2, rc, out)
    assert.matches("HWFOTA_TEST_JOBS=x: want a positive number", out, 1, true)
  end)
end)

describe("the fault campaign's --shard", function()
  local function list(extra)
    local rc, out = sh("cd " .. q(top) .. " && HWFOTA_TOP=" .. q(top) .. " lua5.4 spec/faults/campaign.lua"
                       .. " --seed 1 --runs 64 --regressions spec/faults/regressions.txt --list " .. extra)
    local seeds = {}
    for l in out:gmatch("[^\n]+") do if not l:find("^#") then seeds[#seeds + 1] = l end end
    return rc, seeds, out
  end

  it("deals every run of the campaign to exactly one of N shards", function()
    local rc, all, out = list("")
    assert.equals(0, rc, out)
    assert.is_true(#all > 64, out)   -- the range and the regression seeds
    local seen, n = {}, 0
    for k = 0, 4 do
      local rck, part, outk = list("--shard " .. k .. "/5")
      assert.equals(0, rck, outk)
      assert.is_true(#part >= #all // 5, outk)
      for _, s in ipairs(part) do
        assert.is_nil(seen[s], "run " .. s .. " in two shards")
        seen[s] = true
        n = n + 1
      end
    end
    assert.equals(#all, n)
    for _, s in ipairs(all) do assert.is_true(seen[s], "run " .. s .. " in no shard") end
  end)

  it("rejects a shard outside 0..N-1", function()
    local rc, _, out = list("--shard 5/5")
    assert.is_true(rc ~= 0, out)
    assert.matches("bad --shard 5/5", out, 1, true)
  end)
end)
