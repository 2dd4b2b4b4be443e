"""Benchmark converges of the local lab, as ratios measured in one run.

Rebuilds the lab from scratch (lab_down, lab_up), then times:
- the first converge of site.yml and a no-op rerun (ratio no-op / first);
- adding one instance with `--tags instances --limit localcloud`, against the
  no-op full rerun (ratio add / no-op); the instance is removed again afterwards;
- parallelism: the no-op site.yml on all hosts against the slowest host alone
  (the same no-op run with --limit, one host at a time);
- the same no-op rerun with the optional Mitogen strategy (ANSIBLE_STRATEGY=mitogen_linear)
  against the default one;
and counts the tasks each host executes in the no-op rerun (target: at most 80).

Writes benchmarks/results/lab.json and lab.md. Needs root and the lab's
artifacts (`make lab` builds them); it leaves the lab converged.

Run: make bench   (or .venv/bin/python benchmarks/bench_lab.py)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import yaml  # noqa: E402
from lab import run_playbook, write_overlay_inventory  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def timed(playbook, **kwargs):
    start = time.monotonic()
    run = run_playbook(playbook, **kwargs)
    elapsed = time.monotonic() - start
    if run.rc != 0:
        raise SystemExit(f"{playbook} {kwargs} failed:\n{run.failure_messages() or run.stdout[-3000:]}")
    return elapsed, run


def localcloud_instances(extra):
    base = yaml.safe_load((ROOT / "inventory" / "lab" / "host_vars" / "localcloud.yml").read_text())
    return {"localcloud": {"model_instances": base["model_instances"] + [extra]}}


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench_lab.py needs root (the lab hosts are systemd containers)")
    run_playbook("playbooks/lab_down.yml")
    timed("playbooks/lab_up.yml")
    first, _ = timed("site.yml")
    noop, noop_run = timed("site.yml")
    extra = {
        "name": "bench",
        "backend": "llamacpp",
        "model": "tiny-llama-F32.gguf",
        "port": 8095,
        "ctx_size": 256,
    }
    with tempfile.TemporaryDirectory() as tmp:
        inventory = write_overlay_inventory(Path(tmp) / "add", host_vars=localcloud_instances(extra))
        add, _ = timed("site.yml", inventory=inventory, tags="instances", limit="localcloud")
        absent = {"name": "bench", "backend": "llamacpp", "state": "absent"}
        inventory = write_overlay_inventory(Path(tmp) / "remove", host_vars=localcloud_instances(absent))
        timed("site.yml", inventory=inventory, tags="instances", limit="localcloud")
    alone = {}
    for host in sorted(noop_run.tasks_per_host()):
        alone[host], _ = timed("site.yml", limit=host)
    slowest = max(alone, key=alone.get)
    mitogen, mitogen_run = timed("site.yml", envvars={"ANSIBLE_STRATEGY": "mitogen_linear"})
    tasks = noop_run.tasks_per_host()
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": {
            "first_converge": round(first, 1),
            "noop_rerun": round(noop, 1),
            "add_instance_tags_limit": round(add, 1),
            **{f"noop_{host}_alone": round(t, 1) for host, t in sorted(alone.items())},
            "noop_mitogen": round(mitogen, 1),
        },
        "ratios": {
            "noop_over_first": round(noop / first, 3),
            "add_instance_over_noop": round(add / noop, 3),
            f"noop_all_hosts_over_slowest_alone ({slowest})": round(noop / alone[slowest], 3),
            "noop_mitogen_over_noop": round(mitogen / noop, 3),
        },
        "targets": {
            "noop_over_first": 0.10,
            "add_instance_over_noop": 0.20,
            "noop_all_hosts_over_slowest_alone": 1.3,
            "noop_tasks_per_host": 80,
        },
        "noop_changed": noop_run.changed_count(),
        "noop_mitogen_changed": mitogen_run.changed_count(),
        "noop_tasks_per_host": tasks,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lab.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Lab converge benchmark",
        "",
        f"One run on {result['machine']['cpus']} CPUs (`make bench`).",
        "",
        "| measure | seconds |",
        "| --- | --- |",
    ]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in result["seconds"].items()]
    lines += ["", "| ratio | value |", "| --- | --- |"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in result["ratios"].items()]
    lines += ["", "Targets (issue: a converge that costs what it changes): "]
    lines += [", ".join(f"{k.replace('_', ' ')} <= {v}" for k, v in result["targets"].items())]
    lines += [
        "",
        f"No-op rerun: changed={result['noop_changed']} (Mitogen: {result['noop_mitogen_changed']});"
        " tasks per host (target: at most 80):",
        "",
    ]
    lines += [
        f"- {h}: {n}{'' if n <= 80 else ' (above 80)'}"
        for h, n in sorted(result["noop_tasks_per_host"].items())
    ]
    (RESULTS / "lab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
