#!/usr/bin/env python3
"""Time how long llama.cpp instances take to load their model: restart the unit with the
page cache dropped (the NFS client's included), then poll /health until it answers 200
(llama-server answers 503 while it loads). Rounds alternate the instances, so each sees
the same machine. Prints {"seconds": {name: [one per round]}} as JSON.

Usage: load_time.py ROUNDS NAME:PORT:UNIT...
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def load_seconds(port, unit, limit=600):
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as handle:
        handle.write("3\n")
    start = time.monotonic()
    subprocess.run(["systemctl", "restart", unit], check=True)
    while not healthy(port):
        if time.monotonic() - start > limit:
            raise SystemExit(f"{unit} did not answer /health within {limit} s")
        time.sleep(0.05)
    return round(time.monotonic() - start, 3)


def main():
    rounds = int(sys.argv[1])
    targets = [arg.split(":") for arg in sys.argv[2:]]
    seconds = {name: [] for name, _port, _unit in targets}
    for _ in range(rounds):
        for name, port, unit in targets:
            seconds[name].append(load_seconds(int(port), unit))
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
