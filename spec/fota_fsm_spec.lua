--- fota_fsm_spec.lua — the Lua binding of the FOTA state machine (hwfota.core):
-- the seed's flow driven through feed(), action shapes, journal round trip,
-- errors (nil, msg, CODE) and argument checks (raise).
local core = require "hwfota.core"

local SEED_OPTS = {
  skip_model_check = true, check_prereq = false, read_imei = false,
  apn = "1234", user = "", password = "", auth = "chap",
  mode = { auto_query = false, auto_download = false, auto_upgrade = true, resume = true },
}

--- A tiny owner: remembers the command in flight, the timer, and every action.
local function driver(opts)
  local d = { fsm = assert(core.fota_new(opts)), now = 0, sent = {}, emits = {}, journals = {} }
  function d:take(actions)
    for _, a in ipairs(actions) do
      if a.kind == "send" then
        self.pending = a
        self.sent[#self.sent + 1] = a.command
      elseif a.kind == "timer" then
        self.timer = a.at
      elseif a.kind == "reopen" then
        self.reopen = a
      elseif a.kind == "journal" then
        self.journals[#self.journals + 1] = a
      elseif a.kind == "emit" then
        self.emits[#self.emits + 1] = a
        self.last = self.last or {}
        self.last[a.event] = a
      end
    end
    return actions
  end
  function d:start() return self:take(self.fsm:start(self.now)) end
  function d:feed(ev)
    self.now = self.now + 0.5
    ev.now = ev.now or self.now
    return self:take(self.fsm:feed(ev))
  end
  function d:ok(...)
    local p = assert(self.pending, "nothing in flight")
    self.pending = nil
    return self:feed { kind = "result", id = p.id, command = p.command, final = "OK", lines = { ... } }
  end
  function d:urc(line) return self:feed { kind = "urc", line = line } end
  return d
end

describe("hwfota.core FOTA binding", function()
  it("drives the seed's flow with exactly the seed's commands", function()
    local d = driver(SEED_OPTS)
    d:start()
    assert.equal("AT+GMR", d.pending.command)
    assert.is_number(d.pending.id)
    d:ok("12.815.01.03.00")
    assert.equal('AT^FOTACFG="1234","","",2', d.pending.command)
    d:ok()
    assert.equal("AT^FOTAMODE=0,0,1,1", d.pending.command)
    assert.equal("none", d.pending.expect)
    d:ok()
    assert.same({ kind = "send", command = "AT^FOTASTATE?", id = d.pending.id,
                  expect = "prefix", prefix = "^FOTASTATE:" }, d.pending)
    d:ok("^FOTASTATE: 10")
    assert.equal("AT^FOTADET", d.pending.command)
    d:ok()
    d:urc("^FOTASTATE: 11")
    d:urc('^FOTASTATE: 12,12.815.01.04.00,79114,"Support send SMS background"')
    assert.equal("12.815.01.04.00", d.last.new_version.version)
    assert.equal(79114, d.last.new_version.size)
    assert.equal("Support send SMS background", d.last.new_version.description)
    assert.equal("download", d.last.decision_needed.decision)
    assert.equal("decide_download", d.fsm:phase())
    d:feed { kind = "decision", value = "download" }
    assert.equal("AT^FOTADL=1", d.pending.command)
    d:ok()
    d:urc("^FOTASTATE: 30")
    assert.equal(30, d.last.state.code)
    assert.equal("downloading", d.last.state.name)
    d:feed { kind = "timer", now = d.timer }
    assert.equal("AT^FOTADLQ", d.pending.command)
    d:ok('^FOTADLQ: 1,"IMAGE",1324,1324', '^FOTADLQ: 2,"XNV",47104,77778')
    local p = d.last.progress
    assert.equal(2, #p.files)
    assert.same({ index = 2, name = "XNV", done = 47104, total = 77778 }, p.files[2])
    assert.equal(1324 + 47104, p.done)
    assert.is_true(p.percent <= 100)
    d:urc("^FOTASTATE: 40")
    d:urc("^FOTASTATE: 50")
    assert.equal("reboot", d.fsm:phase())
    local acts = d:feed { kind = "port_lost" }
    assert.equal("reopen", acts[1] and d.reopen.kind)
    assert.is_true(d.reopen.deadline >= d.now + 179)
    d:feed { kind = "port_back" }
    assert.equal("AT+GMR", d.pending.command)
    d:urc("^FOTASTATE: 90")
    d:ok("12.815.01.04.00")
    assert.equal("done", d.fsm:phase())
    assert.same({ kind = "emit", event = "done", outcome = "upgraded",
                  from = "12.815.01.03.00", to = "12.815.01.04.00" }, d.last.done)
    assert.same({ "AT+GMR", 'AT^FOTACFG="1234","","",2', "AT^FOTAMODE=0,0,1,1", "AT^FOTASTATE?",
                  "AT^FOTADET", "AT^FOTADL=1", "AT^FOTADLQ", "AT+GMR" }, d.sent)
    assert.is_true(#d.journals >= 3)
    assert.matches("^hwfota%-journal 1\n", d.journals[1].data)
  end)

  it("reports a collision as ECOLLISION with an actionable message", function()
    local d = driver(SEED_OPTS)
    d:start(); d:ok("12.815.01.03.00"); d:ok(); d:ok(); d:ok("^FOTASTATE: 10")
    local p = d.pending
    d.pending = nil
    d:feed { kind = "result", id = p.id, final = "CME", text = "FOTA is in collision state" }
    local f = d.last.failed
    assert.equal("ECOLLISION", f.code)
    assert.matches("bring the WAN interface down", f.message)
    assert.equal("detect", f.phase)
    assert.equal("failed", d.fsm:phase())
  end)

  it("reports a download failure with the module code and its meaning", function()
    local d = driver(SEED_OPTS)
    d:start(); d:ok("12.815.01.03.00"); d:ok(); d:ok(); d:ok("^FOTASTATE: 10"); d:ok()
    d:urc('^FOTASTATE: 12,12.815.01.04.00,79114,"x"')
    d:feed { kind = "decision", value = "download" }
    d:ok()
    d:urc("^FOTASTATE: 20,52")
    assert.equal("EDOWNLOAD", d.last.failed.code)
    assert.equal(52, d.last.failed.module_code)
    assert.matches("MD5", d.last.failed.message)
  end)

  it("round-trips the journal and never re-sends AT^FWUP after a restore", function()
    local opts = { skip_model_check = true, check_prereq = false, read_imei = false,
                   mode = { auto_upgrade = false, resume = true } }
    local d = driver(opts)
    d:start(); d:ok("12.815.01.03.00"); d:ok(); d:ok("^FOTASTATE: 10"); d:ok()
    d:urc('^FOTASTATE: 12,12.815.01.04.00,79114,"x"')
    d:feed { kind = "decision", value = "download" }
    d:ok(); d:urc("^FOTASTATE: 40")
    assert.equal("upgrade", d.last.decision_needed.decision)
    d:feed { kind = "decision", value = "upgrade" }
    assert.equal("AT^FOTASTATE?", d.pending.command)
    local acts = d:ok("^FOTASTATE: 40")
    -- the journal (fwup_sent=1) comes before the AT^FWUP it protects
    local ji, si
    for i, a in ipairs(acts) do
      if a.kind == "journal" then ji = ji or i end
      if a.kind == "send" and a.command == "AT^FWUP" then si = i end
    end
    assert.is_truthy(ji and si and ji < si)
    local snap = d.fsm:snapshot()
    assert.matches("fwup_sent=1", snap)
    -- the host dies here; a new process restores the journal
    local g = driver(opts)
    assert.is_true(g.fsm:restore(snap))
    g:start()
    assert.equal("AT+GMR", g.pending.command)
    g:ok("12.815.01.04.00")
    assert.equal("AT^FOTASTATE?", g.pending.command)
    g:ok("^FOTASTATE: 90")
    assert.equal("done", g.fsm:phase())
    assert.equal("upgraded", g.last.done.outcome)
    for _, c in ipairs(g.sent) do assert.are_not.equal("AT^FWUP", c) end
  end)

  it("rejects bad journals and bad options with nil, message, CODE", function()
    local f = core.fota_new(SEED_OPTS)
    local ok, msg, code = f:restore("hwfota-journal 1\nphase=nowhere\n")
    assert.is_nil(ok); assert.equal("EJOURNAL", code); assert.is_string(msg)
    ok, msg, code = core.fota_new { apn = 'a"b' }
    assert.is_nil(ok); assert.equal("EINVAL", code); assert.matches("apn", msg)
    ok, msg, code = core.fota_new { password = "x;AT+CFUN=0" , apn = "a" }
    assert.is_nil(ok); assert.equal("EINVAL", code)
    ok, msg, code = core.fota_new { apn = string.rep("a", 64) }
    assert.is_nil(ok); assert.equal("EINVAL", code)
    ok, msg, code = core.fota_new { reboot_timeout = -5 }
    assert.is_nil(ok); assert.equal("EINVAL", code)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.fota_new(42) end)
    assert.has_error(function() core.fota_new { force = "yes" } end)
    local f = core.fota_new()
    assert.has_error(function() f:feed("timer") end)
    assert.has_error(function() f:feed { kind = "bogus" } end)
    assert.has_error(function() f:feed { kind = "result", final = "MAYBE" } end)
    assert.has_error(function() f:feed { kind = "decision", value = "perhaps" } end)
    assert.has_error(function() f:start("now") end)
    assert.has_error(function() core.parse_fotastate(nil) end)
  end)

  it("closes idempotently (close, __close, __gc) and says so afterwards", function()
    local f = core.fota_new()
    assert.matches("hwfota.Fota %(idle%)", tostring(f))
    do
      local g <close> = core.fota_new()
      assert.equal("idle", g:phase())
    end
    f:close(); f:close()
    local ok, msg, code = f:phase()
    assert.is_nil(ok); assert.equal("closed", msg); assert.equal("ECLOSED", code)
    assert.matches("closed", tostring(f))
  end)

  it("exposes the parsers and tables", function()
    local st = assert(core.parse_fotastate('^FOTASTATE: 12,12.815.01.04.00,79114,"a, b;c"'))
    assert.same({ state = 12, name = "new_version", version = "12.815.01.04.00", size = 79114,
                  description = "a, b;c", truncated = false }, st)
    st = assert(core.parse_fotastate("^FOTASTATE: 20,52"))
    assert.equal(52, st.error_code); assert.equal("MD5 check failed", st.error_meaning)
    local ok, msg, code = core.parse_fotastate("^FOTASTATE: x")
    assert.is_nil(ok); assert.equal("EPARSE", code)
    assert.same({ index = 1, name = "IMAGE", done = 1324, total = 1324 },
                core.parse_fotadlq('^FOTADLQ: 1,"IMAGE",1324,1324'))
    assert.equal(-1, core.version_compare("12.815.01.03.00", "12.815.01.04.00"))
    assert.equal(0, core.version_compare(' "12.815.01.04.00" ', "12.815.01.04.00"))
    assert.equal(1, core.version_compare("12.107.08.05.457", "12.107.08.05.99"))
    ok, msg, code = core.version_compare("abc", "1.2")
    assert.is_nil(ok); assert.equal("EPARSE", code)
    assert.equal("12.815.01.04.00", core.version_normalize(' "12.815.01.04.00"'))
    assert.equal("downloading", core.fota_state_name(30))
    assert.equal("unknown", core.fota_state_name(77))
    assert.equal("FOTA collision state", core.fota_error_meaning(54))
    local min, name = core.supported_model("mu609")
    assert.equal("12.105.29.00.00", min); assert.equal("MU609", name)
    ok, msg, code = core.supported_model("ME909")
    assert.is_nil(ok); assert.equal("EUNSUPPORTED", code)
  end)
end)

describe("hwfota.core FOTA binding: the models option", function()
  -- the machine keeps a pointer to the rows (not a copy per machine): they must live
  -- as long as it, whatever the collector does meanwhile
  local ATI = {"Manufacturer: Huawei Technologies Co., Ltd.", "Model: XYZ9",
               "Revision: 11.2.0.0.0", "IMEI: 867530900000009", "+GCAP: +CGSM"}
  local function probe(models)
    local f = assert(core.fota_new { models = models, check_prereq = false, read_imei = false })
    models = nil
    collectgarbage(); collectgarbage()
    local p
    for _, a in ipairs(f:start(0)) do if a.kind == "send" then p = a end end
    assert.equal("ATI", p.command)
    local junk = {}
    for i = 1, 2000 do junk[i] = ("x"):rep(90) .. i end   -- reuse what was freed
    junk = nil
    collectgarbage(); collectgarbage()
    local out = {}
    for _, a in ipairs(f:feed { kind = "result", id = p.id, command = p.command, final = "OK",
                                now = 1, lines = ATI }) do
      out[#out + 1] = a.kind == "send" and a.command or a.event
    end
    return table.concat(out, " ")
  end

  it("a row given at creation still admits its model after collections", function()
    assert.equal("info phase AT^FOTASTATE?", probe { XYZ9 = "11.0.0.0.0" })
    assert.equal("info phase AT^FOTASTATE?", probe { XYZ9 = "11.0.0.0.0", MU999 = "1.0.0.0.0" })
  end)

  it("without the row the model is refused", function()
    assert.equal("info failed phase", probe(nil))
    assert.equal("info failed phase", probe { XYZ9 = "12.0.0.0.0" })   -- below its minimum
  end)
end)
