# Sourced by sh scripts (examples/demo.sh, spec/bench/footprint.sh): start the simulated
# module on a private directory and wait for its "ready" line.
#
#   . examples/sim-start.sh
#   sim_start WHO SIM_BINARY [SCALE]
#
# Sets $dir (the private directory, removed at exit), $sim (the simulator's pid) and
# $path (the module's AT port), and stops the simulator at exit. Exits 1, naming WHO,
# when the simulator does not start.
sim_start() {
    dir=$(mktemp -d "/tmp/hwfota-$1.XXXXXX") || exit 1
    mkfifo "$dir/out" || exit 1
    "$2" --dir "$dir" --time-scale "${3:-0.1}" --log "$dir/sim.log" >"$dir/out" 2>"$dir/sim.err" &
    sim=$!
    trap 'kill "$sim" 2>/dev/null; wait "$sim" 2>/dev/null; rm -rf "$dir"' EXIT
    trap 'exit 130' INT TERM
    # shellcheck disable=SC2034  # path: for the sourcing script
    read -r ready path <"$dir/out"
    if [ "$ready" != "ready" ]; then
        echo "$1: the simulator did not start:" >&2
        cat "$dir/sim.err" >&2
        exit 1
    fi
}
