-- /etc/hwfota/policy.lua: the rollout policy the hwfota service runs
-- (`hwfota run --policy /etc/hwfota/policy.lua`). It returns a policy for hwfota.run,
-- composed from the policy kit with the settings of /etc/config/hwfota, which
-- /etc/init.d/hwfota passes as HWFOTA_* environment variables (the uci Lua binding
-- exists only for Lua 5.1). A conffile: edit it freely, upgrades keep your version.
local policy = require "hwfota.policy"

local getenv = os.getenv

local function words(name)
    local t = {}
    for w in (getenv(name) or ""):gmatch("%S+") do t[#t + 1] = w end
    return t
end

local function number(name, default)
    local v = getenv(name)
    if v == nil or v == "" then return default end
    return tonumber(v) or error(("%s must be a number, got %q"):format(name, v), 0)
end

local blocks = {}

-- Maintenance window: list window 'HH:MM-HH:MM', list days 'mon' ...
local ranges = {}
for _, r in ipairs(words("HWFOTA_WINDOW")) do
    local a, b = r:match("^(%d%d?:%d%d)%-(%d%d?:%d%d)$")
    if not a then error(("window must be HH:MM-HH:MM, got %q"):format(r), 0) end
    ranges[#ranges + 1] = { a, b }
end
if #ranges > 0 then
    local days = words("HWFOTA_DAYS")
    blocks[#blocks + 1] = policy.window{ ranges = ranges, days = #days > 0 and days or nil }
end

-- Cohort: 100 % takes every device, no block needed.
local percent = number("HWFOTA_COHORT_PERCENT", 100)
if percent < 100 then
    blocks[#blocks + 1] = policy.cohort{ percent = percent,
                                         salt = getenv("HWFOTA_COHORT_SALT") or "" }
end

-- Version gate: never a downgrade or the same version; optional target and sources.
local from = words("HWFOTA_FROM")
local target = getenv("HWFOTA_TARGET")
blocks[#blocks + 1] = policy.gate{ to = target ~= "" and target or nil,
                                   from = #from > 0 and from or nil }

-- Data-connection guard: the WAN interface down around detection and download.
local wan = getenv("HWFOTA_WAN")
if wan and wan ~= "" then
    if not wan:match("^[%w_%-%.]+$") then error(("bad wan interface name %q"):format(wan), 0) end
    blocks[#blocks + 1] = policy.wan_guard{ down = "ifdown " .. wan, up = "ifup " .. wan }
end

blocks[#blocks + 1] = policy.retry{ attempts = number("HWFOTA_ATTEMPTS", 4),
                                    base = number("HWFOTA_RETRY_BASE", 60),
                                    max = number("HWFOTA_RETRY_MAX", 3600) }

return policy.all(blocks)
