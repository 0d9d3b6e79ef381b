#!/bin/sh
# Run every hwfota suite and print one closing line "N passed, N failed", above it the
# totals per kind (their sum is the closing line):
#   C unit          C test binaries (build/tests/*): one pass per real check (setup steps
#                   count nothing, a random-sequence test counts once)
#   C sanitized     the same binaries built with ASan+UBSan (build/tests-san/*)
#   C valgrind      spec/checks/valgrind: one per C test binary clean under memcheck
#   specs           busted specs (spec/*_spec.lua) with lua5.4 against the build tree
#   flow specs, keep the end-to-end flow specs (spec/flow_*_spec.lua) again with the
#                   simulator's other closed-port behaviour (HWFOTA_SIM_CLOSED_PORT=keep:
#                   lines sent while no host holds the port are kept, as in a pty; the
#                   default, drop, loses them as a USB port does)
#   sanitized specs spec/checks/san-busted: the same specs again against an ASan+UBSan
#                   build of the Lua module (a rerun, counted as its own kind)
#   corpus replay   spec/checks/fuzz-replay: one per fuzz harness whose corpus replays clean
#   fault runs      spec/checks/faults: one per seeded fault-campaign run
#   packaging       spec/checks/{musl,rock,openwrt,size}
#   cross           spec/checks/cross: big-endian MIPS and ARMv7 builds, the C unit tests
#                   and the fuzz corpus under qemu-user (skipped with a note without the
#                   cross tools, when not root)
# Exit status is non-zero when anything failed or a suite could not run.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
passed=0
failed=0
kinds="cunit csan cvalgrind specs keepspecs sanspecs corpus faults packaging cross other"
for k in $kinds; do eval "p_$k=0 f_$k=0"; done
kind_name() {
    case $1 in
    cunit) echo "C unit";; csan) echo "C sanitized";; cvalgrind) echo "C valgrind";;
    specs) echo "specs";; keepspecs) echo "flow specs, keep";; sanspecs) echo "sanitized specs";; corpus) echo "corpus replay";;
    faults) echo "fault runs";; packaging) echo "packaging checks";;
    cross) echo "cross (qemu)";; *) echo "other checks";;
    esac
}
# Which kind a binary or check counts under.
kind_of() {
    case $1 in
    build/tests/*) echo cunit;; build/tests-san/*) echo csan;;
    spec/checks/valgrind) echo cvalgrind;; spec/checks/san-busted) echo sanspecs;;
    spec/checks/fuzz-replay) echo corpus;; spec/checks/faults) echo faults;;
    spec/checks/musl|spec/checks/rock|spec/checks/openwrt|spec/checks/size) echo packaging;;
    spec/checks/cross) echo cross;;
    *) echo other;;
    esac
}
add() {  # add KIND PASSED FAILED
    eval "p_$1=\$((p_$1 + $2)) f_$1=\$((f_$1 + $3))"
    passed=$((passed + $2))
    failed=$((failed + $3))
}
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
        add "$(kind_of "$bin")" 0 1
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
    add "$(kind_of "$bin")" "$p" "$f"
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
# run_busted KIND LABEL VAR=VALUE PATH...: busted (TAP) over PATH... with VAR=VALUE in
# its environment; counts "ok" and "not ok" lines under KIND.
run_busted() {
    kind=$1 label=$2 assign=$3
    shift 3
    if env "$assign" busted --lua=lua5.4 -o TAP "$@" >"$log" 2>&1; then rc=0; else rc=$?; fi
    ok=$(grep -c '^ok ' "$log")
    nok=$(grep -c '^not ok ' "$log")
    grep -v '^ok ' "$log" | grep -v '^1\.\.' | sed 's/^/   /'
    if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
        echo "!! $label exited $rc"; nok=1
    fi
    echo "-- $label: $ok ok, $nok not ok"
    add "$kind" "$ok" "$nok"
}
if ls spec/*_spec.lua >/dev/null 2>&1; then
    run_busted specs busted "HWFOTA_TOP=$top" spec
fi
if ls spec/flow_*_spec.lua >/dev/null 2>&1; then
    run_busted keepspecs "busted spec/flow_*_spec.lua, closed port keep" \
        HWFOTA_SIM_CLOSED_PORT=keep spec/flow_*_spec.lua
fi

for k in $kinds; do
    eval "kp=\$p_$k kf=\$f_$k"
    [ "$k" = other ] && [ "$kp" -eq 0 ] && [ "$kf" -eq 0 ] && continue
    printf '   %-17s %6d passed, %d failed\n' "$(kind_name $k):" "$kp" "$kf"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
