"""nfs_server refuses to add ufw rules while ufw is disabled: they would never apply.

Runs the role's firewall tasks on localhost with a stand-in ``ufw`` first on PATH that
prints what ufw's own ``status`` command prints (``Status: inactive`` / ``Status: active``,
ufw's src/ufw-frontend ``status`` output), so nothing on this machine is touched.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def run_firewall(tmp_path, ufw_status):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ufw"
    # Any rule call would be a bug in this test: the role must stop before it.
    fake.write_text(f'#!/bin/sh\n[ "$1" = status ] && {{ echo "{ufw_status}"; exit 0; }}\nexit 99\n')
    fake.chmod(0o755)
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "environment": {"PATH": f"{bindir}:{os.environ['PATH']}"},
            "vars": {
                "ansible_python_interpreter": sys.executable,
                "nfs_server_firewall": "ufw",
                "nfs_server_versions": [4],
                "nfs_server_mountd_port": 20048,
                "__nfs_server_nft_file": "/nonexistent",
                "__nfs_server_exports": [],
                "__nfs_server_ports": [2049],
            },
            "tasks": [
                {
                    "ansible.builtin.include_tasks": os.path.join(
                        ROOT, "roles/nfs_server/tasks/firewall.yml"
                    ),
                }
            ],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    return subprocess.run(
        [PLAYBOOK_BIN, "-i", "localhost,", "-c", "local", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false"),
    )


def test_disabled_ufw_is_refused_naming_the_host_and_the_variable(tmp_path):
    proc = run_firewall(tmp_path, "Status: inactive")
    assert proc.returncode != 0
    assert "localhost: nfs_server_firewall is ufw, but ufw is not enabled (Status: inactive)" in proc.stdout


def test_enabled_ufw_passes_the_check(tmp_path):
    proc = run_firewall(tmp_path, "Status: active")
    # With no exports there are no rules to add: the check alone runs, and passes.
    assert proc.returncode == 0, proc.stdout + proc.stderr
