#!/bin/sh
# Install the Debian packages given as arguments when some are missing.
# As root this runs apt-get; otherwise it names what to install and fails.
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "hwfota: missing Debian packages:$missing" >&2
    echo "hwfota: run as root, or: sudo apt-get install$missing" >&2
    exit 1
fi
echo "hwfota: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || { echo "hwfota: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || { echo "hwfota: apt-get install$missing failed" >&2; exit 1; }
