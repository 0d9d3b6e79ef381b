"""react_pyserial.py - `make bench`, row B3: the peer. A pyserial script as
router scripts are written: Serial(timeout=1), readline() in a loop. Run by
react_driver (BENCH_TTY names the pty); prints n, median_us, p99_us."""
import os
import time

import serial

s = serial.Serial(os.environ["BENCH_TTY"], 115200, timeout=1)
print("ready", flush=True)
lat = []
while True:
    line = s.readline()
    now = time.monotonic_ns()
    if line.startswith(b"^BENCHEND"):
        break
    if line.startswith(b"^BENCH: "):
        lat.append((now - int(line[8:].strip())) / 1000.0)
lat.sort()
n = len(lat)
print("n=%d median_us=%.1f p99_us=%.1f" % (n, lat[n // 2] if n else 0,
                                           lat[(n * 99) // 100] if n else 0))
