#!/bin/sh
# Router CPUs (issue 15): for each cross target, compile every csrc/*.c with the cross
# compiler (warnings are errors), link the Lua module hwfota/core.so as a router build
# (-Os, gc-sections, stripped: its size is printed), link the C unit tests statically
# and run each under qemu-user. Endianness and alignment bugs show up on big-endian
# MIPS, not on x86. Called by `make check-cross` with the variables below in its
# environment; prints one "#tally cross passed=N failed=M" line.
#
#   CROSS_TARGETS  GNU triplets: mips-linux-gnu arm-linux-gnueabihf (compiler TRIPLET-gcc,
#                  emulator qemu-<cpu>: qemu-mips, qemu-arm)
#   CROSS_SRC      every csrc/*.c (core and Lua binding): each compiled, counted
#   CROSS_TESTS    csrc/tests/test_*.c to run under qemu
#   CROSS_SKIP     "name:reason;..." tests not run, named in the output
#   CROSS_FUZZ     spec/fuzz/fuzz_*.c harnesses: each built with spec/fuzz/replay_main.c
#                  and run under qemu over its corpus spec/fuzz/corpus/<name>
#   CROSS_CFLAGS   compile flags (the project's, plus an include dir with the Lua and
#                  libserialport headers: they are arch-independent)
#   CROSS_SO_FLAGS link flags of hwfota/core.so (the host's: its export list)
#   CROSS_PACKAGES the Debian packages that provide the tools
#   B              the build directory
#
# Passed/failed count one per source compiled warning-free, one per core.so linked, one
# per check of each unit test (its own "#tally") and one per fuzz harness whose whole
# corpus replays clean (as spec/checks/fuzz-replay counts); a test or harness that
# crashes, times out or prints no tally counts one failure. Tools missing and not root: a "#note" says the
# check is skipped (nothing passes); as root, `make test` installs them, so missing
# tools fail it.
start=$(date +%s)
B=${B:-build}
p=0
f=0
timeout_s=${CROSS_TEST_TIMEOUT:-600}
log=$(mktemp) || exit 2
trap 'rm -f "$log"' EXIT

missing=""
for t in $CROSS_TARGETS; do
    command -v "$t-gcc" >/dev/null 2>&1 || missing="$missing $t-gcc"
    command -v "qemu-${t%%-*}" >/dev/null 2>&1 || missing="$missing qemu-${t%%-*}"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "#note cross: SKIPPED, not run: missing$missing (Debian packages: $CROSS_PACKAGES; make test installs them as root)"
        echo "#tally cross passed=0 failed=0"
        exit 0
    fi
    echo "!! cross: missing$missing (Debian packages: $CROSS_PACKAGES; run make deps or make test)"
    echo "#tally cross passed=0 failed=1"
    exit 1
fi

# Router build flags, as spec/checks/size uses for the host.
router="-Os -fno-asynchronous-unwind-tables -ffunction-sections -fdata-sections"
sizes=""
for t in $CROSS_TARGETS; do
    cc=$t-gcc
    qemu=qemu-${t%%-*}
    d=$B/cross/$t
    rm -rf "$d"
    mkdir -p "$d/obj" "$d/hwfota" "$d/tests"
    # 1. every source, warning-free
    objs=""
    ok=1
    for s in $CROSS_SRC; do
        o=$d/obj/$(basename "$s" .c).o
        # shellcheck disable=SC2086
        if $cc $router $CROSS_CFLAGS -c -o "$o" "$s"; then
            p=$((p + 1)); objs="$objs $o"
        else
            echo "!! cross $t: $s does not build warning-free"; f=$((f + 1)); ok=0
        fi
    done
    [ $ok -eq 1 ] || continue
    # 2. the Lua module, as a router build. libserialport is not available for the
    # target: its symbols stay undefined (the router's libserialport.so provides them).
    # shellcheck disable=SC2086
    if $cc -shared -Wl,--gc-sections $CROSS_SO_FLAGS -o "$d/hwfota/core.so" $objs \
        && "$t-strip" -o "$d/hwfota/core.stripped.so" "$d/hwfota/core.so"; then
        p=$((p + 1))
        sizes="$sizes $t $(stat -c %s "$d/hwfota/core.stripped.so") bytes;"
    else
        echo "!! cross $t: hwfota/core.so does not link"; f=$((f + 1))
    fi
    # 3. unit tests, static, without transport.o and the Lua binding (neither is used by
    # the tests run here; transport.o needs libserialport)
    tobjs=""
    for o in $objs; do
        case $o in */transport.o|*/lua_*.o) ;; *) tobjs="$tobjs $o";; esac
    done
    for s in $CROSS_TESTS; do
        n=$(basename "$s" .c)
        bin=$d/tests/$n
        # shellcheck disable=SC2086
        if ! $cc $router $CROSS_CFLAGS -static -Wl,--gc-sections -o "$bin" "$s" $tobjs -lm; then
            echo "!! cross $t: $s does not build"; f=$((f + 1)); continue
        fi
        if timeout "$timeout_s" "$qemu" "$bin" >"$log" 2>&1; then rc=0; else rc=$?; fi
        tally=$(grep '^#tally ' "$log" | tail -n 1)
        if [ -z "$tally" ]; then
            tail -n 30 "$log"; echo "!! cross $t: $n: no tally (exit $rc)"; f=$((f + 1)); continue
        fi
        tp=$(echo "$tally" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
        tf=$(echo "$tally" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
        if [ "$rc" -ne 0 ] && [ "$tf" -eq 0 ]; then tf=1; fi
        [ "$tf" -eq 0 ] || { grep -v '^ok' "$log" | tail -n 40; echo "!! cross $t: $n failed (exit $rc)"; }
        echo "#note cross $t: $n under $qemu: $tp ok, $tf not ok"
        p=$((p + tp)); f=$((f + tf))
    done
    # 4. the fuzz corpus through each harness: the parsers and the state machine on
    # every stored input, on this CPU (an invariant failure aborts the harness)
    for s in $CROSS_FUZZ; do
        n=$(basename "$s" .c)
        bin=$d/tests/$n-replay
        # shellcheck disable=SC2086
        if ! $cc $router $CROSS_CFLAGS -DHARNESS_NAME="\"$n\"" -static -Wl,--gc-sections \
            -o "$bin" "$s" spec/fuzz/replay_main.c $tobjs -lm; then
            echo "!! cross $t: $s does not build"; f=$((f + 1)); continue
        fi
        if timeout "$timeout_s" "$qemu" "$bin" "spec/fuzz/corpus/$n" >"$log" 2>&1; then rc=0; else rc=$?; fi
        files=$(sed -n 's/^#tally .* passed=\([0-9]*\).*/\1/p' "$log" | tail -n 1)
        if [ "$rc" -eq 0 ] && [ "${files:-0}" -gt 0 ]; then
            p=$((p + 1))
            echo "#note cross $t: $n under $qemu: $files corpus files clean"
        else
            tail -n 30 "$log"
            echo "!! cross $t: $n failed on $(grep '^replay: ' "$log" | tail -n 1) (exit $rc)"
            f=$((f + 1))
        fi
    done
done

# The tests not run, and why (no silent exclusions).
IFS=';'
for sk in $CROSS_SKIP; do
    [ -n "$sk" ] && echo "#note cross: not run under qemu: ${sk%%:*} (${sk#*:})"
done
unset IFS
echo "#note cross: stripped -Os core.so:$sizes libserialport symbols left undefined"
echo "#note cross: took $(( $(date +%s) - start )) s"
echo "#tally cross passed=$p failed=$f"
[ "$f" -eq 0 ] && [ "$p" -gt 0 ]
