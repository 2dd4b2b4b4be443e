"""Every run plans a host from the facts it reports now.

The lab inventory and a real site's inventory use the same host names, and a rebuilt or
rebooted host comes back with a new OS, kernel and addresses. Facts kept between runs
would plan a real `workstation` from the lab container's facts, or a rebuilt host from
the old machine's. These tests read the project's configuration, then run the project's
plays against localhost (connection local) after an earlier run reported other facts for
the same host name, and check that the plays saw the live ones.
"""

import json
import os
import platform
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
PLAYBOOKS = [os.path.join(ROOT, "site.yml")] + [
    os.path.join(ROOT, "playbooks", name)
    for name in sorted(os.listdir(os.path.join(ROOT, "playbooks")))
    if name.endswith(".yml")
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(BIN, "ansible-playbook")), reason="ansible-playbook not installed"
)

# What the lab's container reported for `workstation`: nothing this machine can report.
LAB_FACTS = {
    "distribution": "LabContainerOS",
    "distribution_major_version": "0",
    "os_family": "LabContainerOS",
    "kernel": "0.0.0-lab-container",
    "architecture": "lab-arch",
    "default_ipv4": {"address": "10.254.0.2"},
    "memtotal_mb": 7,
}

LAB_RUN = """---
- name: Converge the lab's workstation
  hosts: workstation
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Report the facts of the lab container
      fake_os_facts:
        facts: "{{ lab_facts }}"
"""

RECORD_PLAY = {
    "name": "Record the facts the run planned from",
    "hosts": "workstation",
    "gather_facts": False,
    "tasks": [
        {
            "name": "Write the facts on the controller",
            "ansible.builtin.copy": {
                "content": (
                    "{{ ansible_facts | dict2items | selectattr('key', 'in', record_keys)"
                    " | items2dict | to_json }}"
                ),
                "dest": "{{ record_path }}",
                "mode": "0644",
            },
            "check_mode": False,
        }
    ],
}


def ansible_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        # Had the project kept a file cache, it would be this one: away from the checkout.
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "fact-cache"),
        ANSIBLE_LIBRARY=os.pathsep.join(
            [
                os.path.join(ROOT, "plugins", "modules"),
                os.path.join(ROOT, "tests", "unit", "gpu_driver_library"),
            ]
        ),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
    )
    env.update(extra)
    return env


def write_inventory(directory, store):
    directory.mkdir(parents=True, exist_ok=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "vars": {"model_store": {"mount_path": str(store)}, "gpu_vendor": "none", "model_instances": []},
            "hosts": {"workstation": host},
            "children": {"model_hosts": {"hosts": {"workstation": {}}}},
        }
    }
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return str(directory / "hosts.yml")


def run_playbook(tmp_path, inventory, playbook, *args):
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory, *args, str(playbook)],
        cwd=ROOT,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def load_plays(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


def site_preflight():
    """site.yml's first play: it plans every host before anything changes."""
    preflight = load_plays(os.path.join(ROOT, "site.yml"))[0]
    assert preflight.get("tasks") and preflight["gather_facts"] is False, preflight
    return preflight


def live_memtotal_mb():
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_ansible_cfg_keeps_facts_for_one_run_and_asks_each_host_once_per_run():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-config"), "dump", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    settings = {item["name"]: item["value"] for item in json.loads(proc.stdout) if "name" in item}
    # memory is the only cache plugin whose facts end with the run.
    assert settings["CACHE_PLUGIN"] == "memory", settings["CACHE_PLUGIN"]
    # smart skips gathering for a host whose facts were gathered (play_iterator.py: the
    # _ansible_facts_gathered mark the gather_facts action sets); with the memory cache that
    # mark, like the facts, ends with the run, so a run never reuses another run's facts
    # (test_plan_sees_live_facts_after_a_run_reported_others runs the plays to prove it).
    assert settings["DEFAULT_GATHERING"] == "smart", settings["DEFAULT_GATHERING"]


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=os.path.basename)
def test_plays_that_apply_roles_gather_facts(playbook):
    """A play that changes hosts through roles asks them for their facts first."""
    for play in load_plays(playbook):
        if not play.get("roles"):
            continue
        assert play.get("gather_facts", True) is True, f"{playbook}: {play['name']}"


@pytest.mark.parametrize("inventory_name", ["example", "lab"], ids=["other-inventory", "rebuilt-host"])
@pytest.mark.parametrize("plan", ["site-preflight", "instances-play"])
def test_plan_sees_live_facts_after_a_run_reported_others(tmp_path, inventory_name, plan):
    """After the lab run reported the container's facts for `workstation`, a run with
    another inventory (or the same one, once the host was rebuilt) plans from the facts
    the host reports now."""
    store = tmp_path / "store"
    store.mkdir()
    lab_inventory = write_inventory(tmp_path / "inventory" / "lab", store)
    inventory = write_inventory(tmp_path / "inventory" / inventory_name, store)

    lab_playbook = tmp_path / "lab.yml"
    lab_playbook.write_text(LAB_RUN)
    (tmp_path / "lab_facts.json").write_text(json.dumps({"lab_facts": LAB_FACTS}))
    run_playbook(tmp_path, lab_inventory, lab_playbook, "-e", "@" + str(tmp_path / "lab_facts.json"))

    if plan == "site-preflight":
        plays = [site_preflight(), RECORD_PLAY]
    else:
        plays = [
            {"ansible.builtin.import_playbook": os.path.join(ROOT, "playbooks", "instances.yml")},
            RECORD_PLAY,
        ]
    playbook = tmp_path / "plan.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    record = tmp_path / "seen.json"
    extra = {"record_path": str(record), "record_keys": sorted(LAB_FACTS)}
    (tmp_path / "record.json").write_text(json.dumps(extra))
    run_playbook(tmp_path, inventory, playbook, "--check", "-e", "@" + str(tmp_path / "record.json"))

    seen = json.loads(record.read_text())
    assert seen.get("kernel") == platform.release(), seen
    assert seen.get("distribution") not in (None, LAB_FACTS["distribution"]), seen
    assert seen.get("architecture") == platform.machine(), seen
    assert seen.get("memtotal_mb") == live_memtotal_mb(), seen
    assert (seen.get("default_ipv4") or {}).get("address") != LAB_FACTS["default_ipv4"]["address"], seen
