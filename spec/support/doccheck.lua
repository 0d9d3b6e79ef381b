--- Static check that every public function of a Lua module has an LDoc comment.
--
-- Used by spec/docs_spec.lua over lua/hwfota/*.lua. "Public" means:
--
--  * a function defined into the table the file returns (`return M`):
--    `function M.x`, `function M.T:x`, `M.x = function`, and `M.x = f` where `f` is a
--    local function of the file; names whose last part starts with `_` are private;
--  * a function documented with `@function` (e.g. a method implemented in C).
--
-- A doc comment is the block of comment lines immediately above the definition (no
-- blank line between) that starts with `---` (not `----...`, which LDoc ignores) or
-- is a `--[[-- ... ]]` block, and says something besides tags. For `@function` the
-- block holding the tag must start that way, or LDoc never sees it.
-- @module support.doccheck

local M = {}

local function is_comment(l) return l:match("^%s*%-%-") ~= nil end

-- Index of the first line of the comment block that ends at line i (i is a comment).
local function block_top(lines, i)
    while i > 1 and is_comment(lines[i - 1]) do i = i - 1 end
    return i
end

local function block_ok(lines, top, bottom)
    local first = lines[top]
    local opener = first:match("^%s*%-%-%-[^%-]") or first:match("^%s*%-%-%-$")
        or first:match("^%s*%-%-%[%[%-%-")
    if not opener then return false, "the comment block does not start with `---`" end
    for i = top, bottom do
        local text = lines[i]:gsub("^%s*%-%-+%[?%[?%-*", "")
        if text:match("%S") and not text:match("^%s*@") then return true end
    end
    return false, "the doc comment has tags but no description"
end

-- The doc comment immediately above line i: true, or false and why.
local function doc_above(lines, i)
    local j = i - 1
    if j < 1 then return false, "no comment above" end
    local l = lines[j]
    if l:match("%]%]%s*$") and not is_comment(l) then      -- end of a --[[-- block
        while j > 1 and not lines[j]:match("^%s*%-%-%[%[") do j = j - 1 end
        return block_ok(lines, j, i - 1)
    end
    if not is_comment(l) then return false, "no comment immediately above" end
    return block_ok(lines, block_top(lines, j), j)
end

--- Split text into lines (without their ends).
-- @tparam string text
-- @treturn table array of lines
function M.lines(text)
    local t = {}
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = (l:gsub("\r$", "")) end
    return t
end

--- The name of the table a module returns (`return M`, `return setmetatable(M, ...)`).
-- @tparam table lines
-- @treturn string|nil
function M.module_table(lines)
    for i = #lines, 1, -1 do
        local l = lines[i]
        local n = l:match("^return%s+([%a_][%w_]*)%s*;?%s*$")
            or l:match("^return%s+setmetatable%s*%(%s*([%a_][%w_]*)%s*,")
        if n then return n end
        if l:match("%S") and not is_comment(l) then return nil end
    end
    return nil
end

--- Every public function of a module's source and whether it is documented.
-- @tparam string text the source
-- @treturn table array of `{name =, line =, ok =, why =}`
-- @treturn table|nil the module doc comment check: `{ok =, why =}`
function M.check(text)
    local lines = M.lines(text)
    local out = {}
    local mod = M.module_table(lines)
    local locals = {}
    for _, l in ipairs(lines) do
        local n = l:match("^%s*local%s+function%s+([%a_][%w_]*)")
            or l:match("^%s*local%s+([%a_][%w_]*)%s*=%s*function%f[%W]")
        if n then locals[n] = true end
    end
    local function add(name, i)
        if name:match("[%.:]_[%w_]*$") or name:match("^_") then return end
        local ok, why = doc_above(lines, i)
        out[#out + 1] = { name = name, line = i, ok = ok, why = why }
    end
    for i, l in ipairs(lines) do
        if mod then
            local q = mod:gsub("%W", "%%%0")
            local n = l:match("^%s*function%s+" .. q .. "([%.:][%w_%.:]+)%s*%(")
            if n then add(mod .. n, i) end
            n = l:match("^%s*" .. q .. "(%.[%w_%.]+)%s*=%s*function%f[%W]")
            if n then add(mod .. n, i) end
            local rhs
            n, rhs = l:match("^%s*" .. q .. "(%.[%w_]+)%s*=%s*([%a_][%w_]*)%s*;?%s*$")
            if n and locals[rhs] then add(mod .. n, i) end
        end
        local f = l:match("^%s*%-%-+%s*@function%s+(%S+)")
        if f then
            local top = block_top(lines, i)
            local bottom = i
            while lines[bottom + 1] and is_comment(lines[bottom + 1]) do bottom = bottom + 1 end
            local ok, why = block_ok(lines, top, bottom)
            local tags = 0
            for k = top, bottom do
                if lines[k]:match("^%s*%-%-+%s*@function%s") then tags = tags + 1 end
            end
            if ok and tags > 1 then
                ok, why = false, "two `@function` tags in one comment block (separate them)"
            end
            out[#out + 1] = { name = "@function " .. f, line = i, ok = ok, why = why }
        end
    end
    -- The module's own doc: the first comment block (after a #! line).
    local first = 1
    if lines[1] and lines[1]:match("^#!") then first = 2 end
    while lines[first] and not lines[first]:match("%S") do first = first + 1 end
    local moddoc
    if lines[first] and (is_comment(lines[first])) then
        local bottom = first
        while lines[bottom + 1] and is_comment(lines[bottom + 1]) do bottom = bottom + 1 end
        local ok, why = block_ok(lines, first, bottom)
        moddoc = { ok = ok, why = why }
    else
        moddoc = { ok = false, why = "the file does not start with a `---` module comment" }
    end
    return out, moddoc
end

return M
