#!/bin/sh
# fakedev-run.sh — run one command that sees /dev/ttyUSB2 (USB 12d1:1573) backed by a pty.
#
# usage: spec/support/fakedev-run.sh [-p PTY | -d DIR] [-t TTY] [-i VID:PID] [-s SERIAL] [--] CMD [ARG...]
#   -p PTY      pty slave, or a symlink to it (hwfota-sim publishes one), backing /dev/TTY;
#               same as HWFOTA_FAKEDEV_PTY. Read at every open, so the simulator may start,
#               stop or restart while CMD runs; without it /dev/TTY is "unplugged" (ENOENT).
#   -d DIR      a hwfota-sim --dir with --ttys: every tty it publishes (HWFOTA_FAKEDEV_DIR)
#   -t TTY      device name (HWFOTA_FAKEDEV_TTY, default ttyUSB2)
#   -i VID:PID  USB identity in hex (HWFOTA_FAKEDEV_VIDPID, default 12d1:1573)
#   -s SERIAL   USB serial string (HWFOTA_FAKEDEV_SERIAL)
# Every other HWFOTA_FAKEDEV_* variable documented in fakedev_preload.c passes through.
#
# The preload (build/support/fakedev_preload, from `make tests`) is appended to any
# LD_PRELOAD already set, so an ASan runtime listed there stays first. For a gcc-ASan CMD
# without that, set LD_PRELOAD to its libasan first or ASAN_OPTIONS=verify_asan_link_order=0.
#
# Example (a busted spec against the simulator's published pty):
#   spec/support/fakedev-run.sh -p /tmp/hwfota-sim/ttyUSB2 busted --lua=lua5.4 spec/port_spec.lua
top=$(cd "$(dirname "$0")/../.." && pwd)
lib="${HWFOTA_FAKEDEV_LIB:-$top/build/support/fakedev_preload}"
usage() { sed -n '4,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        -p) [ $# -ge 2 ] || usage; HWFOTA_FAKEDEV_PTY=$2; export HWFOTA_FAKEDEV_PTY; shift 2 ;;
        -d) [ $# -ge 2 ] || usage; HWFOTA_FAKEDEV_DIR=$2; export HWFOTA_FAKEDEV_DIR; shift 2 ;;
        -t) [ $# -ge 2 ] || usage; HWFOTA_FAKEDEV_TTY=$2; export HWFOTA_FAKEDEV_TTY; shift 2 ;;
        -i) [ $# -ge 2 ] || usage; HWFOTA_FAKEDEV_VIDPID=$2; export HWFOTA_FAKEDEV_VIDPID; shift 2 ;;
        -s) [ $# -ge 2 ] || usage; HWFOTA_FAKEDEV_SERIAL=$2; export HWFOTA_FAKEDEV_SERIAL; shift 2 ;;
        --) shift; break ;;
        -h|--help) usage ;;
        -*) echo "fakedev-run: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || usage
if [ ! -r "$lib" ]; then
    echo "fakedev-run: $lib missing: run \`make tests\` first" >&2
    exit 2
fi
LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}$lib"
export LD_PRELOAD
exec "$@"
