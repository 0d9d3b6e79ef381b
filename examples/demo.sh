#!/bin/sh
# make demo: the whole FOTA flow (examples/upgrade.lua) against the simulated module.
# Starts build/hwfota-sim on a private directory, waits for its "ready" line,
# runs the example, stops the simulator. Exit status: the example's.
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/hwfota-demo.XXXXXX) || exit 1
fifo="$dir/out"
mkfifo "$fifo" || exit 1
"$top/build/hwfota-sim" --dir "$dir" --time-scale "${HWFOTA_DEMO_SCALE:-0.1}" \
    --log "$dir/sim.log" >"$fifo" 2>"$dir/sim.err" &
sim=$!
cleanup() { kill "$sim" 2>/dev/null; wait "$sim" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
read -r ready path <"$fifo"
if [ "$ready" != "ready" ]; then
    echo "demo: the simulator did not start:" >&2
    cat "$dir/sim.err" >&2
    exit 1
fi
echo "demo: simulated MU509 at $path (log: the simulator's JSON lines, removed at exit)"
export LUA_CPATH="$top/build/?.so;;"
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
lua5.4 "$top/examples/upgrade.lua" "$path" --journal "$dir/journal"
