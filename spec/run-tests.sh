#!/bin/sh
# Run every hwfota suite and print one closing line "N passed, N failed".
#   C unit tests (build/tests/*), the same under ASan+UBSan (build/tests-san/*),
#   busted specs (spec/*_spec.lua) with lua5.4 against the build tree.
# Exit status is non-zero when anything failed or a suite could not run.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A C test binary prints "#tally <suite> passed=N failed=M"; a crash or a
# missing tally counts as one failure.
run_c() {
    bin=$1
    if "$bin" >"$log" 2>&1; then rc=0; else rc=$?; fi
    tally=$(grep '^#tally ' "$log" | tail -n 1)
    if [ -z "$tally" ]; then
        cat "$log"
        echo "!! $bin: no tally (exit $rc)"
        failed=$((failed + 1))
        return
    fi
    p=$(echo "$tally" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
    f=$(echo "$tally" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        cat "$log"; echo "!! $bin: exit $rc"; f=1
    elif [ "$f" -ne 0 ]; then
        cat "$log"
    fi
    echo "-- $bin: $p ok, $f not ok"
    passed=$((passed + p))
    failed=$((failed + f))
}

for t in build/tests/* build/tests-san/*; do
    [ -x "$t" ] || continue
    run_c "$t"
done

# Checks (spec/checks/*, packaging): executables run from the top directory like the C
# tests above (a "#tally" line, crash or missing tally = failure). Lines they print
# starting with "#note " are shown, so a check skipped on request stays visible.
for t in spec/checks/*; do
    [ -x "$t" ] || continue
    run_c "$t"
    grep '^#note ' "$log" | sed 's/^#note /   note: /'
done

# busted, TAP output: count "ok" and "not ok" lines.
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;$top/spec/?.lua;;"
export LUA_CPATH="$top/build/?.so;;"
export HWFOTA_TOP="$top"
if ls spec/*_spec.lua >/dev/null 2>&1; then
    if busted --lua=lua5.4 -o TAP spec >"$log" 2>&1; then rc=0; else rc=$?; fi
    ok=$(grep -c '^ok ' "$log")
    nok=$(grep -c '^not ok ' "$log")
    grep -v '^ok ' "$log" | grep -v '^1\.\.' | sed 's/^/   /'
    if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
        echo "!! busted exited $rc"; nok=1
    fi
    echo "-- busted: $ok ok, $nok not ok"
    passed=$((passed + ok))
    failed=$((failed + nok))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
