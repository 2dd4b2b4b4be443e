"""roles/gpu_driver/tasks/reboot.yml: the pending handlers run before a reboot, and the GPU
hosts reboot one at a time.

The order is what ansible-playbook records for two inventory hosts on localhost in check
mode (the reboot block itself is skipped in check mode, so nothing reboots); the throttle
is read from the task file.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
# reboot.yml includes reboot_now.yml (the reboot and the second look) only when it reboots.
REBOOT_TASKS = os.path.join(ROOT, "roles", "gpu_driver", "tasks", "reboot_now.yml")
HANDLER = "Rebuild initramfs"
REBOOT = "Reboot once and look again"
REBOOT_TASK = "Reboot the host for the new driver"
HOSTS = ("gpu-a", "gpu-b")

pytestmark = pytest.mark.skipif(
    not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python"
)

# A host whose nouveau blacklist was just written: nouveau is still loaded, so a reboot is
# needed, and the blacklist task has notified the initramfs rebuild.
PLAYBOOK = """
- name: Apply the reboot policy after the nouveau blacklist changed
  hosts: all
  gather_facts: false
  vars:
    gpu_driver_reboot_allowed: true
    gpu_driver_reboot_timeout: 900
    gpu_driver_kernel_module_status: built
    __gpu_driver_vendor: nvidia
    __gpu_driver_module: nvidia
    __gpu_driver_module_loaded: false
    __gpu_driver_loaded_version: ""
    __gpu_driver_installed_version: "535.247.01"
    __gpu_driver_nouveau_loaded: true
    __gpu_driver_gpu_present: true
  tasks:
    - name: Stand in for the role's nouveau blacklist task, which notifies the rebuild
      ansible.builtin.debug:
        msg: blacklist written
      changed_when: true
      notify: Rebuild initramfs

    - name: Run the reboot policy
      ansible.builtin.import_role:
        name: gpu_driver
        tasks_from: reboot.yml
"""


def converge(tmp_path):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.ini").write_text(
        "".join(
            f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}\n" for host in HOSTS
        )
    )
    (tmp_path / "ansible.cfg").write_text(
        f"[defaults]\nroles_path = {ROOT}/roles\nfilter_plugins = {ROOT}/plugins/filter\nlookup_plugins = {ROOT}/plugins/lookup\naction_plugins = {ROOT}/plugins/action\n"
        "stdout_callback = ansible.posix.json\nlocalhost_warning = false\nforks = 10\n"
    )
    # Should check mode ever stop holding the handler back, no initrd of this machine is
    # touched: a stand-in update-initramfs comes first on PATH and only records the call.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standin = bin_dir / "update-initramfs"
    standin.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/update-initramfs.calls\n')
    standin.chmod(0o755)
    proc = subprocess.run(
        [PLAYBOOK_BIN, "--check", "-i", "hosts.ini", "play.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(
            os.environ,
            ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
            ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
            ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"),
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        ),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    return [(t["task"]["name"], t["hosts"]) for play in out["plays"] for t in play["tasks"]]


def position(order, name, host):
    return next(i for i, (task, hosts) in enumerate(order) if task.endswith(name) and host in hosts)


def test_the_initramfs_rebuild_runs_before_the_reboot(tmp_path):
    order = converge(tmp_path)
    for host in HOSTS:
        assert position(order, HANDLER, host) < position(order, REBOOT, host), order
    # The reboot was decided for every host, and only check mode held it back.
    report = next(hosts for task, hosts in order if task.endswith("Report why a reboot is needed"))
    assert all("reboot required: the nouveau module" in report[host]["msg"] for host in HOSTS), report
    reboot = next(hosts for task, hosts in order if task.endswith(REBOOT))
    assert all(reboot[host].get("skipped") for host in HOSTS), reboot
    assert not (tmp_path / "update-initramfs.calls").exists()


def _find(tasks, name):
    for task in tasks:
        if task.get("name") == name:
            return task
        for key in ("block", "rescue", "always"):
            found = _find(task.get(key, []), name)
            if found:
                return found
    return None


def test_the_hosts_reboot_one_at_a_time():
    with open(REBOOT_TASKS, encoding="utf-8") as fh:
        tasks = yaml.safe_load(fh)
    reboot = _find(tasks, REBOOT_TASK)
    assert reboot is not None and "ansible.builtin.reboot" in reboot
    assert reboot.get("throttle") == 1
