-- Syscalls per wake (issue 15): an unsolicited line arriving on an idle port
-- costs the wait and one read, nothing else (it was 4: poll, read, a 0-byte
-- read, and a poll(0) asking whether that 0 meant a hang-up). Counted with
-- strace on spec/bench/react.lua, driven by build/support/react_driver, on both
-- wait sets: syscalls per wake = (calls at 400 lines - calls at 100 lines) /
-- (waits at 400 - waits at 100), so start-up and exit cancel out.
local top = os.getenv("HWFOTA_TOP") or "."
local has_strace = os.execute("command -v strace >/dev/null 2>&1")

-- strace -c -f totals for one run with `count` lines: all calls, waits, reads
local function count(backend, n)
  local out = os.tmpname()
  local cmd = ("%s/build/support/react_driver %d 3000 strace -f -c -o %s lua5.4 %s/spec/bench/react.lua %s"):format(
    top, n, out, top, backend)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local res = p:read("a")
  local ok = p:close()
  assert(ok, "react_driver failed: " .. res)
  assert(res:match("n=" .. n .. " "), "the subject saw every line: " .. res)
  local f = assert(io.open(out))
  local t = {total = 0, waits = 0, read = 0}
  for line in f:lines() do
    local calls, name = line:match("^%s*[%d%.]+%s+[%d%.]+%s+%d+%s+(%d+)%s+%d*%s*(%S+)$")
    if calls then
      calls = tonumber(calls)
      if name == "total" then
        t.total = calls
      else
        t[name] = calls
        if name == "poll" or name == "ppoll" or name:match("^epoll_p?wait") then
          t.waits = t.waits + calls
        end
      end
    end
  end
  f:close()
  os.remove(out)
  return t
end

describe("syscalls per wake", function()
  for _, backend in ipairs{"epoll", "poll"} do
    it("an unsolicited line costs the wait and one read (" .. backend .. ")", function()
      if not has_strace then
        pending("strace is not installed (make deps installs it)")
        return
      end
      local a, b = count(backend, 100), count(backend, 400)
      local waits = b.waits - a.waits
      assert.is_true(waits >= 150, "the 300 more lines woke the loop " .. waits .. " times")
      local per_wake = (b.total - a.total) / waits
      local reads = ((b.read or 0) - (a.read or 0)) / waits
      assert.is_true(per_wake <= 2.1, ("%.2f syscalls per wake (target 2)"):format(per_wake))
      assert.is_true(reads <= 1.05, ("%.2f reads per wake"):format(reads))
    end)
  end
end)
