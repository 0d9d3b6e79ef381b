-- busted specs for hwfota.policy (pure Lua; no module, no simulator needed).
local policy = require "hwfota.policy"
local hwfota = require "hwfota"

-- A clock for window{}: day name and "HH:MM" or "HH:MM:SS".
local WDAY = { sun = 1, mon = 2, tue = 3, wed = 4, thu = 5, fri = 6, sat = 7 }
local function at(day, hhmm)
    local h, m, s = hhmm:match("^(%d+):(%d+):?(%d*)$")
    local t = { year = 2026, month = 11, day = 1, wday = WDAY[day], hour = tonumber(h),
                min = tonumber(m), sec = tonumber(s) or 0, isdst = false }
    return function() return t end
end

-- A 15-digit IMEI with its Luhn check digit.
local function imei(body14)
    local sum, dbl = 0, true
    for i = #body14, 1, -1 do
        local d = tonumber(body14:sub(i, i))
        if dbl then d = d * 2; if d > 9 then d = d - 9 end end
        sum, dbl = sum + d, not dbl
    end
    return body14 .. ((10 - sum % 10) % 10)
end

local function fleet(n)
    local t = {}
    for i = 0, n - 1 do t[#t + 1] = imei(string.format("86714503%06d", 123400 + i)) end
    return t
end

local DAY, HOUR = 86400, 3600

describe("hwfota.policy module", function()
    it("has a version string and the hook list", function()
        assert.matches("^hwfota%.policy %d+%.%d+", policy._VERSION)
        assert.same({ "on_new_version", "on_downloaded", "on_failure", "on_progress",
                      "on_event", "before_detect", "after" }, policy.HOOKS)
    end)

    it("sets no globals when loaded", function()
        local before = {}
        for k in pairs(_G) do before[k] = true end
        package.loaded["hwfota.policy"] = nil
        local fresh = require "hwfota.policy"
        assert.is_function(fresh.all)
        for k in pairs(_G) do assert.is_true(before[k], "new global " .. tostring(k)) end
        package.loaded["hwfota.policy"] = policy
    end)

    it("reports construction errors at the caller's line", function()
        local ok, err = pcall(function() policy.retry{ attempt = 3 } end)
        assert.is_false(ok)
        assert.matches("policy_spec%.lua:%d+: hwfota%.policy%.retry: unknown option 'attempt'", err)
    end)
end)

describe("policy.retry", function()
    local function half() return 0.5 end -- jitter term is zero at r = 0.5

    it("backs off exponentially and gives up after `attempts`", function()
        local r = policy.retry{ attempts = 5, base = 10, factor = 2, max = 1000, random = half }
        assert.equal(10, r.on_failure("ETIMEDOUT", 1))
        assert.equal(20, r.on_failure("ETIMEDOUT", 2))
        assert.equal(40, r.on_failure("ETIMEDOUT", 3))
        assert.equal(80, r.on_failure("ETIMEDOUT", 4))
        assert.is_nil(r.on_failure("ETIMEDOUT", 5))
        assert.is_nil(r.on_failure("ETIMEDOUT", 9))
    end)

    it("has documented defaults (5 attempts, 30 s, x2, cap 3600)", function()
        local r = policy.retry{ random = half }
        assert.equal(30, r.on_failure("EIO", 1))
        assert.equal(240, r.on_failure("EIO", 4))
        assert.is_nil(r.on_failure("EIO", 5))
        local big = policy.retry{ attempts = 20, random = half }
        assert.equal(3600, big.on_failure("EIO", 12))
    end)

    it("caps the delay at max", function()
        local r = policy.retry{ attempts = 10, base = 10, factor = 3, max = 100, jitter = 0 }
        assert.equal(90, r.on_failure("E", 3))
        assert.equal(100, r.on_failure("E", 4))
        assert.equal(100, r.on_failure("E", 9))
    end)

    it("applies jitter deterministically from the injected random", function()
        local seq, i = { 0, 0.75, 0.25 }, 0
        local function rnd() i = i + 1; return seq[i] end
        local r = policy.retry{ base = 100, factor = 1, max = 1000, jitter = 0.2, random = rnd }
        assert.near(80, r.on_failure("E", 1), 1e-9)   -- r = 0: -20 %
        assert.near(110, r.on_failure("E", 2), 1e-9)  -- r = 0.75: +10 %
        assert.near(90, r.on_failure("E", 3), 1e-9)   -- r = 0.25: -10 %
        assert.equal(3, i)
    end)

    it("never lets jitter push past max", function()
        local r = policy.retry{ base = 100, max = 100, jitter = 0.5, random = function() return 0.99 end }
        assert.equal(100, r.on_failure("E", 1))
    end)

    it("does not call random when jitter is 0", function()
        local r = policy.retry{ base = 7, jitter = 0, random = function() error("called") end }
        assert.equal(7, r.on_failure("E", 1))
    end)

    it("uses math.random by default, within the jitter band", function()
        local r = policy.retry{ base = 100, factor = 1, jitter = 0.2 }
        for _ = 1, 200 do
            local d = r.on_failure("E", 1)
            assert.is_true(d >= 80 and d <= 120, tostring(d))
        end
    end)

    it("accepts err as a table or a code string", function()
        local r = policy.retry{ codes = { "ETIMEDOUT" }, base = 5, random = half }
        assert.equal(5, r.on_failure({ code = "ETIMEDOUT", message = "no answer", module_code = 3 }, 1))
        assert.equal(5, r.on_failure("ETIMEDOUT", 1))
        assert.is_nil(r.on_failure({ code = "EIO" }, 1))
        assert.is_nil(r.on_failure("EIO", 1))
    end)

    it("retries only listed codes, given as a list or a set", function()
        local r = policy.retry{ codes = { ETIMEDOUT = true, EPORTLOST = true }, base = 5, random = half }
        assert.equal(5, r.on_failure("EPORTLOST", 1))
        assert.is_nil(r.on_failure("ECOLLISION", 1))
        assert.is_nil(r.on_failure({ message = "no code" }, 1))
    end)

    it("retries a table err without code only when codes is absent", function()
        local r = policy.retry{ base = 5, random = half }
        assert.equal(5, r.on_failure({ message = "something" }, 1))
    end)

    it("applies per-code overrides on top of the block's parameters", function()
        local r = policy.retry{
            attempts = 3, base = 10, random = half,
            codes = { "ETIMEDOUT", ECOLLISION = { base = 300, attempts = 2 }, EBUSY = { factor = 3 } },
        }
        assert.equal(300, r.on_failure("ECOLLISION", 1))
        assert.is_nil(r.on_failure("ECOLLISION", 2))
        assert.equal(20, r.on_failure("ETIMEDOUT", 2))
        assert.equal(30, r.on_failure("EBUSY", 2))
        assert.is_nil(r.on_failure("EBUSY", 3))
    end)

    it("returns false (veto) for fatal codes, even when listed in codes", function()
        local r = policy.retry{ codes = { "EBADIMAGE", "EIO" }, fatal = { "EBADIMAGE" }, random = half }
        assert.is_false(r.on_failure("EBADIMAGE", 1))
        assert.is_false(r.on_failure({ code = "EBADIMAGE" }, 1))
        assert.is_number(r.on_failure("EIO", 1))
        local r2 = policy.retry{ fatal = { ESIMPIN = true } }
        assert.is_false(r2.on_failure("ESIMPIN", 1))
    end)

    it("rejects invalid options with clear messages", function()
        local cases = {
            { { attempts = 0 }, "'attempts' must be in" },
            { { attempts = 2.5 }, "'attempts' must be an integer" },
            { { base = "10" }, "'base' must be a number" },
            { { base = -1 }, "'base' must be in" },
            { { factor = 0.5 }, "'factor' must be in" },
            { { jitter = 1.5 }, "'jitter' must be in" },
            { { random = 3 }, "'random' must be a function" },
            { { codes = "ETIMEDOUT" }, "'codes' must be a table" },
            { { codes = { E = 5 } }, "'codes' entries" },
            { { codes = { E = { tries = 3 } } }, "unknown option 'tries' for code E" },
            { { codes = { E = { attempts = 0 } } }, "'attempts' must be in" },
            { { fatal = "E" }, "'fatal' must be a table" },
            { { fatal = { 7 } }, "'fatal' entries" },
        }
        for _, c in ipairs(cases) do
            assert.has_error(function() policy.retry(c[1]) end)
            local ok, err = pcall(policy.retry, c[1])
            assert.is_false(ok)
            assert.matches(c[2], err, 1, true)
        end
        assert.has_error(function() policy.retry("x") end,
            "hwfota.policy.retry: expected an options table, got string")
    end)

    it("rejects invalid hook arguments", function()
        local r = policy.retry{}
        assert.has_error(function() r.on_failure(42, 1) end)
        assert.has_error(function() r.on_failure("E", 0) end)
        assert.has_error(function() r.on_failure("E", "1") end)
        assert.has_error(function() r.on_failure({ code = 5 }, 1) end)
    end)
end)

describe("policy.version_compare", function()
    local cmp = policy.version_compare
    local cases = {
        { "12.815.01.04.00", "12.815.01.03.00", 1 },
        { "12.815.01.03.00", "12.815.01.04.00", -1 },
        { "12.815.01.03.00", "12.815.01.03.00", 0 },
        { "12.815.1.3.0", "12.815.01.03.00", 0 },
        { "1.9", "1.10", -1 },
        { "1.2", "1.2.0", 0 },
        { "1.2", "1.2.1", -1 },
        { "2.0", "10.0", -1 },
        { " 11.608.12.03.21\t", "11.608.12.03.21", 0 },
        { '"12.815.01.03.00"', "12.815.01.03.00", 0 },
        { "999999.1", "999998.1", 1 },
        { "11.810.09.02.00", "12.815.01.03.00", -1 },
    }
    local function show(v) return '"' .. v:gsub("\r", "\\r"):gsub("\n", "\\n"):gsub("\t", "\\t") .. '"' end
    for _, c in ipairs(cases) do
        it(string.format("%s vs %s = %d (and the reverse)", show(c[1]), show(c[2]), c[3]), function()
            assert.equal(c[3], cmp(c[1], c[2]))
            assert.equal(-c[3], cmp(c[2], c[1]))
        end)
    end
    -- the one version order: what the C safety rule refuses, the policy refuses too
    -- (it once ordered "1.3a" after "1.3", which the state machine never accepts)
    for _, v in ipairs{ "1.2a", "1.3b", "2", "", "1..2", "-1.2", " 11.608.12.03.21\r\n",
                        "99999999999999999999999", "1.2.3.4.5.6.7.8.9" } do
        it(string.format("refuses %s as hwfota.version_compare does", show(v)), function()
            local r, msg, code = cmp(v, "1.2")
            local hr, hmsg, hcode = hwfota.version_compare(v, "1.2")
            assert.is_nil(hr)
            assert.is_nil(r)
            assert.equal(hmsg, msg)
            assert.equal("EPARSE", code)
            assert.equal(hcode, code)
            assert.is_nil((cmp("1.2", v)))
        end)
    end
    it("rejects non-strings", function()
        assert.has_error(function() cmp(1, "1") end)
        assert.has_error(function() cmp("1") end)
    end)
end)

describe("policy.gate", function()
    local function nv(from, version) return { from = from, version = version, size = 1000, description = "" } end

    it("accepts an upgrade", function()
        assert.equal("download", policy.gate{}.on_new_version(nv("12.815.01.03.00", "12.815.01.04.00")))
    end)

    it("rejects the running version unless allow_equal", function()
        local d, after, why = policy.gate{}.on_new_version(nv("1.2.3", "1.2.3"))
        assert.equal("reject", d)
        assert.is_nil(after)
        assert.matches("running version", why)
        assert.equal("download", policy.gate{ allow_equal = true }.on_new_version(nv("1.2.3", "1.2.03")))
    end)

    it("rejects a downgrade unless allow_downgrade", function()
        local d, _, why = policy.gate{}.on_new_version(nv("12.815.01.04.00", "12.815.01.03.00"))
        assert.equal("reject", d)
        assert.matches("downgrade", why)
        assert.equal("download",
            policy.gate{ allow_downgrade = true }.on_new_version(nv("12.815.01.04.00", "12.815.01.03.00")))
        -- allow_downgrade does not allow equal
        assert.equal("reject", policy.gate{ allow_downgrade = true }.on_new_version(nv("1.0", "1.0")))
    end)

    it("accepts only the pinned target", function()
        local g = policy.gate{ to = "12.815.01.04.00" }
        assert.equal("download", g.on_new_version(nv("12.815.01.03.00", "12.815.01.04.00")))
        assert.equal("download", g.on_new_version(nv("12.815.01.03.00", "12.815.1.4.0")))
        local d, _, why = g.on_new_version(nv("12.815.01.03.00", "12.815.01.05.00"))
        assert.equal("reject", d)
        assert.matches("pinned target", why)
    end)

    it("accepts only listed source versions: exact, glob, function", function()
        local g = policy.gate{ from = { "12.815.01.03.00", "11.608.*",
                                        function(v) return v == "9.9" end } }
        assert.equal("download", g.on_new_version(nv("12.815.01.03.00", "13.0")))
        assert.equal("download", g.on_new_version(nv("11.608.12.03.21", "13.0")))
        assert.equal("download", g.on_new_version(nv("9.9", "13.0")))
        -- exact entries are not patterns: '.' is a dot
        assert.equal("reject", g.on_new_version(nv("12x815.01.03.00", "13")))
        assert.equal("reject", g.on_new_version(nv("11x608.12", "13")))
        assert.equal("reject", g.on_new_version(nv("1.11.608.12", "13")))  -- globs are anchored
        assert.equal("reject", g.on_new_version(nv("12.815.01.03.00.1", "13")))
        local d, _, why = g.on_new_version(nv("12.815.01.02.00", "13"))
        assert.equal("reject", d)
        assert.matches("not in the allowed list", why)
    end)

    it("rejects a version the C core cannot order, with its reason", function()
        local d, after, why = policy.gate{}.on_new_version(nv("1.2", "1.2a"))
        assert.equal("reject", d)
        assert.is_nil(after)
        local _, cmsg = hwfota.version_compare("1.2a", "1.2")
        assert.truthy(why:find(cmsg, 1, true), why)
        d = policy.gate{ to = "1.3" }.on_new_version(nv("1.2", "1.3a"))
        assert.equal("reject", d)
    end)

    it("rejects when a version is missing", function()
        local g = policy.gate{}
        assert.equal("reject", g.on_new_version{ version = "2" })
        assert.equal("reject", g.on_new_version{ from = "1" })
    end)

    it("uses an injected compare", function()
        local calls = 0
        local function same(a, b) calls = calls + 1; return 0 end
        local g = policy.gate{ compare = same }
        assert.equal("reject", g.on_new_version(nv("1", "2")))   -- 'equal' per compare
        assert.is_true(calls >= 1)
        local rev = policy.gate{ compare = function(a, b) return -policy.version_compare(a, b) end }
        assert.equal("download", rev.on_new_version(nv("2.0", "1.0")))
        assert.has_error(function() policy.gate{ compare = function() return "x" end }.on_new_version(nv("1", "2")) end)
    end)

    it("defines no on_downloaded", function()
        assert.is_nil(policy.gate{}.on_downloaded)
    end)

    it("rejects invalid options", function()
        assert.has_error(function() policy.gate{ from = "1.0" } end, "hwfota.policy.gate: 'from' must be a list, got string")
        assert.has_error(function() policy.gate{ from = {} } end)
        assert.has_error(function() policy.gate{ from = { 1 } } end)
        assert.has_error(function() policy.gate{ to = 12 } end)
        assert.has_error(function() policy.gate{ allow_equal = "yes" } end)
        assert.has_error(function() policy.gate{ compare = "x" } end)
        assert.has_error(function() policy.gate{ pinned = "1" } end)
        assert.has_error(function() policy.gate{}.on_new_version("1.0") end)
    end)
end)

describe("policy.window", function()
    it("is open inside a range (start included, end excluded)", function()
        local function w(day, t) return policy.window{ ranges = { { "01:00", "05:00" } }, clock = at(day, t) } end
        assert.equal("download", w("mon", "01:00").on_new_version{})
        assert.equal("download", w("mon", "04:59:59").on_new_version{})
        assert.equal("upgrade", w("mon", "03:00").on_downloaded{})
        local d, wait, why = w("mon", "05:00").on_new_version{}
        assert.equal("defer", d)
        assert.equal(20 * HOUR, wait)
        assert.matches("outside", why)
    end)

    it("says how long until the next opening, to the second", function()
        local w = policy.window{ ranges = { { "01:00", "05:00" } }, clock = at("tue", "00:59:30") }
        local d, wait = w.on_downloaded{}
        assert.equal("defer", d)
        assert.equal(30, wait)
        assert.same({ false, 30 }, { w.is_open() })
    end)

    it("handles a range crossing midnight, on the day it starts", function()
        local function w(day, t)
            return policy.window{ ranges = { { "23:00", "02:00" } }, days = { "fri" }, clock = at(day, t) }
        end
        assert.equal("download", w("fri", "23:30").on_new_version{})
        assert.equal("download", w("sat", "00:00").on_new_version{})
        assert.equal("download", w("sat", "01:59:59").on_new_version{})
        local d, wait = w("sat", "02:00").on_new_version{}
        assert.equal("defer", d)
        assert.equal(6 * DAY + 21 * HOUR, wait) -- next Friday 23:00
        -- Friday 00:30 belongs to Thursday's range, and Thursday is not listed
        d, wait = w("fri", "00:30").on_new_version{}
        assert.equal("defer", d)
        assert.equal(22 * HOUR + 30 * 60, wait)
        d, wait = w("fri", "22:59").on_new_version{}
        assert.equal(60, wait)
    end)

    it("crosses midnight every day when days is absent", function()
        local w = policy.window{ ranges = { { "22:00", "04:00" } }, clock = at("wed", "03:00") }
        assert.equal("download", w.on_new_version{})
        local d, wait = policy.window{ ranges = { { "22:00", "04:00" } }, clock = at("wed", "04:00") }.on_new_version{}
        assert.equal("defer", d)
        assert.equal(18 * HOUR, wait)
    end)

    it("defers on days not listed, until the next listed day", function()
        local function w(day, t)
            return policy.window{ ranges = { { "01:00", "05:00" } }, days = { "mon", "Thursday" }, clock = at(day, t) }
        end
        assert.equal("download", w("mon", "02:00").on_new_version{})
        assert.equal("download", w("thu", "02:00").on_new_version{})
        local d, wait = w("tue", "02:00").on_new_version{}
        assert.equal("defer", d)
        assert.equal(DAY + 23 * HOUR, wait) -- Thursday 01:00
        d, wait = w("fri", "02:00").on_new_version{}
        assert.equal(2 * DAY + 23 * HOUR, wait) -- wraps the week: Monday 01:00
    end)

    it("wraps the week from Saturday to Sunday", function()
        local w = policy.window{ ranges = { { "01:00", "05:00" } }, days = { "sun" }, clock = at("sat", "23:00") }
        local d, wait = w.on_new_version{}
        assert.equal("defer", d)
        assert.equal(2 * HOUR, wait)
    end)

    it("takes the nearest of several ranges", function()
        local w = policy.window{ ranges = { { "01:00", "02:00" }, { "13:00", "14:00" } }, clock = at("mon", "12:00") }
        local _, wait = w.on_new_version{}
        assert.equal(HOUR, wait)
        assert.equal("download", policy.window{ ranges = { { "01:00", "02:00" }, { "13:00", "14:00" } },
                                                clock = at("mon", "13:15") }.on_new_version{})
    end)

    it("accepts 24:00 as an end and reads the real clock by default", function()
        local w = policy.window{ ranges = { { "00:00", "24:00" } } }
        assert.equal("download", w.on_new_version{})
        assert.equal("upgrade", w.on_downloaded{})
    end)

    it("asks the clock on every decision", function()
        local now = at("mon", "00:30")()
        local w = policy.window{ ranges = { { "01:00", "05:00" } }, clock = function() return now end }
        assert.equal("defer", (w.on_new_version{}))
        now = at("mon", "01:30")()
        assert.equal("download", (w.on_new_version{}))
    end)

    it("rejects invalid options and clocks", function()
        assert.has_error(function() policy.window{} end)
        assert.has_error(function() policy.window{ ranges = {} } end)
        assert.has_error(function() policy.window{ ranges = { { "1:00" } } } end)
        assert.has_error(function() policy.window{ ranges = { { "01:00", "25:00" } } } end)
        assert.has_error(function() policy.window{ ranges = { { "24:00", "01:00" } } } end)
        assert.has_error(function() policy.window{ ranges = { { "01:60", "02:00" } } } end)
        assert.has_error(function() policy.window{ ranges = { { "03:00", "03:00" } } } end,
            "hwfota.policy.window: ranges[1] is empty (start equals end)")
        assert.has_error(function() policy.window{ ranges = { { "01:00", "02:00" } }, days = { "funday" } } end)
        assert.has_error(function() policy.window{ ranges = { { "01:00", "02:00" } }, days = { "mond" } } end)
        assert.has_error(function() policy.window{ ranges = { { "01:00", "02:00" } }, days = {} } end)
        assert.has_error(function() policy.window{ ranges = { { "01:00", "02:00" } }, clock = os.time() } end)
        local bad = policy.window{ ranges = { { "01:00", "02:00" } }, clock = function() return 5 end }
        assert.has_error(function() bad.on_new_version{} end)
    end)
end)

describe("policy.cohort", function()
    it("uses FNV-1a 32-bit (reference vectors)", function()
        assert.equal(0x811c9dc5, policy.fnv1a32(""))
        assert.equal(0xe40c292c, policy.fnv1a32("a"))
        assert.equal(0xbf9cf968, policy.fnv1a32("foobar"))
        -- computed independently (Python) for an IMEI
        assert.equal(1870584216, policy.fnv1a32("867145031234005"))
    end)

    it("places a device at a stable position: fnv1a32(salt .. key) * 100 / 2^32", function()
        assert.near(1870584216 * 100 / 2 ^ 32, policy.cohort_position("867145031234005"), 1e-12)
        -- expected values computed independently (Python), not with policy.fnv1a32:
        -- fnv1a32("s1867145031234005") = 313280676, salt first, then the key
        assert.near(313280676 * 100 / 2 ^ 32, policy.cohort_position("867145031234005", "s1"), 1e-12)
        assert.near(7.294134143739939, policy.cohort_position("867145031234005", "s1"), 1e-9)
        -- the salt moves the device (the same key, another place)
        assert.near(90.83315373864025, policy.cohort_position("867145031234005", "2026-11"), 1e-9)
    end)

    it("takes about `percent` of a fleet of 10,000 IMEIs", function()
        local imeis = fleet(10000)
        for _, case in ipairs{ { 10, "", 900, 1100 }, { 10, "2026-11", 900, 1100 },
                               { 1, "", 60, 140 }, { 50, "x", 4800, 5200 } } do
            local c = policy.cohort{ percent = case[1], salt = case[2] }
            local n = 0
            for _, e in ipairs(imeis) do
                if c.on_new_version{ imei = e } == "download" then n = n + 1 end
            end
            assert.is_true(n >= case[3] and n <= case[4],
                string.format("%d%% salt %q: %d of 10000", case[1], case[2], n))
        end
    end)

    it("only adds devices when the percentage grows", function()
        local c1, c10 = policy.cohort{ percent = 1 }, policy.cohort{ percent = 10 }
        local n1 = 0
        for _, e in ipairs(fleet(5000)) do
            if c1.contains(e) then
                n1 = n1 + 1
                assert.is_true(c10.contains(e), e)
            end
        end
        assert.is_true(n1 > 0)
    end)

    it("draws a different set for a different salt", function()
        local a, b = policy.cohort{ percent = 10, salt = "A" }, policy.cohort{ percent = 10, salt = "B" }
        local both, ina = 0, 0
        for _, e in ipairs(fleet(5000)) do
            if a.contains(e) then
                ina = ina + 1
                if b.contains(e) then both = both + 1 end
            end
        end
        assert.is_true(ina > 0 and both < ina / 2, both .. " of " .. ina)
    end)

    it("defers outside by default, rejects when asked to", function()
        local e = "867145031234005"      -- position ~43.55
        assert.is_true(policy.cohort_position(e) > 43 and policy.cohort_position(e) < 44)
        local d, after, why = policy.cohort{ percent = 43 }.on_new_version{ imei = e }
        assert.equal("defer", d)
        assert.is_nil(after)
        assert.matches("outside the 43 %% cohort", why)
        assert.equal("reject", (policy.cohort{ percent = 43, outside = "reject" }.on_new_version{ imei = e }))
        assert.equal("download", policy.cohort{ percent = 44 }.on_new_version{ imei = e })
    end)

    it("takes everyone at 100 and nobody at 0", function()
        local all, none = policy.cohort{ percent = 100 }, policy.cohort{ percent = 0 }
        for _, e in ipairs(fleet(500)) do
            assert.equal("download", all.on_new_version{ imei = e })
            assert.equal("defer", (none.on_new_version{ imei = e }))
        end
    end)

    it("treats a missing key as outside; accepts integer IMEIs and a custom key", function()
        local d, _, why = policy.cohort{ percent = 100 }.on_new_version{}
        assert.equal("defer", d)
        assert.matches("no key", why)
        assert.equal("download", policy.cohort{ percent = 44 }.on_new_version{ imei = 867145031234005 })
        local c = policy.cohort{ percent = 44, key = function(info) return info.serial end }
        assert.equal("download", c.on_new_version{ serial = "867145031234005", imei = "x" })
        assert.equal("defer", (policy.cohort{ percent = 43, key = function(info) return info.serial end }
                                .on_new_version{ serial = "867145031234005" }))
    end)

    it("rejects invalid options", function()
        assert.has_error(function() policy.cohort{} end, "hwfota.policy.cohort: 'percent' is required")
        assert.has_error(function() policy.cohort{ percent = 101 } end)
        assert.has_error(function() policy.cohort{ percent = -1 } end)
        assert.has_error(function() policy.cohort{ percent = "10" } end)
        assert.has_error(function() policy.cohort{ percent = 10, salt = 3 } end)
        assert.has_error(function() policy.cohort{ percent = 10, key = "imei" } end)
        assert.has_error(function() policy.cohort{ percent = 10, outside = "download" } end)
        assert.has_error(function() policy.cohort{ percent = 10 }.on_new_version("867145031234005") end)
        assert.has_error(function() policy.fnv1a32(5) end)
        assert.has_error(function() policy.cohort_position("1", 2) end)
    end)
end)

describe("policy.wan_guard", function()
    local function recorder()
        local log = {}
        return log, function(s) return function() log[#log + 1] = s end end
    end

    it("brings the WAN down before and up after", function()
        local log, rec = recorder()
        local g = policy.wan_guard{ down = rec("down"), up = rec("up") }
        local ctx = {}
        assert.is_true(g.before_detect(ctx))
        assert.same({ "down" }, log)
        assert.equal(1, g.active())
        assert.is_true(g.after(ctx))
        assert.same({ "down", "up" }, log)
        assert.equal(0, g.active())
        assert.is_true(g.after(ctx)) -- second after: no-op
        assert.same({ "down", "up" }, log)
    end)

    it("restores the WAN when the flow raises between before and after", function()
        local log, rec = recorder()
        local g = policy.wan_guard{ down = rec("down"), up = rec("up") }
        -- what hwfota.run is required to do: after() whatever happens
        local function run(flow)
            local ctx = {}
            assert(g.before_detect(ctx))
            local ok, err = pcall(flow)
            g.after(ctx)
            return ok, err
        end
        local ok = run(function() error("EPORTLOST") end)
        assert.is_false(ok)
        assert.same({ "down", "up" }, log)
    end)

    it("brings the WAN back at once when down fails, and reports it", function()
        local log, rec = recorder()
        local g = policy.wan_guard{ down = function() log[#log + 1] = "down"; error("ifdown: no such interface") end,
                                    up = rec("up") }
        local ctx = {}
        local ok, msg = g.before_detect(ctx)
        assert.is_nil(ok)
        assert.matches("ifdown: no such interface", msg)
        assert.same({ "down", "up" }, log)
        assert.equal(0, g.active())
        assert.is_true(g.after(ctx)) -- not entered: nothing to do
        assert.same({ "down", "up" }, log)
    end)

    it("treats false and nil, msg from a function as failure, plain nil as success", function()
        local g1 = policy.wan_guard{ down = function() return false end, up = function() end }
        assert.is_nil((g1.before_detect{}))
        local g2 = policy.wan_guard{ down = function() return nil, "busy" end, up = function() end }
        local ok, msg = g2.before_detect{}
        assert.is_nil(ok)
        assert.matches("busy", msg)
        local g3 = policy.wan_guard{ down = function() end, up = function() end }
        assert.is_true(g3.before_detect{})
    end)

    it("reports an up failure from after without raising", function()
        local g = policy.wan_guard{ down = function() end, up = function() error("ifup failed") end }
        local ctx = {}
        assert.is_true(g.before_detect(ctx))
        local ok, msg = g.after(ctx)
        assert.is_nil(ok)
        assert.matches("ifup failed", msg)
        assert.equal(0, g.active())
    end)

    it("runs command strings through execute (OpenWrt ifdown/ifup)", function()
        local cmds = {}
        local g = policy.wan_guard{ down = "ifdown wan", up = "ifup wan",
                                    execute = function(c) cmds[#cmds + 1] = c; return true, "exit", 0 end }
        local ctx = {}
        assert.is_true(g.before_detect(ctx))
        assert.is_true(g.after(ctx))
        assert.same({ "ifdown wan", "ifup wan" }, cmds)
    end)

    it("fails on a non-zero exit and still brings the WAN up (ubus)", function()
        local cmds = {}
        local g = policy.wan_guard{
            down = "ubus call network.interface.wan down", up = "ubus call network.interface.wan up",
            execute = function(c)
                cmds[#cmds + 1] = c
                if c:find("down") then return nil, "exit", 4 end
                return true, "exit", 0
            end }
        local ok, msg = g.before_detect{}
        assert.is_nil(ok)
        assert.matches("exit 4", msg)
        assert.same({ "ubus call network.interface.wan down", "ubus call network.interface.wan up" }, cmds)
    end)

    it("uses os.execute by default", function()
        local f = os.tmpname()
        local g = policy.wan_guard{ down = "echo down >> " .. f, up = "echo up >> " .. f }
        local ctx = {}
        assert.is_true(g.before_detect(ctx))
        assert.is_true(g.after(ctx))
        local h = assert(io.open(f))
        local text = h:read("a")
        h:close()
        os.remove(f)
        assert.equal("down\nup\n", text)
        local bad = policy.wan_guard{ down = "exit 3", up = "true" }
        local ok, msg = bad.before_detect{}
        assert.is_nil(ok)
        assert.matches("exit 3", msg)
    end)

    it("counts sessions: down for the first, up after the last", function()
        local log, rec = recorder()
        local g = policy.wan_guard{ down = rec("down"), up = rec("up") }
        local a, b = {}, {}
        assert.is_true(g.before_detect(a))
        assert.is_true(g.before_detect(b))
        assert.is_true(g.before_detect(a)) -- same ctx again: not counted twice
        assert.same({ "down" }, log)
        assert.equal(2, g.active())
        g.after(a)
        assert.same({ "down" }, log)
        g.after(b)
        assert.same({ "down", "up" }, log)
    end)

    it("rejects invalid options and ctx", function()
        assert.has_error(function() policy.wan_guard{ up = "ifup wan" } end,
            "hwfota.policy.wan_guard: 'down' must be a command string or a function, got nil")
        assert.has_error(function() policy.wan_guard{ down = "ifdown wan", up = "" } end)
        assert.has_error(function() policy.wan_guard{ down = "a", up = "b", execute = "sh" } end)
        assert.has_error(function() policy.wan_guard("ifdown wan") end)
        assert.has_error(function() policy.wan_guard{ down = "a", up = "b" }.before_detect() end)
    end)
end)

describe("policy.all", function()
    local function fixed(nv, dl, after, reason)
        return { on_new_version = nv and function() return nv, after, reason end,
                 on_downloaded = dl and function() return dl, after, reason end }
    end

    it("proceeds when every member agrees or abstains; empty all proceeds", function()
        assert.equal("download", policy.all{ fixed("download"), {}, fixed(nil) }.on_new_version{})
        assert.equal("upgrade", policy.all{ fixed(nil, "upgrade") }.on_downloaded{})
        assert.equal("download", policy.all{}.on_new_version{})
        assert.equal("upgrade", policy.all{}.on_downloaded{})
        assert.is_nil(policy.all{}.on_failure("E", 1))
    end)

    it("ranks reject > defer > download", function()
        assert.equal("defer", (policy.all{ fixed("download"), fixed("defer") }.on_new_version{}))
        assert.equal("defer", (policy.all{ fixed("defer"), fixed("download") }.on_new_version{}))
        assert.equal("reject", (policy.all{ fixed("defer"), fixed("reject") }.on_new_version{}))
        assert.equal("reject", (policy.all{ fixed("reject"), fixed("defer") }.on_new_version{}))
        assert.equal("defer", (policy.all{ fixed(nil, "upgrade"), fixed(nil, "defer") }.on_downloaded{}))
    end)

    it("stops at the first reject and returns its values", function()
        local asked = false
        local p = policy.all{ fixed("defer", nil, 60, "later"), fixed("reject", nil, nil, "no"),
                              { on_new_version = function() asked = true; return "reject", nil, "other" end } }
        local d, after, why = p.on_new_version{}
        assert.equal("reject", d)
        assert.is_nil(after)
        assert.equal("no", why)
        assert.is_false(asked)
    end)

    it("defers with the largest retry_after and every deferring reason", function()
        local p = policy.all{ fixed("defer", nil, 60, "a"), fixed("download"), fixed("defer", nil, 3600, "b"),
                              fixed("defer", nil, nil, "c") }
        local d, after, why = p.on_new_version{}
        assert.equal("defer", d)
        assert.equal(3600, after)
        assert.equal("a; b; c", why)
        local d2, after2 = policy.all{ fixed("defer") }.on_new_version{}
        assert.equal("defer", d2)
        assert.is_nil(after2)
    end)

    it("passes info to every member", function()
        local seen = {}
        local m = function(i) return { on_new_version = function(info) seen[i] = info; return "download" end } end
        local info = { version = "2" }
        policy.all{ m(1), m(2) }.on_new_version(info)
        assert.equal(info, seen[1])
        assert.equal(info, seen[2])
    end)

    it("raises on an invalid member decision, naming the member", function()
        assert.has_error(function() policy.all{ fixed("download"), fixed("upgrade") }.on_new_version{} end)
        local ok, err = pcall(policy.all{ { name = "mine", on_downloaded = function() return "download" end } }.on_downloaded, {})
        assert.is_false(ok)
        assert.matches("member 1 %(mine%): on_downloaded returned download", err)
        assert.has_error(function() policy.all{ fixed("defer", nil, -5) }.on_new_version{} end)
    end)

    -- issue 11.4: after the download, reject and defer discard the image; an explicit
    -- keep_until_reboot keeps it, unless another member defers or rejects
    it("combines on_downloaded: reject, then defer, then keep_until_reboot, then upgrade", function()
        local function d(v) return { on_downloaded = function() return v end } end
        assert.equal("reject", (policy.all{ d("keep_until_reboot"), d("reject") }.on_downloaded{}))
        assert.equal("defer", (policy.all{ d("keep_until_reboot"), d("defer") }.on_downloaded{}))
        assert.equal("keep_until_reboot", (policy.all{ d("upgrade"), d("keep_until_reboot") }.on_downloaded{}))
        assert.equal("upgrade", (policy.all{ d("upgrade"), d(nil) }.on_downloaded{}))
        assert.has_error(function()
            policy.all{ { on_new_version = function() return "keep_until_reboot" end } }.on_new_version{}
        end)
    end)

    it("combines on_failure: false vetoes, else the smallest delay, else nil", function()
        local function f(v) return { on_failure = function() return v end } end
        assert.equal(5, policy.all{ f(30), f(nil), f(5), {} }.on_failure("E", 1))
        assert.is_false(policy.all{ f(5), f(false), f(1) }.on_failure("E", 1))
        assert.is_nil(policy.all{ f(nil), f(nil) }.on_failure("E", 1))
        assert.has_error(function() policy.all{ f("soon") }.on_failure("E", 1) end)
    end)

    it("passes err and attempt to every on_failure", function()
        local got = {}
        local p = policy.all{ { on_failure = function(e, n) got[#got + 1] = { e, n } end } }
        local err = { code = "EIO" }
        p.on_failure(err, 3)
        assert.same({ { err, 3 } }, got)
    end)

    it("fans out on_progress and on_event in order", function()
        local log = {}
        local function m(tag)
            return { on_progress = function(p) log[#log + 1] = tag .. "p" .. p.done end,
                     on_event = function(e) log[#log + 1] = tag .. "e" .. e.type end }
        end
        local p = policy.all{ m("a"), {}, m("b") }
        p.on_progress{ done = 5, total = 10 }
        p.on_event{ type = "state" }
        assert.same({ "ap5", "bp5", "ae" .. "state", "be" .. "state" }, log)
    end)

    it("nests guards in order and unwinds them in reverse", function()
        local log = {}
        local function guard(tag)
            return { before_detect = function() log[#log + 1] = "in " .. tag; return true end,
                     after = function() log[#log + 1] = "out " .. tag; return true end }
        end
        local p = policy.all{ guard("a"), { after = function() log[#log + 1] = "out x"; return true end },
                              fixed("download"), guard("b") }
        local ctx = {}
        assert.is_true(p.before_detect(ctx))
        assert.is_true(p.after(ctx))
        assert.same({ "in a", "in b", "out b", "out x", "out a" }, log)
        assert.is_true(p.after(ctx)) -- once only
        assert.equal(5, #log)
    end)

    it("unwinds the entered guards when a later guard fails or raises", function()
        for _, failing in ipairs{ function() return nil, "no route" end, function() error("boom") end } do
            local log = {}
            local function guard(tag)
                return { before_detect = function() log[#log + 1] = "in " .. tag; return true end,
                         after = function() log[#log + 1] = "out " .. tag; return true end }
            end
            local never = { before_detect = function() log[#log + 1] = "in never"; return true end }
            local p = policy.all{ guard("a"), guard("b"), { before_detect = failing, after = function()
                log[#log + 1] = "out bad" end }, never }
            local ctx = {}
            local ok, msg = p.before_detect(ctx)
            assert.is_nil(ok)
            assert.matches("member 3: before_detect failed", msg)
            assert.same({ "in a", "in b", "out b", "out a" }, log)
            assert.is_true(p.after(ctx)) -- nothing entered
            assert.equal(4, #log)
        end
    end)

    it("runs every after even when one fails or raises, and reports it", function()
        local log = {}
        local p = policy.all{
            { before_detect = function() return true end, after = function() log[#log + 1] = "a"; return true end },
            { before_detect = function() return true end, after = function() error("kaput") end },
            { before_detect = function() return true end, after = function() log[#log + 1] = "c"; return nil, "ifup failed" end },
        }
        local ctx = {}
        assert.is_true(p.before_detect(ctx))
        local ok, msg = p.after(ctx)
        assert.is_nil(ok)
        assert.same({ "c", "a" }, log)
        assert.matches("ifup failed", msg)
        assert.matches("kaput", msg)
    end)

    it("restores a wan_guard when another member's guard fails", function()
        local log = {}
        local g = policy.wan_guard{ down = function() log[#log + 1] = "down" end,
                                    up = function() log[#log + 1] = "up" end }
        local p = policy.all{ g, { before_detect = function() return nil, "modem busy" end } }
        local ok, msg = p.before_detect{}
        assert.is_nil(ok)
        assert.matches("modem busy", msg)
        assert.same({ "down", "up" }, log)
        assert.equal(0, g.active())
    end)

    it("nests: all inside all", function()
        local log = {}
        local function guard(tag)
            return { before_detect = function() log[#log + 1] = "in " .. tag; return true end,
                     after = function() log[#log + 1] = "out " .. tag; return true end }
        end
        local inner = policy.all{ guard("b"), guard("c"), fixed("defer", nil, 10) }
        local p = policy.all{ guard("a"), inner, fixed("defer", nil, 20) }
        local ctx = {}
        p.before_detect(ctx)
        p.after(ctx)
        assert.same({ "in a", "in b", "in c", "out c", "out b", "out a" }, log)
        local d, after = p.on_new_version{}
        assert.equal("defer", d)
        assert.equal(20, after)
    end)

    it("rejects invalid members", function()
        assert.has_error(function() policy.all(policy.retry{}) end)
        assert.has_error(function() policy.all("x") end, "hwfota.policy.all: expected a list of policies, got string")
        assert.has_error(function() policy.all{ policy.retry{}, 5 } end,
            "hwfota.policy.all: member 2 is a number, not a policy table")
        assert.has_error(function() policy.all{ { on_failure = 5 } } end)
        assert.has_error(function() policy.all{}.before_detect() end)
    end)

    it("composes the kit as a nightly rollout would", function()
        local clock = at("tue", "02:00")
        local cmds = {}
        local p = policy.all{
            policy.window{ ranges = { { "01:00", "05:00" } }, days = { "tue" }, clock = function() return clock() end },
            policy.cohort{ percent = 44 },
            policy.gate{ to = "12.815.01.04.00", from = { "12.815.01.03.*" } },
            policy.wan_guard{ down = "ifdown wan", up = "ifup wan",
                              execute = function(c) cmds[#cmds + 1] = c; return true, "exit", 0 end },
            policy.retry{ attempts = 3, base = 60, jitter = 0, fatal = { "EBADIMAGE" } },
        }
        local info = { from = "12.815.01.03.00", version = "12.815.01.04.00", imei = "867145031234005" }
        local ctx = {}
        assert.is_true(p.before_detect(ctx))
        assert.equal("download", p.on_new_version(info))
        assert.equal(60, p.on_failure({ code = "ETIMEDOUT" }, 1))
        assert.is_false(p.on_failure("EBADIMAGE", 1))
        assert.is_nil(p.on_failure("ETIMEDOUT", 3))
        assert.is_true(p.after(ctx))
        assert.same({ "ifdown wan", "ifup wan" }, cmds)
        -- outside the window and the wrong version: reject wins over defer
        clock = at("tue", "06:00")
        local d, after = p.on_new_version(info)
        assert.equal("defer", d)
        assert.equal(7 * DAY - 5 * HOUR, after)
        info.version = "12.815.01.05.00"
        assert.equal("reject", (p.on_new_version(info)))
        -- a device outside the cohort is deferred
        clock = at("tue", "02:00")
        assert.equal("defer", (p.on_new_version{ from = "12.815.01.03.00", version = "12.815.01.04.00",
                                                 imei = "867145031234047" })) -- position ~88
    end)
end)
