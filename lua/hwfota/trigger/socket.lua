--- hwfota.trigger.socket: start the FOTA flow on a command received on a socket.
--
-- A line-based listener on the poll loop (`hwfota.watch`): it wakes when a
-- client connects or sends, never on a timer, so it costs nothing while idle
-- and answers at once while a module downloads. Each client sends one line,
-- gets one line back and is closed; one that sends no full line within
-- `client_timeout` seconds (or more than `max_line` bytes) is closed.
--
-- The trigger protocol (`protocol`):
--
--   upgrade [SECRET]   start the flow (with a token, the secret must follow)
--                      -> "started" | "busy" | "error not authorised"
--   status             -> whatever `opts.status()` says
--   quit               -> "bye"; `opts.quit()` is called
--
-- Sockets come from LuaSocket (`socket.bind`, `socket.unix`): this module only
-- needs a server object with `accept` and clients with `receive`, `send`,
-- `close` and `getfd`.
--
-- @module hwfota.trigger.socket
-- @usage
-- local server = assert(socket.bind("127.0.0.1", 7788))
-- local runner = require("hwfota.trigger.once").new()
-- local l = trigger.listen(server, trigger.protocol{runner = runner, flow = flow,
--   status = function() return runner:busy() and "running" or "idle" end})
-- hwfota.loop()

local loop = require "hwfota.loop"

local M = {}

--- Seconds a client has to send its line.
M.CLIENT_TIMEOUT = 2
--- Longest request line (bytes).
M.MAX_LINE = 512

local Listener = {}
Listener.__index = Listener

--- Serve one-line requests on a listening server, on the loop.
-- @param server a listening LuaSocket server (set non-blocking here)
-- @tparam function handler `handler(line) -> reply` (without the line end)
-- @tparam[opt] table opts `client_timeout` (seconds), `max_line` (bytes)
-- @treturn Listener with `:close()` (stops listening, drops the clients; the
--   server itself is the caller's to close)
function M.listen(server, handler, opts)
  if type(handler) ~= "function" then
    error(("bad argument #2 to 'listen' (function expected, got %s)"):format(type(handler)), 2)
  end
  opts = opts or {}
  local timeout = opts.client_timeout or M.CLIENT_TIMEOUT
  local max_line = opts.max_line or M.MAX_LINE
  local self = setmetatable({clients = {}, accepted = 0}, Listener)
  server:settimeout(0)

  local function drop(c)
    if not self.clients[c] or c.serving then return end   -- served: dropped after its reply
    self.clients[c] = nil
    c.watcher:cancel()
    c.timer:cancel()
    c.sock:close()
  end

  local function on_client(c)
    local line, err, partial = c.sock:receive("*l")
    if line then
      c.serving = true   -- the handler may close the listener: this client gets its reply
      local ok, reply = pcall(handler, table.concat(c.buf) .. line)
      c.sock:send((ok and tostring(reply) or "error internal") .. "\n")   -- one short line
      c.serving = false
      drop(c)
      if not ok then error(reply, 0) end   -- the loop raises it (hwfota.watch)
    elseif err == "timeout" then
      c.buf[#c.buf + 1] = partial
      c.size = c.size + #partial
      if c.size > max_line then drop(c) end
    else
      drop(c)   -- closed before a full line
    end
  end

  self.watcher = loop.watch(server, "r", function()
    local sock = server:accept()
    if not sock then return end
    sock:settimeout(0)
    self.accepted = self.accepted + 1
    local c = {sock = sock, buf = {}, size = 0}
    self.clients[c] = true
    c.watcher = loop.watch(sock, "r", function() on_client(c) end)
    c.timer = loop.timer(timeout, function() drop(c) end)
  end)
  self.drop = drop
  return self
end

--- Stop listening and drop the clients (idempotent).
function Listener:close()
  self.watcher:cancel()
  for c in pairs(self.clients) do self.drop(c) end
end

--- The trigger protocol as a `listen` handler.
-- @tparam table opts `runner` (`hwfota.trigger.once`), `flow` (function the
--   runner starts), `token` (optional secret `upgrade` must carry), `status`
--   (function -> the status line), `quit` (function, on `quit`), `on_trigger`
--   (optional, called when a flow starts)
-- @treturn function handler(line) -> reply
function M.protocol(opts)
  assert(type(opts) == "table" and opts.runner and type(opts.flow) == "function",
         "protocol needs {runner =, flow =}")
  local quitting = false
  return function(line)
    local cmd, rest = (line or ""):match("^%s*(%a+)%s*(.-)%s*$")
    cmd = cmd and cmd:lower()
    if cmd == "upgrade" then
      if opts.token and rest ~= opts.token then return "error not authorised" end
      if quitting then return "error shutting down" end
      if not opts.runner:start(opts.flow) then return "busy" end
      if opts.on_trigger then opts.on_trigger() end
      return "started"
    elseif cmd == "status" then
      return opts.status and opts.status() or (opts.runner:busy() and "running" or "idle")
    elseif cmd == "quit" then
      quitting = true
      if opts.quit then opts.quit() end
      return "bye"
    end
    return "error unknown command (upgrade, status, quit)"
  end
end

return M
