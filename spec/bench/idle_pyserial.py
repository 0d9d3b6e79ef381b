"""idle_pyserial.py - `make bench`, row B2: the peer. One thread per port,
each reading with Serial(timeout=1) in a loop, as scripts are written.

    python3 idle_pyserial.py SECONDS PATH...

Prints seconds=, cpu_ms= (this process, time.process_time) and wakeups=
(voluntary context switches of every thread, /proc/self/task/*/status) over the window
(after every port is open and 0.5 s of settling)."""
import glob
import sys
import threading
import time

import serial


def switches():
    total = 0
    for path in glob.glob("/proc/self/task/*/status"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


seconds = float(sys.argv[1])
stop = threading.Event()


def reader(port):
    while not stop.is_set():
        port.read(1)


ports = [serial.Serial(p, 115200, timeout=1) for p in sys.argv[2:]]
threads = [threading.Thread(target=reader, args=(p,), daemon=True) for p in ports]
for t in threads:
    t.start()
time.sleep(0.5)
w0, c0, t0 = switches(), time.process_time(), time.monotonic()
time.sleep(seconds)
cpu, w1, took = time.process_time() - c0, switches(), time.monotonic() - t0
print("seconds=%.1f cpu_ms=%.2f wakeups=%d" % (took, cpu * 1000, w1 - w0))
stop.set()
