-- API documentation: every public function of lua/hwfota/*.lua, lua/hwfota/trigger/*.lua and lua/hwfota/fleet/*.lua has an LDoc comment
-- (see spec/support/doccheck.lua for what counts), and the reference builds with LDoc
-- without a warning (what `make docs` runs).
local doccheck = require "support.doccheck"

local top = os.getenv("HWFOTA_TOP") or "."

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

local function lua_files()
    local p = assert(io.popen("ls " .. sh_quote(top .. "/lua/hwfota") .. "/*.lua " ..
                              sh_quote(top .. "/lua/hwfota/trigger") .. "/*.lua " ..
                              sh_quote(top .. "/lua/hwfota/fleet") .. "/*.lua 2>/dev/null"))
    local t = {}
    for l in p:lines() do t[#t + 1] = l end
    p:close()
    table.sort(t)
    return t
end

local files = lua_files()

describe("API docs", function()
    it("finds the Lua modules (lua/hwfota/*.lua)", function()
        assert.is_true(#files > 0, "no lua/hwfota/*.lua under " .. top)
    end)

    for _, path in ipairs(files) do
        local short = path:match("(lua/hwfota/.+)$") or path
        local results, moddoc = doccheck.check(read(path))
        describe(short, function()
            it("starts with a `---` module doc comment", function()
                assert.is_true(moddoc.ok, short .. ": " .. tostring(moddoc.why))
            end)
            for _, r in ipairs(results) do
                it(r.name .. " (line " .. r.line .. ") is documented", function()
                    assert.is_true(r.ok, ("%s:%d: %s: %s"):format(short, r.line, r.name, r.why))
                end)
            end
        end)
    end

    it("builds with ldoc --fatalwarnings (make docs)", function()
        local out = os.tmpname()
        os.remove(out)
        local log = out .. ".log"
        local cmd = ("ldoc -c %s --fatalwarnings --testing -d %s %s >%s 2>&1"):format(
            sh_quote(top .. "/spec/ldoc.ld"), sh_quote(out),
            sh_quote(top .. "/lua/hwfota"), sh_quote(log))
        local ok = os.execute(cmd)
        local text = read(log)
        local index = io.open(out .. "/index.html", "rb")
        local html = index and index:read("a") or ""
        if index then index:close() end
        os.execute("rm -rf " .. sh_quote(out) .. " " .. sh_quote(log))
        assert.is_true(ok == true, "ldoc failed:\n" .. text)
        -- Debian's lua-ldoc does not bundle markdown.lua: without lua-markdown the
        -- reference silently comes out as plain text.
        assert.is_falsy(text:find("not found, falling back to text", 1, true),
                        "ldoc found no markdown formatter (Debian: lua-markdown)")
        for _, path in ipairs(files) do
            local name = path:match("lua/hwfota/(.+)%.lua$"):gsub("/", ".")
            local mod = name == "init" and "hwfota" or "hwfota." .. name
            assert.is_truthy(html:find(mod, 1, true), "module " .. mod .. " missing from index.html")
        end
    end)
end)

describe("doccheck itself", function()
    local function names(src)
        local r, m = doccheck.check(src)
        local t = {}
        for _, x in ipairs(r) do t[#t + 1] = x.name .. "=" .. tostring(x.ok) end
        return table.concat(t, " "), m.ok
    end

    it("flags undocumented public functions in every form and accepts documented ones", function()
        local src = table.concat({
            "--- A module.", "-- @module x", "local M = {}",
            "local function helper() end",
            "--- Documented.", "function M.a() end",
            "function M.b() end",
            "-- just a comment", "function M.c() end",
            "M.d = function() end",
            "--- Documented too.", "M.e = function() end",
            "M.f = helper",
            "M.g = 42",
            "function M._private() end",
            "---- rule", "function M.h() end",
            "--- Method.", "-- @tparam string s", "function M.T:m(s) end",
            "",
            "--- A C method.", "-- @function Port:read",
            "",
            "-- @function Port:orphan",
            "",
            "--- Two in one.", "-- @function Port:two", "-- @function Port:three",
            "",
            "--- Some text", "",
            "--- @function Port:tagsonly",
            "return M",
        }, "\n")
        local got, modok = names(src)
        assert.equal("M.a=true M.b=false M.c=false M.d=false M.e=true M.f=false " ..
            "M.h=false M.T:m=true @function Port:read=true @function Port:orphan=false " ..
            "@function Port:two=false @function Port:three=false @function Port:tagsonly=false", got)
        assert.is_true(modok)
    end)

    it("finds the module table behind setmetatable and checks the module comment", function()
        local got, modok = names("local P = {}\nfunction P.x() end\nreturn setmetatable(P, {})\n")
        assert.equal("P.x=false", got)
        assert.is_false(modok)
    end)
end)

-- The README's options table of hwfota.run / hwfota.session lists every option the code
-- accepts: the session's own and the state machine's (core.fota_options, the list
-- fota_new checks keys against), as session.option_names() reports them.
describe("README options table", function()
    -- option names in the first cell of each row of the table under the heading
    local function table_options(text)
        local start = text:find("\n### Options of `hwfota.run` and `hwfota.session`\n", 1, true)
        if not start then return nil end
        local stop = text:find("\n#", start + 1) or #text
        local names = {}
        for line in text:sub(start, stop):gmatch("[^\n]+") do
            local first = line:match("^|([^|]*)|")
            if first then
                for name in first:gmatch("`([%w_]+)`") do names[name] = true end
            end
        end
        return names
    end

    it("parses the table (it is there and names options)", function()
        local names = table_options(read(top .. "/README.md"))
        assert.is_table(names, "README.md has no section \"### Options of `hwfota.run` and `hwfota.session`\"")
        local n = 0
        for _ in pairs(names) do n = n + 1 end
        assert.is_true(n >= 10, "too few options parsed: " .. n)
        -- the parser itself: a row's names, not the header's
        local t = table_options("x\n### Options of `hwfota.run` and `hwfota.session`\n\n" ..
                                "| option | default |\n|---|---|\n| `a`, `b_c` | 1 |\n\n## Next\n| `z` | 2 |\n")
        assert.same({a = true, b_c = true}, t)
    end)

    it("lists every option hwfota.run and hwfota.session accept, and no other", function()
        local names = table_options(read(top .. "/README.md")) or {}
        local session = require "hwfota.options"
        local accepted, missing, extra = {}, {}, {}
        for _, k in ipairs(session.option_names()) do
            accepted[k] = true
            if not names[k] then missing[#missing + 1] = k end
        end
        for k in pairs(names) do if not accepted[k] then extra[#extra + 1] = k end end
        table.sort(extra)
        assert.same({}, missing, "options the code accepts but README.md's options table does not list: "
                     .. table.concat(missing, ", "))
        assert.same({}, extra, "options README.md's options table lists but the code does not accept: "
                    .. table.concat(extra, ", "))
    end)

    it("option_names() is what hwfota.session really accepts (each name passes, a typo raises)", function()
        local hwfota = require "hwfota"
        local session = require "hwfota.options"
        local accepted = {}
        for _, k in ipairs(session.option_names()) do accepted[k] = true end
        -- hwfota.session knows each name: a wrong value may be refused, but never as an
        -- unknown option; an unknown name is refused as one
        for k in pairs(accepted) do
            local ok, err = pcall(hwfota.session, "/nonexistent/tty", {[k] = true})
            assert.is_nil(tostring(err):find("unknown", 1, true), k .. ": " .. tostring(err))
            assert.is_true(ok or err ~= nil)
        end
        local ok, err = pcall(hwfota.session, "/nonexistent/tty", {no_such_option = 1})
        assert.is_false(ok)
        assert.matches("no_such_option", tostring(err))
        assert.is_nil(accepted.no_such_option)
    end)
end)
