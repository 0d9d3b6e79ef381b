#!/usr/bin/python3
"""peer_pyserial.py -- row B6's pyserial peer: the seed's FOTA flow as a plain
pyserial script, the way an integrator writes it without hwfota.

    /usr/bin/python3 spec/bench/peer_pyserial.py PORT

AT+GMR, AT^FOTADET (wait for ^FOTASTATE: 12), AT^FOTADL=1 (wait for 30, then 40),
AT^FWUP, wait for the port to go and come back (tried once a second), then
AT^FOTASTATE? once a second until 90, and AT+GMR for the new version. Reads with
readline() and a 1 s timeout (pyserial's usual loop). Prints the versions and
exits 0 when the module reports 90; 1 otherwise.
"""
import os
import sys
import time

import serial

PORT = sys.argv[1]
FINALS = ("OK", "ERROR", "+CME ERROR", "COMMAND NOT SUPPORT")


def open_port():
    return serial.Serial(PORT, 115200, timeout=1)


def command(s, cmd, timeout=10):
    """Send cmd, return the lines before its final result (raises on ERROR)."""
    s.write((cmd + "\r").encode())
    lines = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = s.readline().decode(errors="replace").strip()
        if not line or line == cmd:
            continue
        if line.startswith(FINALS):
            if line != "OK":
                raise RuntimeError("%s: %s" % (cmd, line))
            return lines
        lines.append(line)
    raise RuntimeError("%s: no answer" % cmd)


def wait_state(s, want, timeout):
    """Read lines until ^FOTASTATE: <want> comes (a URC)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = s.readline().decode(errors="replace").strip()
        if line.startswith("^FOTASTATE:"):
            state = line.split(":", 1)[1].split(",")[0].strip()
            if state == want:
                return line
            if state in ("13", "14", "20"):
                raise RuntimeError("module: " + line)
    raise RuntimeError("no ^FOTASTATE: %s within %d s" % (want, timeout))


s = open_port()
before = command(s, "AT+GMR")[0]
print("running", before)
command(s, "AT^FOTADET")
print(wait_state(s, "12", 60))
command(s, "AT^FOTADL=1")
wait_state(s, "30", 60)
wait_state(s, "40", 600)
command(s, "AT^FWUP")
# the module resets: wait for the port to go, then to come back
while True:
    try:
        if not os.path.exists(PORT):
            break
        s.readline()
    except (serial.SerialException, OSError):
        break
s.close()
while True:
    time.sleep(1)
    try:
        s = open_port()
        break
    except (serial.SerialException, OSError):
        pass
state = None
for _ in range(120):
    try:
        lines = command(s, "AT^FOTASTATE?")
    except RuntimeError:
        lines = []
    st = [l for l in lines if l.startswith("^FOTASTATE:")]
    if st and st[0].split(":", 1)[1].split(",")[0].strip() == "90":
        state = st[0]
        break
    time.sleep(1)
if state is None:
    print("no 90 after the reset")
    sys.exit(1)
after = command(s, "AT+GMR")[0]
print("upgraded", before, "->", after)
s.close()
