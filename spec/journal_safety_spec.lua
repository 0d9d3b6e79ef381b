-- The journal path is untrusted (issue 12, items 2 and 3).
--
-- 1. Only a regular file, or a name not taken yet in a directory, is a journal: a
--    device node, a FIFO, a directory or a symbolic link at the journal's path is
--    refused with EJOURNAL before the first command, and left exactly as it was
--    (lstat before/after); the temporary file has a unique name and is created with
--    O_EXCL|O_NOFOLLOW, so a symbolic link planted at "J.tmp" is never followed.
-- 2. A journal write that fails (spec/support/journalfail_preload.c: ENOSPC/EROFS/EIO
--    at create, write, fsync or rename of the N-th journal write) stops the run at
--    once: EJOURNAL with the path and the reason, no command after the failed write
--    (so never the AT^FWUP the record was for), and the run ends within bounds.
-- Each host runs in a child lua5.4 under timeout(1): the old code blocked for good
-- in io.open on a FIFO and in poll() after a failed record.
local sim = require "support.sim"
local child = require "support.child"

local q = sim.sh_quote
-- real seconds a host may take (a whole run takes about 1 s at this time scale)
local HOST_LIMIT = tonumber(os.getenv("HWFOTA_JSAFETY_LIMIT")) or 40

-- The host: hwfota.run on `path` with `journal`; trace lines and the report on
-- stdout/stderr (stderr is unbuffered, like the preload's own lines, so the order of
-- "jfail: write N" against "run AT..." is the order things happened).
local function host_code(path, journal)
  return ([[
local hwfota = require "hwfota"
local sim = require "support.sim"
local t0 = hwfota.now()
local opts = sim.opts{skip_model_check = true, journal = %q, trace = function(dir, text)
  if dir == "run" then io.stderr:write("run ", text, "\n") end
end}
local r = hwfota.run(%q, {}, opts)
io.stderr:write(("report status=%%s code=%%s attempts=%%s elapsed=%%.1f\nmessage %%s\n"):format(
  r.status, tostring(r.code), tostring(r.attempts), hwfota.now() - t0, tostring(r.message)))
]]):format(journal, path)
end

local function run_host(path, journal, prefix)
  return child.run(host_code(path, journal), (prefix or "") .. "timeout -s KILL " .. HOST_LIMIT .. " ")
end

-- what lstat says about a path (type, device numbers, inode, size, mtime), or "absent"
local function lstat(path)
  local p = io.popen("stat -c '%F %t:%T %i %s %Y' " .. q(path) .. " 2>/dev/null")
  local s = p:read("l")
  p:close()
  return s or "absent"
end

local function dir_listing(dir)
  local p = io.popen("ls -A " .. q(dir))
  local names = {}
  for l in p:lines() do names[#names + 1] = l end
  p:close()
  table.sort(names)
  return table.concat(names, " ")
end

describe("journal path safety", function()
  local s, dir
  before_each(function()
    s = sim.start{"--time-scale", "0.03"}
    dir = sim.tmpdir()
  end)
  after_each(function()
    s:stop()
    os.execute("rm -rf " .. q(dir))
  end)

  -- a path that is not a regular file: refused before the first command, untouched
  local function refused(journal, what)
    local before, files = lstat(journal), dir_listing(dir)
    local out, ok = run_host(s.path, journal)
    assert.is_true(ok, out)
    assert.matches("report status=failed code=EJOURNAL attempts=0", out, 1, true)
    assert.matches("message journal " .. journal:gsub("%p", "%%%0") .. " cannot be used: .*" .. what, out)
    assert.are.same({}, s:commands(), "commands reached the module")
    assert.equal(before, lstat(journal))
    assert.equal(files, dir_listing(dir))
    return out
  end

  it("refuses a character device (a /dev/null node) and leaves it in place", function()
    local node = dir .. "/null"
    assert.is_true(os.execute("mknod " .. q(node) .. " c 1 3"), "mknod (needs root)")
    refused(node, "a character device")
  end)

  it("refuses a FIFO without blocking on it", function()
    local fifo = dir .. "/fifo"
    assert.is_true(os.execute("mkfifo " .. q(fifo)))
    refused(fifo, "a FIFO")
  end)

  it("refuses a directory", function()
    local d = dir .. "/sub"
    assert.is_true(os.execute("mkdir " .. q(d)))
    refused(d, "a directory")
  end)

  it("refuses a symbolic link as the journal (the link and its target untouched)", function()
    local victim = dir .. "/victim"
    local f = assert(io.open(victim, "w")); f:close()   -- empty: "no journal" to a reader
    assert.is_true(os.execute("ln -s victim " .. q(dir .. "/j")))
    local vbefore = lstat(victim)
    refused(dir .. "/j", "a symbolic link")
    assert.equal(vbefore, lstat(victim))
  end)

  it("refuses a journal in a directory that does not exist", function()
    local out, ok = run_host(s.path, dir .. "/none/j")
    assert.is_true(ok, out)
    assert.matches("report status=failed code=EJOURNAL attempts=0", out, 1, true)
    assert.are.same({}, s:commands())
  end)

  it("never follows a symbolic link planted at the temporary file's name", function()
    local victim = dir .. "/victim"
    local f = assert(io.open(victim, "w")); f:write("precious\n"); f:close()
    assert.is_true(os.execute("ln -s victim " .. q(dir .. "/j.tmp")))
    local vbefore = lstat(victim)
    local out, ok = run_host(s.path, dir .. "/j")
    assert.is_true(ok, out)
    assert.matches("report status=upgraded", out, 1, true)
    assert.equal(1, s:count("AT^FWUP"))
    assert.equal("precious\n", sim.read_file(victim))
    assert.equal(vbefore, lstat(victim))
    assert.equal("symbolic link", lstat(dir .. "/j.tmp"):match("^(%S+ %S+)"))
    assert.equal("absent", lstat(dir .. "/j"))   -- removed after the upgrade
    assert.equal("j.tmp victim", dir_listing(dir))   -- no temporary file left
  end)
end)

describe("journal write failure", function()
  local pre = child.preload("journalfail_preload")

  -- one run with journal writes failing after `n` good ones; returns the output
  local function run_failing(n, op, errno)
    local s = sim.start{"--time-scale", "0.03"}
    local dir = sim.tmpdir()
    local env = ("JFAIL_LOG=stderr JFAIL_AFTER=%d JFAIL_OP=%s JFAIL_ERRNO=%s "):format(n, op, errno)
    local out, ok = run_host(s.path, dir .. "/j", pre .. env)
    local fwup = s:count("AT^FWUP")
    local listing = dir_listing(dir)
    s:stop()
    os.execute("rm -rf " .. q(dir))
    return out, ok, fwup, listing
  end

  -- how many journal writes a whole run makes when none fails
  local total
  it("a run without failures (the reference: every journal write counted)", function()
    local out, ok, fwup = run_failing(1000, "write", "ENOSPC")
    assert.is_true(ok, out)
    assert.matches("report status=upgraded", out, 1, true)
    assert.equal(1, fwup)
    total = 0
    for _ in out:gmatch("jfail: write %d+ ok") do total = total + 1 end
    assert.is_true(total >= 3, out)
    print(("# %d journal writes in a whole run"):format(total))
  end)

  local cases = {
    {"write", "ENOSPC", "No space left on device"}, {"create", "EROFS", "Read%-only file system"},
    {"fsync", "EIO", "Input/output error"}, {"rename", "ENOSPC", "No space left on device"},
  }
  for _, c in ipairs(cases) do
    local op, errno, text = c[1], c[2], c[3]
    it(("stops with EJOURNAL at every journal write (%s fails with %s), nothing sent after it")
       :format(op, errno), function()
      assert.is_number(total, "the reference run did not complete")
      -- "disk full" from the start (0) up to the last write of a whole run
      for n = 0, total - 1 do
        local out, ok, fwup, listing = run_failing(n, op, errno)
        local where = ("journal write %d failing at %s:\n%s"):format(n + 1, op, out)
        assert.is_true(ok, "the host hung or crashed, " .. where)
        assert.matches("report status=failed code=EJOURNAL", out, 1, true)
        assert.matches("message cannot write the journal /[^\n]*/j: .*" .. text, out)
        local after_fail = out:match("jfail: write %d+ fails[^\n]*\n(.*)$")
        assert.is_string(after_fail, where)
        assert.is_nil(after_fail:match("run AT[^\n]*"), "a command went out after the failed write, " .. where)
        -- AT^FWUP only after a record that was written
        local before_fail = out:match("^(.*)jfail: write %d+ fails")
        assert.equal(select(2, before_fail:gsub("run AT%^FWUP\n", "")), fwup, where)
        local elapsed = tonumber(out:match("elapsed=([%d.]+)"))
        assert.is_true(elapsed < 20, where)
        -- no temporary file left behind
        assert.is_nil(listing:match("%.tmp"), "temporary file left: " .. listing)
      end
    end)
  end
end)
