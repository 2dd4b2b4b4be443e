"""Drive playbooks against the lab through ansible-runner and look at the hosts.

Tests read per-task events and the play recap from ansible-runner rather than
scraping ansible-playbook's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_INVENTORY = REPO / "inventory" / "lab"
VENV_BIN = REPO / ".venv" / "bin"

# What a lab snapshot hashes on every host: the files the toolkit manages.
SNAPSHOT_PATHS = (
    "/etc/systemd/system",
    "/etc/exports.d",
    "/etc/fstab",
    "/etc/ganesha",
    "/etc/modprobe.d",
    "/etc/apt/sources.list.d",
    "/etc/ailab",
    "/opt/ailab",
    "/srv/ailab",
    "/var/lib/ailab",
    "/media/data/models",
    "/srv/models",
)


@dataclass
class Run:
    """The outcome of one playbook run."""

    rc: int
    status: str
    stats: dict
    events: list = field(repr=False)
    stdout: str = field(repr=False, default="")

    def changed_tasks(self, host: str | None = None) -> list[tuple[str, str]]:
        """(host, task name) of every task result that reported a change."""
        out = []
        for ev in self.events:
            if ev.get("event") != "runner_on_ok":
                continue
            data = ev.get("event_data", {})
            if host is not None and data.get("host") != host:
                continue
            if data.get("res", {}).get("changed"):
                out.append((data.get("host"), data.get("task")))
        return out

    def failures(self) -> list[dict]:
        """event_data of every failed task (not ignored)."""
        return [
            ev["event_data"]
            for ev in self.events
            if ev.get("event") in ("runner_on_failed", "runner_on_unreachable")
            and not ev.get("event_data", {}).get("ignore_errors")
        ]

    def failure_messages(self) -> str:
        msgs = []
        for data in self.failures():
            res = data.get("res", {})
            msgs.append(f"{data.get('host')}: {data.get('task')}: {res.get('msg', '')}")
        return "\n".join(msgs)

    def changed_count(self, host: str | None = None) -> int:
        per_host = self.stats.get("changed", {}) if self.stats else {}
        if host is None:
            return sum(per_host.values())
        return per_host.get(host, 0)

    def tasks_per_host(self) -> dict:
        """Number of task results (ok + changed + skipped + failed) per host."""
        counts: dict = {}
        for ev in self.events:
            if ev.get("event") in ("runner_on_ok", "runner_on_skipped", "runner_on_failed"):
                host = ev["event_data"].get("host")
                counts[host] = counts.get(host, 0) + 1
        return counts


def run_playbook(
    playbook: str,
    *,
    inventory: str | list | None = None,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    diff: bool = False,
    extravars: dict | None = None,
    envvars: dict | None = None,
    timeout: int = 3600,
) -> Run:
    """Run a playbook of this repository and return its outcome."""
    cmdline = []
    if tags:
        cmdline += ["--tags", tags]
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        **(envvars or {}),
    }
    with tempfile.TemporaryDirectory(prefix="ailab-runner-") as pdd:
        runner = ansible_runner.run(
            private_data_dir=pdd,
            project_dir=str(REPO),
            playbook=str(REPO / playbook),
            inventory=inventory if inventory is not None else str(LAB_INVENTORY),
            limit=limit,
            cmdline=" ".join(cmdline) or None,
            extravars=extravars or {},
            envvars=env,
            quiet=True,
            timeout=timeout,
            suppress_env_files=True,
        )
        events = list(runner.events)
        stdout = runner.stdout.read() if runner.stdout else ""
        return Run(rc=runner.rc, status=runner.status, stats=runner.stats or {}, events=events, stdout=stdout)


def lab_hosts() -> dict:
    """inventory host name -> container name, for the lab inventory."""
    out = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(LAB_INVENTORY), "--list"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    data = json.loads(out.stdout)
    hostvars = data["_meta"]["hostvars"]
    return {name: vars_.get("ansible_host", name) for name, vars_ in hostvars.items()}


def host_exec(container: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, *argv], check=check, capture_output=True, text=True)


# Unit name prefixes (an awk alternation) whose state is not the toolkit's doing: see snapshot().
OWN_CLOCK_UNITS = "systemd-|apt-daily|dpkg-db-backup|e2scrub|fstrim|man-db|logrotate"


def snapshot(containers) -> dict:
    """File checksums under SNAPSHOT_PATHS and every unit's state, per container.

    Units the toolkit neither writes nor starts, whose state moves on its own clock, are
    left out (``OWN_CLOCK_UNITS``): systemd's boot units record how the container booted
    (``systemd-modules-load.service`` failed on one boot of the lab image and succeeded on
    the next in CI, with nothing of ours between), and Debian's timers fire while the tests
    run (``apt-daily-upgrade.timer`` went from ``waiting`` to ``running`` between two
    snapshots in CI, and its service runs for a while after).
    """
    script = (
        "for p in " + " ".join(SNAPSHOT_PATHS) + "; do "
        '[ -e "$p" ] && find "$p" -xdev -type f -size -64M -print0 2>/dev/null '
        "| sort -z | xargs -0 -r sha256sum; "
        "done; "
        "systemctl list-units --all --no-legend --plain --no-pager "
        f"| awk '$1 !~ /^({OWN_CLOCK_UNITS})/ {{print \"unit\", $1, $3, $4}}'"
    )
    return {c: host_exec(c, "sh", "-c", script).stdout for c in containers}


def write_overlay_inventory(tmpdir: Path, host_vars: dict | None = None, group_vars: dict | None = None):
    """Inventory sources: the lab, then an overlay whose vars win (a temporary change)."""
    overlay = Path(tmpdir) / "overlay"
    (overlay / "host_vars").mkdir(parents=True, exist_ok=True)
    (overlay / "group_vars").mkdir(parents=True, exist_ok=True)
    hosts = {"all": {"hosts": {h: None for h in (host_vars or {})}}}
    (overlay / "hosts.yml").write_text(yaml.safe_dump(hosts))
    for host, vars_ in (host_vars or {}).items():
        (overlay / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(vars_))
    for group, vars_ in (group_vars or {}).items():
        (overlay / "group_vars" / f"{group}.yml").write_text(yaml.safe_dump(vars_))
    return [str(LAB_INVENTORY), str(overlay)]
