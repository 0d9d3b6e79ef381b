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
#
# In parallel: most of the time is waiting (simulated module timelines, timeouts), so the
# suites run as independent jobs, HWFOTA_TEST_JOBS at a time (default: 4 per CPU), each
# with its output in its own log; the logs are read afterwards in a fixed order, so the
# output (each failing suite's log in full, one "-- SUITE: N ok, M not ok" line per suite,
# the totals) does not depend on which job finished first. Jobs:
#   - each C test binary;
#   - each spec/checks/* script, or, when the script says "# run-tests: parts", each of
#     the parts it prints for `--parts` (run with `--part P`; e.g. one per spec file for
#     san-busted, one shard of the fault campaign), whose tallies add up to its line;
#   - each spec file (spec/**/*_spec.lua, found anew each run) in its own busted, for
#     the specs and again for the flow specs with HWFOTA_SIM_CLOSED_PORT=keep.
# The longest jobs start first: build/test-times (written by every parallel run) or else
# spec/test-times (the committed copy of one) give each job's last duration.
# HWFOTA_TEST_JOBS=1 runs everything one after the other, unsplit, as one busted per kind.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
self=$top/spec/run-tests.sh

# --job DIR ID (internal): run job ID of the list in DIR (DIR/ID.cmd), its output into
# DIR/ID.log, its exit status into DIR/ID.rc and its duration (ms) into DIR/ID.ms.
if [ "$1" = --job ]; then
    d=$2 id=$3
    t0=$(date +%s%3N)
    sh "$d/$id.cmd" >"$d/$id.log" 2>&1 </dev/null
    echo $? >"$d/$id.rc.part"
    t1=$(date +%s%3N)
    echo $((t1 - t0)) >"$d/$id.ms"
    mv "$d/$id.rc.part" "$d/$id.rc"
    exit 0
fi

jobs=${HWFOTA_TEST_JOBS:-$((4 * $(nproc 2>/dev/null || echo 1)))}
case $jobs in
''|*[!0-9]*|0) echo "!! HWFOTA_TEST_JOBS=$jobs: want a positive number"; exit 2;;
esac

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
q() {  # q WORD: WORD quoted for sh
    printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}
work=$(mktemp -d "${TMPDIR:-/tmp}/hwfota-tests.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
nl='
'

# The job list. A group is one "-- LABEL: N ok, M not ok" line, counted under KIND; its
# jobs' output is read as C-test tallies ("tally") or busted TAP ("tap").
ng=0
nj=0
group() {  # group KIND PARSER LABEL
    ng=$((ng + 1))
    printf '%s\n' "$1" >"$work/g$ng.kind"
    printf '%s\n' "$2" >"$work/g$ng.parser"
    printf '%s\n' "$3" >"$work/g$ng.label"
    : >"$work/g$ng.jobs"
}
job() {  # job NAME COMMAND: a job of the last group; NAME names it in messages and timings
    nj=$((nj + 1))
    printf '%s\n' "$2" >"$work/j$nj.cmd"
    printf '%s\n' "$1" >"$work/j$nj.name"
    echo "j$nj" >>"$work/g$ng.jobs"
}

# C test binaries: a binary prints "#tally <suite> passed=N failed=M"; a crash or a
# missing tally counts as one failure.
for t in build/tests/* build/tests-san/*; do
    [ -x "$t" ] || continue
    group "$(kind_of "$t")" tally "$t"
    job "$t" "exec $(q "$t")"
done

# Checks (spec/checks/*, packaging): executables run from the top directory like the C
# tests above (a "#tally" line, crash or missing tally = failure). Lines they print
# starting with "#note " are shown, so a check skipped on request stays visible.
for t in spec/checks/*; do
    [ -x "$t" ] || continue
    group "$(kind_of "$t")" tally "$t"
    parts=""
    if [ "$jobs" -gt 1 ] && grep -q '^# run-tests: parts' "$t"; then
        # its build steps (stderr) show only when listing the parts fails
        parts=$("$t" --parts 2>"$work/parts.err") || { cat "$work/parts.err"; parts=""; }
    fi
    if [ -z "$parts" ]; then
        job "$t" "exec $(q "$t")"
        continue
    fi
    IFS=$nl
    for p in $parts; do job "$t --part $p" "exec $(q "$t") --part $(q "$p")"; done
    unset IFS
done

# busted, TAP output: count "ok" and "not ok" lines.
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;$top/spec/?.lua;;"
export LUA_CPATH="$top/build/?.so;;"
export HWFOTA_TOP="$top"
# busted_group KIND LABEL VAR=VALUE PATH SUFFIX SPEC...: busted (TAP) with VAR=VALUE in
# its environment over PATH (one job) or, in parallel, over each SPEC file (one job each,
# named "busted SPEC" and SUFFIX).
busted_group() {
    group "$1" tap "$2"
    assign=$3 path=$4 suffix=$5
    shift 5
    if [ "$jobs" -eq 1 ]; then
        job "busted $path" "exec env $(q "$assign") busted --lua=lua5.4 -o TAP $path"
        return
    fi
    for f in "$@"; do
        job "busted $f$suffix" "exec env $(q "$assign") busted --lua=lua5.4 -o TAP $(q "$f")"
    done
}
specs=$(find spec -type f -name '*_spec.lua' | sort)
if [ -n "$specs" ]; then
    # shellcheck disable=SC2086
    busted_group specs busted "HWFOTA_TOP=$top" spec "" $specs
fi
flows=$(find spec -maxdepth 1 -type f -name 'flow_*_spec.lua' | sort)
if [ -n "$flows" ]; then
    # shellcheck disable=SC2086
    busted_group keepspecs "busted spec/flow_*_spec.lua, closed port keep" \
        HWFOTA_SIM_CLOSED_PORT=keep "spec/flow_*_spec.lua" ", closed port keep" $flows
fi

# The order: the list's in serial; longest first (last known durations) in parallel.
i=1
: >"$work/order"
while [ "$i" -le "$nj" ]; do
    name=$(cat "$work/j$i.name")
    ms=""
    for tf in build/test-times spec/test-times; do
        [ -f "$tf" ] || continue
        ms=$(awk -F '\t' -v n="$name" '$2 == n { print $1; exit }' "$tf")
        [ -n "$ms" ] && break
    done
    # a job never timed (a new spec file, a new part) goes first: it may be long
    [ "$jobs" -eq 1 ] && ms=$i
    printf '%s\tj%s\n' "${ms:-999999999}" "$i" >>"$work/order"
    i=$((i + 1))
done
if [ "$jobs" -eq 1 ]; then sort -n "$work/order"; else sort -rn "$work/order"; fi |
    cut -f 2 >"$work/queue"
echo "== $nj jobs, $jobs at a time (HWFOTA_TEST_JOBS; 1 runs them one after the other)"
t0=$(date +%s)
xargs -P "$jobs" -n 1 sh "$self" --job "$work" <"$work/queue"
wall=$(($(date +%s) - t0))

# The results, in the list's order.
g=1
while [ "$g" -le "$ng" ]; do
    kind=$(cat "$work/g$g.kind") parser=$(cat "$work/g$g.parser") label=$(cat "$work/g$g.label")
    gp=0 gf=0
    for j in $(cat "$work/g$g.jobs"); do
        name=$(cat "$work/$j.name") log=$work/$j.log
        rc=$(cat "$work/$j.rc" 2>/dev/null)
        if [ -z "$rc" ]; then   # the scheduler lost it: never a pass
            [ -f "$log" ] && cat "$log"
            echo "!! $name: did not finish"
            gf=$((gf + 1))
            continue
        fi
        if [ "$parser" = tap ]; then
            ok=$(grep -c '^ok ' "$log")
            nok=$(grep -c '^not ok ' "$log")
            grep -v '^ok ' "$log" | grep -v '^1\.\.' | sed 's/^/   /'
            if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
                echo "!! $name exited $rc"; nok=1
            fi
            gp=$((gp + ok)) gf=$((gf + nok))
            continue
        fi
        tally=$(grep '^#tally ' "$log" | tail -n 1)
        if [ -z "$tally" ]; then
            cat "$log"
            echo "!! $name: no tally (exit $rc)"
            gf=$((gf + 1))
            continue
        fi
        p=$(echo "$tally" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
        f=$(echo "$tally" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            cat "$log"; echo "!! $name: exit $rc"; f=1
        elif [ "$f" -ne 0 ]; then
            cat "$log"
        fi
        gp=$((gp + p)) gf=$((gf + f))
    done
    echo "-- $label: $gp ok, $gf not ok"
    case $label in
    spec/checks/*)
        for j in $(cat "$work/g$g.jobs"); do grep '^#note ' "$work/$j.log" 2>/dev/null; done |
            awk '!seen[$0]++' | sed 's/^#note /   note: /';;
    esac
    add "$kind" "$gp" "$gf"
    g=$((g + 1))
done

# Durations: the slowest jobs, and build/test-times for the next run's order.
for j in $(cat "$work/queue"); do
    printf '%s\t%s\n' "$(cat "$work/$j.ms" 2>/dev/null || echo 0)" "$(cat "$work/$j.name")"
done | sort -rn >"$work/times"
if [ "$jobs" -gt 1 ] && [ -d build ]; then cp "$work/times" build/test-times; fi
echo "== $wall s wall, $jobs at a time; the slowest jobs:$(head -n 5 "$work/times" |
    awk -F '\t' '{ printf "%s %s %.0f s", (NR > 1 ? ";" : ""), $2, $1 / 1000 }')"

for k in $kinds; do
    eval "kp=\$p_$k kf=\$f_$k"
    [ "$k" = other ] && [ "$kp" -eq 0 ] && [ "$kf" -eq 0 ] && continue
    printf '   %-17s %6d passed, %d failed\n' "$(kind_name $k):" "$kp" "$kf"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
