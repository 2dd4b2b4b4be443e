"""A test's playbook run by the real ansible-playbook on this machine (connection local).

The project's modules and plugins are on Ansible's paths (as ansible.cfg puts them) and
the project's ansible.cfg is not read (its callbacks print to stdout).
"""

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def run_local(cwd, playbook="p.yml", hosts="localhost,", timeout=300, **env):
    """Run ``playbook`` in ``cwd`` against ``hosts`` (all local); assert it succeeds."""
    full = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    full.update(
        ANSIBLE_LIBRARY=os.path.join(ROOT, "plugins", "modules"),
        ANSIBLE_ACTION_PLUGINS=os.path.join(ROOT, "plugins", "action"),
        ANSIBLE_LOOKUP_PLUGINS=os.path.join(ROOT, "plugins", "lookup"),
        ANSIBLE_FILTER_PLUGINS=os.path.join(ROOT, "plugins", "filter"),
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    full.update(env)
    cmd = [
        PLAYBOOK_BIN,
        "-i",
        hosts,
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        playbook,
    ]
    proc = subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc
