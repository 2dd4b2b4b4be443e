"""Benchmark the model store's second run over complete Hugging Face repository entries.

The Hub stand-in (tests/standins/hf_hub/hf_hub_standin.py) serves, on loopback, REPOS
repositories written in a temporary folder: two GGUF repositories holding one model in two
quantizations and a README (the entry's ``include`` takes one quantization and the
README), and two small safetensors repositories (config.json, weights in one file or in two
shards with their index, a text file in a subdirectory). The safetensors files and GGUF
files are LFS files (checked by sha256), the README, JSON and text files small ones
(checked by their git blob id). Every entry names its repository at a full commit id.

The model_store role runs for real: ansible-playbook on localhost (ansible_connection=local,
this Python as ansible_python_interpreter, the repository's ansible.cfg), a store under the
temporary folder owned by the current user, ``model_store_hf_endpoint`` the stand-in. The
first run fetches everything (poll 1 s). Then, alternating, the second run (the same
entries over the complete store) and the baseline (the same playbook with an empty
``model_store_models``), each RUNS times; the best of each is kept. Per-repository cost is
(second - baseline) / REPOS. Every request the stand-in (the Hub and its CDN) gets during
the second runs is counted: a complete repository at its pinned revision must cost none.
The runs use the ansible.posix.json stdout callback, which gives each task's duration and
item count; the role's tasks of the best second run are listed beside the best baseline's.

Run: .venv/bin/python benchmarks/bench_store.py [--runs 3]
Target: under 1 s per repository on the second run, and 0 requests to the Hub.
A missed target (or a task changed on a second run) is printed and recorded; only a broken
setup (a playbook that fails) exits non-zero.
Writes benchmarks/results/store.json and store.md.
"""

import argparse
import contextlib
import datetime
import grp
import importlib.util
import json
import os
import platform
import pwd
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))

from fixtures_models import write_gguf, write_hf_dir  # noqa: E402

STANDIN = os.path.join(ROOT, "tests", "standins", "hf_hub", "hf_hub_standin.py")
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
TARGET_SECONDS_PER_REPO = 1.0
PLAYBOOK_TIMEOUT = 600
PLAY = """\
- name: Keep the model store
  hosts: localhost
  gather_facts: false
  roles:
    - role: model_store
"""


def load_standin():
    spec = importlib.util.spec_from_file_location("hf_hub_standin", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine_info():
    model = None
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ansible = subprocess.run(
        [PLAYBOOK_BIN, "--version"], capture_output=True, text=True, check=False, timeout=60
    ).stdout.splitlines()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible": ansible[0].strip() if ansible else None,
    }


def write_repos(base):
    """The model files and the stand-in's repositories; returns (spec, entries without revisions)."""
    files = os.path.join(base, "files")
    os.makedirs(files)
    repos, entries = [], []
    for name, quants in (("alpha", ((15, "Q4_K_M"), (7, "Q8_0"))), ("beta", ((7, "Q8_0"), (1, "F16")))):
        repo_files = {"README.md": {"text": f"# {name}-GGUF\nTwo quantizations of a tiny llama.\n"}}
        for file_type, label in quants:
            path = os.path.join(files, f"{name}-{label}.gguf")
            write_gguf(path, name=name, file_type=file_type, sparse=False)
            repo_files[f"{name}-{label}.gguf"] = {"path": path}
        repos.append({"id": f"bench/{name}-GGUF", "commits": [{"files": repo_files}]})
        entries.append(
            {
                "name": f"{name}-GGUF",
                "repo": f"bench/{name}-GGUF",
                "include": [f"*-{quants[0][1]}.gguf", "README.md"],
            }
        )
    for name, shards in (("gamma", 1), ("delta", 2)):
        directory = write_hf_dir(os.path.join(files, name), shards=shards)
        repo_files = {f: {"path": os.path.join(directory, f)} for f in sorted(os.listdir(directory))}
        repo_files["extra/notes.txt"] = {"text": f"{name}: a file in a subdirectory\n"}
        repos.append({"id": f"bench/{name}-hf", "commits": [{"files": repo_files}]})
        entries.append({"name": f"hf/{name}", "repo": f"bench/{name}-hf"})
    return {"repos": repos}, entries


def parse_json_output(stdout):
    """The ansible.posix.json callback's document (lines the action prints before it are skipped)."""
    start = stdout.find("{\n")
    while start >= 0:
        with contextlib.suppress(ValueError):
            return json.JSONDecoder().raw_decode(stdout[start:])[0]
        start = stdout.find("{\n", start + 1)
    return None


def seconds(duration):
    parse = datetime.datetime.fromisoformat
    return (
        parse(duration["end"].replace("Z", "+00:00")) - parse(duration["start"].replace("Z", "+00:00"))
    ).total_seconds()


def task_times(doc):
    """[(task name, seconds, items, skipped)] from the json callback's document."""
    rows = []
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            host = task.get("hosts", {}).get("localhost", {})
            results = host.get("results")
            items = len(results) if isinstance(results, list) else (0 if host.get("skipped") else 1)
            rows.append(
                (task["task"]["name"], seconds(task["task"]["duration"]), items, bool(host.get("skipped")))
            )
    return rows


class Playbook:
    """ansible-playbook on localhost with the role, in the scratch folder."""

    def __init__(self, scratch, store, endpoint):
        self.scratch, self.store, self.endpoint = scratch, store, endpoint
        with open(os.path.join(scratch, "play.yml"), "w", encoding="utf-8") as fh:
            fh.write(PLAY)
        with open(os.path.join(scratch, "inventory.ini"), "w", encoding="utf-8") as fh:
            fh.write(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
        self.env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            ANSIBLE_LOCAL_TEMP=os.path.join(scratch, "ansible-tmp"),
            ANSIBLE_REMOTE_TEMP=os.path.join(scratch, "ansible-tmp"),
        )

    def run(self, label, models):
        variables = {
            "model_store_path": self.store,
            "model_store_owner": pwd.getpwuid(os.getuid()).pw_name,
            "model_store_group": grp.getgrgid(os.getgid()).gr_name,
            "model_store_directories": [],
            "model_store_poll": 1,
            "model_store_hf_endpoint": self.endpoint,
            "model_store_models": models,
        }
        vars_file = os.path.join(self.scratch, f"vars-{label}.json")
        with open(vars_file, "w", encoding="utf-8") as fh:
            json.dump(variables, fh)
        argv = [PLAYBOOK_BIN, "-i", "inventory.ini", "-e", f"@{vars_file}", "play.yml"]
        load = os.getloadavg()[0]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        proc = subprocess.run(
            argv, cwd=self.scratch, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT, env=self.env
        )
        elapsed = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        doc = parse_json_output(proc.stdout)
        stats = (doc or {}).get("stats", {}).get("localhost")
        if proc.returncode != 0 or not stats or stats.get("failures") or stats.get("unreachable"):
            tail = (proc.stdout + proc.stderr)[-6000:]
            raise SystemExit(f"the {label} playbook failed (rc={proc.returncode}):\n{tail}")
        return {
            "seconds": elapsed,
            "cpu_seconds": cpu,
            "load": (round(load, 2), round(os.getloadavg()[0], 2)),
            "changed": stats.get("changed", 0),
            "tasks": task_times(doc),
        }


def role_tasks(second, baseline):
    """The role's tasks, second run beside baseline (same order; the json callback names them)."""
    base = {}
    for name, secs, items, skipped in baseline["tasks"]:
        base.setdefault(name, (secs, items, skipped))
    rows = []
    for name, secs, items, skipped in second["tasks"]:
        b = base.get(name, (0.0, 0, True))
        rows.append(
            {
                "task": name,
                "second_seconds": round(secs, 3),
                "second_items": items,
                "baseline_seconds": round(b[0], 3),
                "baseline_items": b[1],
                "extra_seconds": round(secs - b[0], 3),
                "per_item_seconds": round(secs / items, 3) if items and not skipped else None,
            }
        )
    return rows


def write_results(out, result):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "store.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)
        fh.write("\n")
    m, t = result["machine"], result["target"]
    lines = [
        "# Model store benchmark: the second run over complete repositories",
        "",
        "`.venv/bin/python benchmarks/bench_store.py` (`make bench`): the model_store role by "
        f"ansible-playbook on localhost (local connection) over {result['repositories']} Hugging Face "
        f"repository entries ({result['files']} files: GGUF with `include` taking one of two "
        "quantizations, safetensors, small files checked by git blob id) served by the Hub stand-in on "
        f"loopback. First run fetches; then the second run and the baseline (empty `model_store_models`), "
        f"alternating, best of {result['runs']} each.",
        "",
        "| measure | value | target |",
        "| --- | ---: | ---: |",
        f"| first run (fetches everything) | {result['first_run_seconds']:.2f} s | |",
        f"| second run | {result['second_run_seconds']:.2f} s | |",
        f"| baseline (no entries) | {result['baseline_seconds']:.2f} s | |",
        f"| per repository, (second - baseline) / {result['repositories']} | "
        f"{result['per_repository_seconds']:.3f} s | < {t['per_repository_seconds']:.0f} s |",
        f"| requests to the Hub and its CDN, all second runs | {result['second_run_requests']} | 0 |",
        f"| changed tasks on the second runs | {result['second_run_changed']} | 0 |",
        f"| CPU time of ansible-playbook and its children, second run / baseline | {result['second_run_cpu_seconds']:.2f} s / "
        f"{result['baseline_cpu_seconds']:.2f} s | |",
        f"| CPU time per repository | {result['per_repository_cpu_seconds']:.3f} s | |",
        "",
        "The role's tasks, best second run beside the best baseline (ansible.posix.json callback; "
        "a task's time runs from its start to its last result; 1-min load average before/after each "
        f"run: second {result['load_average_1min']['second']}, baseline {result['load_average_1min']['baseline']}):",
        "",
        "| task | second run | items | baseline | items | extra | per item |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["tasks"]:
        per = "" if row["per_item_seconds"] is None else f"{row['per_item_seconds']:.3f} s"
        lines.append(
            f"| {row['task']} | {row['second_seconds']:.3f} s | {row['second_items']} | "
            f"{row['baseline_seconds']:.3f} s | {row['baseline_items']} | {row['extra_seconds']:+.3f} s | {per} |"
        )
    lines += [
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['machine']}, kernel {m['kernel']}, Python {m['python']}, "
        f"{m['ansible']}. Target {'met' if result['met'] else 'MISSED'}.",
        "",
    ]
    with open(os.path.join(out, "store.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="second runs and baseline runs (best of each)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    if not os.path.exists(PLAYBOOK_BIN):
        raise SystemExit(f"{PLAYBOOK_BIN} is missing (make venv)")
    standin = load_standin()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as scratch:
        spec, entries = write_repos(scratch)
        spec_path = os.path.join(scratch, "repos.json")
        with open(spec_path, "w", encoding="utf-8") as fh:
            json.dump(spec, fh)
        hub = standin.Hub(standin.load_repos(spec_path))
        endpoint = hub.start()
        try:
            models = [dict(e, revision=hub.repos[e["repo"]].refs["main"]) for e in entries]
            play = Playbook(scratch, os.path.join(scratch, "store"), endpoint)
            print(f"first run: {len(models)} repositories from {endpoint}", file=sys.stderr)
            first = play.run("first", models)
            files = sum(1 for _, _, names in os.walk(play.store) for _ in names) - sum(
                1 for _, _, names in os.walk(os.path.join(play.store, ".model_store")) for _ in names
            )
            first_requests = len(hub.lines)
            hub.lines.clear()
            seconds_runs, baseline_runs, requests = [], [], []
            for i in range(args.runs):
                order = (
                    (("second", models), ("baseline", []))
                    if i % 2 == 0
                    else (("baseline", []), ("second", models))
                )
                for label, entry_list in order:
                    print(f"{label} run {i + 1}/{args.runs}", file=sys.stderr)
                    before = len(hub.lines)
                    run = play.run(label, entry_list)
                    if label == "second":
                        requests.append(len(hub.lines) - before)
                        seconds_runs.append(run)
                    else:
                        baseline_runs.append(run)
            request_lines = list(hub.lines)
        finally:
            hub.stop()
    second = min(seconds_runs, key=lambda r: r["seconds"])
    baseline = min(baseline_runs, key=lambda r: r["seconds"])
    per_repo = (second["seconds"] - baseline["seconds"]) / len(models)
    changed = sum(r["changed"] for r in seconds_runs)
    result = {
        "repositories": len(models),
        "files": files,
        "entries": models,
        "runs": args.runs,
        "first_run_seconds": round(first["seconds"], 3),
        "first_run_requests": first_requests,
        "second_run_seconds": round(second["seconds"], 3),
        "second_run_all_seconds": [round(r["seconds"], 3) for r in seconds_runs],
        "second_run_cpu_seconds": round(second["cpu_seconds"], 3),
        "baseline_seconds": round(baseline["seconds"], 3),
        "baseline_all_seconds": [round(r["seconds"], 3) for r in baseline_runs],
        "baseline_cpu_seconds": round(baseline["cpu_seconds"], 3),
        "per_repository_cpu_seconds": round(
            (second["cpu_seconds"] - baseline["cpu_seconds"]) / len(models), 3
        ),
        "load_average_1min": {
            "second": [r["load"] for r in seconds_runs],
            "baseline": [r["load"] for r in baseline_runs],
        },
        "per_repository_seconds": round(per_repo, 3),
        "second_run_requests": sum(requests),
        "second_run_requests_each": requests,
        "second_run_request_lines": request_lines[:20],
        "second_run_changed": changed,
        "target": {"per_repository_seconds": TARGET_SECONDS_PER_REPO, "requests": 0},
        "met": per_repo < TARGET_SECONDS_PER_REPO and sum(requests) == 0,
        "tasks": role_tasks(second, baseline),
        "machine": machine_info(),
    }
    write_results(args.out, result)
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("tasks", "entries")}, indent=2, sort_keys=True
        )
    )
    for row in result["tasks"]:
        print(
            f"  {row['extra_seconds']:+7.3f} s  {row['second_seconds']:7.3f} s ({row['second_items']} items)"
            f"  vs {row['baseline_seconds']:7.3f} s  {row['task']}"
        )
    if not result["met"]:
        print(
            f"TARGET MISSED: {per_repo:.3f} s per repository (target < {TARGET_SECONDS_PER_REPO:.0f} s), "
            f"{sum(requests)} requests on the second runs (target 0)",
            file=sys.stderr,
        )
    if changed:
        print(f"NOTE: the second runs changed {changed} tasks over a complete store", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
