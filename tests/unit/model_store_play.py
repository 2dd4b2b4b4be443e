"""Run the model_store role against localhost and the Hugging Face Hub stand-in, for the
repository tests (test_model_store_repo*.py)."""

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

needs_playbook = [
    pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("curl", "flock", "setsid", "sha1sum", "dpkg-query")),
        reason="curl, flock, setsid, sha1sum and dpkg-query are needed",
    ),
    # The role keeps its stamp directory owned by root, as on a store server.
    pytest.mark.skipif(os.geteuid() != 0, reason="the role chowns its stamp directory to root"),
]

PLAY = """
- name: Keep the model store
  hosts: localhost
  gather_facts: false
  roles:
    - role: model_store
"""


class Store:
    def __init__(self, tmp_path, hub):
        self.tmp, self.hub = tmp_path, hub
        self.path = tmp_path / "store"
        (tmp_path / "play.yml").write_text(PLAY)

    def run(self, models, check=False, **extra):
        variables = {
            "model_store_path": str(self.path),
            "model_store_owner": pwd.getpwuid(os.getuid()).pw_name,
            "model_store_group": grp.getgrgid(os.getgid()).gr_name,
            "model_store_directories": [],
            "model_store_poll": 1,
            "model_store_hf_endpoint": self.hub.endpoint,
            "model_store_models": models,
            **extra,
        }
        (self.tmp / "vars.json").write_text(json.dumps(variables))
        self.hub.lines.clear()
        proc = subprocess.run(
            [PLAYBOOK_BIN, "-i", "localhost,", "-c", "local", "-e", "@vars.json", "-e"]
            + [f"ansible_python_interpreter={sys.executable}", "play.yml"]
            + (["--check"] if check else []),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(
                os.environ,
                ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                ANSIBLE_NOCOLOR="1",
                ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-tmp"),
                ANSIBLE_REMOTE_TEMP=str(self.tmp / "ansible-tmp"),
            ),
        )
        recap = re.search(
            r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout
        )
        assert recap, proc.stdout + proc.stderr
        self.output = proc.stdout + proc.stderr
        return {"changed": int(recap.group(2)), "failed": int(recap.group(3))}

    def files(self, name):
        base = self.path / name
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def commit_of(hub, repo="ailab/tiny-gguf", ref="main"):
    return hub.repos[repo].refs[ref]


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()
