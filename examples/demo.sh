#!/bin/sh
# make demo: the whole FOTA flow (examples/upgrade.lua) against the simulated module.
# Starts build/hwfota-sim on a private directory, waits for its "ready" line,
# runs the example, stops the simulator. Exit status: the example's.
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/examples/sim-start.sh"
sim_start demo "$top/build/hwfota-sim" "${HWFOTA_DEMO_SCALE:-0.1}"
echo "demo: simulated MU509 at $path (log: the simulator's JSON lines, removed at exit)"
export LUA_CPATH="$top/build/?.so;;"
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
lua5.4 "$top/examples/upgrade.lua" "$path" --journal "$dir/journal"
