#!/bin/sh
# make bench, row B4 (footprint): prints key=value lines for spec/bench/run.lua.
#   stripped_core=<bytes>   hwfota/core.so built as for a router (-Os, no unwind
#                           tables, sections gc'd: as spec/checks/size), stripped
#   obj_<name>=<bytes>      text+data of each object of that build (before gc):
#                           where the bytes go
#   rss_bare_kb=<KB>        max RSS of a bare `lua5.4 -e ''`
#   rss_flow_kb=<KB>        max RSS of lua5.4 running the seed flow (examples/upgrade.lua
#                           against build/hwfota-sim, as make demo does)
# Usage: footprint.sh BUILD_DIR
B=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
out="$B/bench/router"
flags="-Os -fno-asynchronous-unwind-tables -ffunction-sections -fdata-sections"
make -s --no-print-directory B="$out" CFLAGS="$flags" LDFLAGS="-Wl,--gc-sections -Wl,-z,noseparate-code" \
    "$out/hwfota/core.so" >"$B/bench/router.log" 2>&1 || { cat "$B/bench/router.log" >&2; exit 1; }
strip -o "$out/core.stripped" "$out/hwfota/core.so" || exit 1
echo "stripped_core=$(stat -c %s "$out/core.stripped")"
for o in "$out"/obj/*.o; do
    n=$(basename "$o" .o)
    echo "obj_$n=$(size "$o" | awk 'NR == 2 { print $1 + $2 }')"
done

if [ ! -x /usr/bin/time ]; then
    echo "footprint: /usr/bin/time not found (Debian package: time): no RSS figures" >&2
    exit 0
fi
echo "rss_bare_kb=$(/usr/bin/time -f %M lua5.4 -e '' 2>&1 >/dev/null | tail -n 1)"

. "$top/examples/sim-start.sh"
sim_start bench "$B/hwfota-sim" 0.1
LUA_CPATH="$top/$B/?.so;;" LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" \
    /usr/bin/time -o "$dir/rss" -f %M lua5.4 examples/upgrade.lua "$path" --journal "$dir/journal" \
    >"$dir/flow.log" 2>&1 || { cat "$dir/flow.log" >&2; echo "footprint: the seed flow failed" >&2; exit 1; }
echo "rss_flow_kb=$(tail -n 1 "$dir/rss")"
