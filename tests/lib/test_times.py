#!/usr/bin/env python3
"""Print the timing summary of a `make test` run and keep it in benchmarks/results.

Reads the steps tests/lib/timed.sh recorded (name, cache warm/cold, seconds, exit
status, start) and prints one line per step and the total: the wall time from the
first start to the last end, so steps that ran side by side count once. The table is also written to
benchmarks/results/test-times.md, in the section for this run's kind: "cold" when any
artifact was built (its cache was cold), else "warm"; the other section is kept, so
the file holds the latest figure of each.

Usage: tests/lib/test_times.py TIMES_TSV RESULTS_MD
"""

import datetime
import os
import re
import subprocess
import sys


def read(path):
    steps = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 4:
                steps.append(
                    {
                        "name": parts[0],
                        "cache": parts[1],
                        "seconds": int(parts[2]),
                        "rc": int(parts[3]),
                        "start": int(parts[4]) if len(parts) > 4 else None,
                    }
                )
    return steps


def fmt(seconds):
    return f"{seconds // 60}:{seconds % 60:02d}"


def table(steps):
    lines = ["| step | cache | time (min:s) | status |", "| --- | --- | ---: | --- |"]
    for s in steps:
        lines.append(
            "| {} | {} | {} | {} |".format(
                s["name"], s["cache"], fmt(s["seconds"]), "ok" if s["rc"] == 0 else "failed"
            )
        )
    total = sum(s["seconds"] for s in steps)
    wall = wall_seconds(steps)
    if wall is not None and wall < total:
        # Some steps ran side by side: the wall time is the figure that counts.
        lines.append(f"| sum of the steps | | {fmt(total)} | |")
        total = wall
    lines.append(f"| **total** | | **{fmt(total)}** | |")
    return lines


def wall_seconds(steps):
    """First start to last end, when every step recorded its start; else None."""
    if not steps or any(s.get("start") is None for s in steps):
        return None
    return max(s["start"] + s["seconds"] for s in steps) - min(s["start"] for s in steps)


def machine():
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return "{} cores, {} GiB, commit {}".format(
        os.cpu_count(),
        round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        commit or "unknown",
    )


def update(results, kind, body):
    header = "# `make test` times\n\nWritten by `make test` (tests/lib/test_times.py): one section per kind of run.\n"
    text = header
    if os.path.exists(results):
        with open(results, encoding="utf-8") as fh:
            text = fh.read()
    section = f"## {kind} caches\n\n" + "\n".join(body) + "\n"
    pattern = re.compile(rf"^## {kind} caches\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    os.makedirs(os.path.dirname(results) or ".", exist_ok=True)
    with open(results, "w", encoding="utf-8") as fh:
        fh.write(text)


def main(argv):
    times, results = argv[0], argv[1]
    steps = read(times)
    if not steps:
        print("no timed steps recorded in " + times)
        return 0
    kind = "cold" if any(s["cache"] == "cold" for s in steps) else "warm"
    lines = table(steps)
    print(f"make test timing ({kind} caches):")
    print("\n".join(lines))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    update(results, kind.capitalize(), [f"{stamp}, {machine()}.", ""] + lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
