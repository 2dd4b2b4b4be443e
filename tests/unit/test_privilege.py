"""Every play that touches a host escalates; nothing on the controller does.

A real site connects as an ordinary user (the lab connects as root, where become
changes nothing): a play without ``become: true`` fails there on its first apt,
systemd or /etc task, and the preflight's port probe sees no other user's processes.
"""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ("site.yml", "playbooks/plan.yml", "playbooks/verify.yml")


def _plays(path, seen=None):
    seen = seen if seen is not None else set()
    if path in seen:
        return
    seen.add(path)
    for play in yaml.safe_load(path.read_text()) or []:
        target = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if target:
            yield from _plays((path.parent / target).resolve(), seen)
        else:
            yield path.relative_to(ROOT), play


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if any(k in node for k in ("delegate_to", "become")) and "name" in node:
            yield node
        for key in ("tasks", "block", "rescue", "always", "pre_tasks", "post_tasks", "handlers"):
            if key in node:
                yield from _tasks(node[key])


def test_every_play_on_managed_hosts_becomes_root():
    missing = []
    for path, play in {id(p): (f, p) for e in ENTRY_POINTS for f, p in _plays(ROOT / e)}.values():
        if play.get("hosts") in ("localhost", "127.0.0.1"):
            continue
        only_group_by = all("ansible.builtin.group_by" in t for t in play.get("tasks", [])) and not play.get(
            "roles"
        )
        if only_group_by:
            continue  # runs on the controller
        if play.get("become") is not True:
            missing.append(f"{path}: {play.get('name')}")
    assert not missing, f"plays without become: true: {missing}"


def test_tasks_delegated_to_the_controller_do_not_escalate():
    wrong = []
    files = list((ROOT / "playbooks").glob("*.yml")) + list(ROOT.glob("roles/*/tasks/*.yml"))
    for path in files:
        for task in _tasks(yaml.safe_load(path.read_text())):
            if task.get("delegate_to") == "localhost" and task.get("become") is not False:
                wrong.append(f"{path.relative_to(ROOT)}: {task['name']}")
    assert not wrong, f"controller tasks that would run sudo on the controller: {wrong}"
