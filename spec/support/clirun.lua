--- Test helper: run the hwfota command in-process (cli.main) with injected output,
-- terminal and environment, for spec/cli_spec.lua and spec/cli_fidelity_spec.lua.
-- local clirun = require "support.clirun"
-- local rc, out, err, syslog = clirun.run({"--port", sim.path, "info"}, {env = {...}})
local cli = require "hwfota.cli"
local json = require "dkjson"

local M = {}

--- Run the command; returns rc, stdout, stderr and the syslog lines ("level: message").
-- `over`: `env` (the environment getenv sees) and any io_ field of cli.main to replace.
function M.run(args, over)
  local out, err, log = {}, {}, {}
  local env = over and over.env or {}
  local io_ = {
    stdout = function(s) out[#out + 1] = s end,
    stderr = function(s) err[#err + 1] = s end,
    isatty = function() return false end,
    getenv = function(k) return env[k] end,
    syslog = function(level, msg) log[#log + 1] = level .. ": " .. msg end,
  }
  for k, v in pairs(over or {}) do if k ~= "env" then io_[k] = v end end
  local rc = cli.main(args, io_)
  return rc, table.concat(out), table.concat(err), log
end

--- Decode one JSON document (null as json.null); fails the spec when it is not JSON.
function M.decode(s)
  local v, _, e = json.decode(s, 1, json.null)
  assert(v, "not JSON: " .. tostring(e) .. "\n" .. s)
  return v
end

--- FOTA options every flow against the simulator needs: quick polls keep the specs
-- short.
M.FAST = {"--poll", "0.2"}

--- `args` followed by `extra` (default `FAST`), as a new array.
function M.with(args, extra)
  local t = {}
  for _, a in ipairs(args) do t[#t + 1] = a end
  for _, a in ipairs(extra or M.FAST) do t[#t + 1] = a end
  return t
end

--- The simulator's whole JSON-lines log as text.
function M.log_text(sim)
  local f = assert(io.open(sim.log))
  local t = f:read("a")
  f:close()
  return t
end

--- How many times the simulator received exactly `cmd` (its JSON-lines log).
function M.rx_count(sim, cmd)
  local n, want = 0, '"dir":"rx","line":' .. ('%q'):format(cmd)
  for l in M.log_text(sim):gmatch("[^\n]+") do
    if l:find(want, 1, true) then n = n + 1 end
  end
  return n
end

return M
