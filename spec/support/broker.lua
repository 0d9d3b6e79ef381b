--- Test helper: a private Mosquitto broker on 127.0.0.1 (issue 16), with a
-- password file and the fleet contract's ACL, persistence on, in its own
-- temporary directory. Used by spec/mqtt_spec.lua and the fleet end-to-end specs.
--
--   local broker = require "support.broker"
--   local b = assert(broker.start{users = {
--     {name = "controller", password = "c-secret"},           -- role from the name
--     {name = "r1", password = "p1"},                         -- a router
--   }})
--   -- b.host, b.port, b.dir, b:password_file("r1") (a file holding r1's password)
--   b:restart()   -- stop (SIGTERM: the database is saved) and start on the same port
--   b:kill()      -- SIGKILL: only what autosave wrote survives
--   b:pause()     -- SIGSTOP: connections stay open, nothing answers (b:resume())
--   b:start()     -- again, same port, same database
--   b:cleanup()   -- kill it and remove its directory
--
-- The ACL (the contract's): a router user X writes only `hwfota/X/#` and reads only
-- `hwfota/X/cmd` and `hwfota/fleet/cmd` (pattern lines with %u); the controller
-- users read `hwfota/#` and write `hwfota/+/cmd` and `hwfota/fleet/#`.
-- A router may not be called "fleet": its pattern would then cover the fleet topics.
local M = {}

M.bin = os.getenv("HWFOTA_MOSQUITTO") or "/usr/sbin/mosquitto"
M.passwd_bin = os.getenv("HWFOTA_MOSQUITTO_PASSWD") or "/usr/bin/mosquitto_passwd"


local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true
end

local support_sim = require "support.sim"
local q, read = support_sim.sh_quote, support_sim.read_file

local function write(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then assert(sh(("chmod %s %s"):format(mode, q(path)))) end
end

local function sleep(s)
  os.execute(("sleep %.3f"):format(s))
end

local function alive(pid)
  return pid ~= nil and sh(("kill -0 %d 2>/dev/null"):format(pid))
end

--- Is Mosquitto installed (the broker and mosquitto_passwd)?
-- @treturn boolean
-- @treturn string what is missing, when not
function M.available()
  for _, p in ipairs{M.bin, M.passwd_bin} do
    if not sh("test -x " .. q(p)) then
      return false, p .. " not found (Debian packages mosquitto, mosquitto-clients)"
    end
  end
  return true
end

-- Ports in use (listening or not) on this host, from /proc/net/tcp{,6}.
local function ports_in_use()
  local used = {}
  for _, f in ipairs{"/proc/net/tcp", "/proc/net/tcp6"} do
    for line in (read(f) or ""):gmatch("[^\n]+") do
      local port = line:match("^%s*%d+:%s+%x+:(%x+)")
      if port then used[tonumber(port, 16)] = true end
    end
  end
  return used
end

--- A TCP port that nothing on this host uses now (20000..59999, random).
-- @treturn integer
function M.free_port()
  local used = ports_in_use()
  for _ = 1, 200 do
    local p = math.random(20000, 59999)
    if not used[p] then return p end
  end
  error("no free TCP port found")
end

local Broker = {}
Broker.__index = Broker

local CONTROLLER_ACL = [[
topic read hwfota/#
topic write hwfota/+/cmd
topic write hwfota/fleet/#
]]

local ROUTER_PATTERNS = [[
# every user other than the controllers above: a router, its name is its id
pattern write hwfota/%u/#
pattern read hwfota/%u/cmd
pattern read hwfota/fleet/cmd
]]

local function is_controller(u)
  if u.role then return u.role == "controller" end
  return u.name:match("^controller") ~= nil
end

function Broker:_write_config()
  local d = self.dir
  local acl = {}
  for _, u in ipairs(self.users) do
    if is_controller(u) then
      acl[#acl + 1] = "user " .. u.name .. "\n" .. CONTROLLER_ACL
    end
  end
  -- Patterns apply to every user, controllers too (harmless: hwfota/<controller>/#).
  acl[#acl + 1] = ROUTER_PATTERNS
  write(d .. "/acl", self.acl or table.concat(acl, "\n"), "600")
  write(d .. "/passwd", "", "600")
  for _, u in ipairs(self.users) do
    assert(sh(("%s -b %s %s %s >/dev/null 2>&1"):format(q(M.passwd_bin), q(d .. "/passwd"),
      q(u.name), q(u.password))), "mosquitto_passwd failed for " .. u.name)
  end
  local user = io.popen("id -un"):read("l")
  local conf = {
    "listener " .. self.port .. " 127.0.0.1",
    "allow_anonymous false",
    "password_file " .. d .. "/passwd",
    "acl_file " .. d .. "/acl",
    "persistence true",
    "persistence_location " .. d .. "/",
    "persistence_file mosquitto.db",
    "autosave_interval " .. tostring(self.autosave),
    "log_dest file " .. d .. "/mosquitto.log",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
    "log_timestamp true",
    -- as root, mosquitto would switch to user "mosquitto", which cannot read this dir
    "user " .. user,
  }
  if self.tls then
    conf[#conf + 1] = "listener " .. self.tls.port .. " 127.0.0.1"
    conf[#conf + 1] = "cafile " .. self.tls.cafile
    conf[#conf + 1] = "certfile " .. self.tls.certfile
    conf[#conf + 1] = "keyfile " .. self.tls.keyfile
  end
  for _, line in ipairs(self.extra or {}) do conf[#conf + 1] = line end
  write(d .. "/mosquitto.conf", table.concat(conf, "\n") .. "\n", "600")
end

--- The broker's log so far.
-- @treturn string
function Broker:log()
  return read(self.dir .. "/mosquitto.log") or ""
end

--- Start (or start again) the broker on its port; waits until it accepts
-- connections (its log says "running"), up to 10 s.
-- @return self, or nil and the reason (with the log's tail)
function Broker:start()
  if alive(self.pid) then return self end
  local before = #self:log()
  local p = assert(io.popen(("%s -c %s >>%s 2>&1 & echo $!"):format(q(M.bin),
    q(self.dir .. "/mosquitto.conf"), q(self.dir .. "/stderr"))))
  self.pid = tonumber(p:read("l"))
  p:close()
  local want = self.tls and 2 or 1
  for _ = 1, 500 do
    local log = self:log():sub(before + 1)
    local _, listening = log:gsub("Opening ipv4 listen socket on port", "")
    if log:find("running", 1, true) and listening >= want then return self end
    if not alive(self.pid) then break end
    sleep(0.02)
  end
  local why = self:log():sub(before + 1) .. (read(self.dir .. "/stderr") or "")
  self:kill()
  return nil, "mosquitto did not start on port " .. self.port .. ":\n" .. why:sub(-2000)
end

-- Wait (up to 5 s) until the process is gone.
function Broker:_reap()
  for _ = 1, 250 do
    if not alive(self.pid) then return true end
    sleep(0.02)
  end
  return false
end

--- Stop the broker with SIGTERM (it saves its database) and wait until it is gone.
function Broker:stop()
  if alive(self.pid) then
    sh(("kill %d 2>/dev/null; kill -CONT %d 2>/dev/null"):format(self.pid, self.pid))
    if not self:_reap() then self:kill() end
  end
  self.pid = nil
end

--- Kill the broker with SIGKILL (no save: only what autosave wrote survives).
function Broker:kill()
  if self.pid then
    sh(("kill -9 %d 2>/dev/null"):format(self.pid))
    self:_reap()
  end
  self.pid = nil
end

--- Freeze the broker (SIGSTOP): its sockets stay open but nothing answers, as
-- with a broker behind a dead link. `resume` thaws it.
function Broker:pause()
  if self.pid then sh(("kill -STOP %d 2>/dev/null"):format(self.pid)) end
end

--- Thaw a paused broker (SIGCONT).
function Broker:resume()
  if self.pid then sh(("kill -CONT %d 2>/dev/null"):format(self.pid)) end
end

--- Stop and start again on the same port with the same database.
-- @return self, or nil and the reason
function Broker:restart()
  self:stop()
  return self:start()
end

--- Is the broker process running?
function Broker:running()
  return alive(self.pid)
end

--- A file (mode 600, in the broker's directory) holding `name`'s password and a
-- newline, for `password_file` options.
-- @tparam string name a user given to start
-- @treturn string path
function Broker:password_file(name)
  for _, u in ipairs(self.users) do
    if u.name == name then
      local path = ("%s/%s.pw"):format(self.dir, name)
      write(path, u.password .. "\n", "600")
      return path
    end
  end
  error("no such broker user: " .. tostring(name))
end

--- Kill the broker and remove its directory (HWFOTA_KEEP=1 keeps it).
function Broker:cleanup()
  self:kill()
  if self.dir and not os.getenv("HWFOTA_KEEP") then sh("rm -rf " .. q(self.dir)) end
end

--- Start a private broker.
-- @tparam table opts `users` (array of {name=, password=, role="router"|"controller"};
--   without role, a name starting with "controller" is a controller), `port`
--   (default a free one), `autosave` (seconds between database saves, default 1),
--   `tls` ({cafile=, certfile=, keyfile=}: a second listener, on `tls.port` or a free
--   port), `acl` (the ACL file's text instead of the contract's), `extra` (more
--   config lines)
-- @return Broker, or nil and the reason
function M.start(opts)
  opts = opts or {}
  local ok, why = M.available()
  if not ok then return nil, why end
  local users = opts.users or {}
  for _, u in ipairs(users) do
    assert(type(u.name) == "string" and u.name:match("^[A-Za-z0-9_-]+$"),
      "broker user names are router ids: [A-Za-z0-9_-]+")
    assert(type(u.password) == "string" and u.password ~= "", "user " .. u.name .. ": password")
    assert(is_controller(u) or u.name ~= "fleet", "a router may not be called 'fleet'")
  end
  local p = io.popen("mktemp -d /tmp/hwfota-broker.XXXXXX")
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  local b = setmetatable({dir = dir, host = "127.0.0.1", users = users,
    autosave = opts.autosave or 1, extra = opts.extra, acl = opts.acl}, Broker)
  if opts.tls then
    b.tls = {cafile = opts.tls.cafile, certfile = opts.tls.certfile,
             keyfile = opts.tls.keyfile, port = opts.tls.port}
  end
  for _ = 1, 5 do   -- a port taken between the choice and the bind: another one
    b.port = opts.port or M.free_port()
    if b.tls and not opts.tls.port then
      repeat b.tls.port = M.free_port() until b.tls.port ~= b.port
    end
    b:_write_config()
    local started, err = b:start()
    if started then return b end
    why = err
    if opts.port or not err:find("in use", 1, true) then break end
  end
  b:cleanup()
  return nil, why
end

return M
