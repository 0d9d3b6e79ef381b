-- make test / make check (issue 14.8): check builds and runs the suites without
-- touching the system; a missing tool fails with its package named.
local top = os.getenv("HWFOTA_TOP") or "."

local function sh(cmd)
  local p = assert(io.popen("cd '" .. top .. "' && " .. cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

describe("make check", function()
  it("installs nothing: no apt-get, no install-deps.sh, no root", function()
    local rc, out = sh("make -n check")
    assert.equals(0, rc, out)
    assert.matches("spec/check-tools.sh", out, 1, true)
    assert.matches("spec/run-tests.sh", out, 1, true)
    assert.is_nil(out:find("install-deps", 1, true), out)
    assert.is_nil(out:find("apt-get", 1, true), out)
  end)

  it("make test installs the packages first, then runs make check", function()
    local rc, out = sh("make -n test")
    assert.equals(0, rc, out)
    local deps = out:find("spec/install-deps.sh", 1, true)
    local check = out:find("make check", 1, true) or out:find("make[^\n]* check\n")
    assert.is_number(deps, out)
    assert.is_number(check, out)
    assert.is_true(deps < check, out)
  end)

  it("check-tools names the package of each missing tool and fails", function()
    local rc, out = sh("sh spec/check-tools.sh no-such-cc-h3 lua5.4 /no/such/include")
    assert.equals(1, rc, out)
    assert.matches("missing command no-such-cc-h3 (Debian package build-essential)", out, 1, true)
    assert.matches("missing file /no/such/include/lua.h (Debian package liblua5.4-dev)", out, 1, true)
    assert.matches("make check needs: build-essential liblua5.4-dev", out, 1, true)
  end)

  it("check-tools passes on this machine (every tool of make check present)", function()
    local rc, out = sh("sh spec/check-tools.sh cc lua5.4 /usr/include/lua5.4")
    assert.equals(0, rc, out)
    assert.equals("", out:gsub("rc=0%s*$", ""))
  end)
end)
