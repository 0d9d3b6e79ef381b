#!/bin/sh
# peer_chat.sh — row B6's pppd chat peer: the seed's FOTA flow as a shell script
# around pppd's `chat` (Debian package ppp), the way router scripts drive a modem.
#
#   sh spec/bench/peer_chat.sh PORT
#
# AT+GMR, AT^FOTADET (expect ^FOTASTATE: 12), AT^FOTADL=1 (expect 30, then 40),
# AT^FWUP; then wait (once a second) for the port to go and to come back, and ask
# AT^FOTASTATE? once a second until 90, then AT+GMR. `chat` reads the port on its
# stdin and writes it on its stdout; its strings alternate expect and send (`\c`:
# send nothing, wait for the next expect string), and leave out the caret ("^"
# starts a control character in chat's strings; the send strings escape it). Exit 0 when the module reports 90.
port=$1
CHAT=${CHAT:-/usr/sbin/chat}
[ -n "$port" ] || { echo "usage: peer_chat.sh PORT" >&2; exit 2; }

# chat with the port as stdin and stdout (raw, no echo by the tty)
talk() {
    stty -F "$port" 115200 raw -echo 2>/dev/null || return 1
    # shellcheck disable=SC2094  # one tty, read and written: that is the point
    "$CHAT" -s "$@" <"$port" >"$port"
}

talk TIMEOUT 10 ABORT ERROR '' AT+GMR OK || { echo "AT+GMR failed" >&2; exit 1; }
talk TIMEOUT 60 ABORT ERROR ABORT 'FOTASTATE: 14' ABORT 'FOTASTATE: 13' \
    '' 'AT\^FOTADET' OK '\c' 'FOTASTATE: 12' || { echo "detection failed" >&2; exit 1; }
talk TIMEOUT 600 ABORT ERROR ABORT 'FOTASTATE: 20' \
    '' 'AT\^FOTADL=1' OK '\c' 'FOTASTATE: 30' '\c' 'FOTASTATE: 40' || { echo "download failed" >&2; exit 1; }
talk TIMEOUT 10 ABORT ERROR '' 'AT\^FWUP' OK || { echo "AT^FWUP failed" >&2; exit 1; }

# the module resets: the port goes, then comes back
n=0
while [ -e "$port" ] && [ $n -lt 120 ]; do sleep 1; n=$((n + 1)); done
n=0
until [ -e "$port" ] || [ $n -ge 180 ]; do sleep 1; n=$((n + 1)); done
n=0
until talk TIMEOUT 2 ABORT ERROR '' 'AT\^FOTASTATE?' 'FOTASTATE: 90'; do
    n=$((n + 1))
    [ $n -lt 120 ] || { echo "no 90 after the reset" >&2; exit 1; }
    sleep 1
done
talk TIMEOUT 10 ABORT ERROR '' AT+GMR OK || { echo "AT+GMR failed" >&2; exit 1; }
echo "upgraded"
