"""roles/ollama/tasks/digest.yml against localhost: the model is hashed once, then its stamp is trusted."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
HASH_TASK = "ollama : Hash the model when its stamp does not match, instance chat"

pytestmark = [
    pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the stamp is written owned by root"),
]

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Run the digest tasks
      ansible.builtin.include_role:
        name: ollama
        tasks_from: digest.yml
      vars:
        __ollama_instance: {name: chat, model: "%(model)s"}
        ollama_instances_dir: "%(instances)s"
    - name: Report the digest
      ansible.builtin.debug:
        msg: "{{ __ollama_model_sha256 }}"
"""


@pytest.fixture
def work(tmp_path):
    (tmp_path / "instances" / "chat").mkdir(parents=True)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + os.urandom(4096))
    (tmp_path / "play.yml").write_text(PLAYBOOK % {"model": model, "instances": tmp_path / "instances"})
    (tmp_path / "ansible.cfg").write_text(
        f"[defaults]\nroles_path = {ROOT}/roles\nstdout_callback = ansible.builtin.json\n"
        "localhost_warning = false\n"
    )
    return tmp_path


def converge(work):
    proc = subprocess.run(
        [
            PLAYBOOK_BIN,
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "play.yml",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, ANSIBLE_CONFIG=str(work / "ansible.cfg")),
    )
    out = json.loads(proc.stdout)
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for play in out["plays"] for t in play["tasks"]}
    return proc.returncode, tasks, out["stats"]["localhost"]


def stamp(work):
    return json.loads((work / "instances" / "chat" / "model-digest.json").read_text())


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_run_hashes_and_stamps_then_the_stamp_is_trusted(work):
    model = work / "model.gguf"
    rc, tasks, stats = converge(work)
    assert rc == 0
    assert not tasks[HASH_TASK].get("skipped")
    assert tasks["Report the digest"]["msg"] == sha256(model)
    st = os.stat(model)
    assert stamp(work) == {
        "path": str(model),
        "size": st.st_size,
        "mtime": pytest.approx(st.st_mtime, abs=1e-5),
        "inode": st.st_ino,
        "sha256": sha256(model),
    }
    assert stats["changed"] == 1

    rc, tasks, stats = converge(work)
    assert rc == 0
    assert tasks[HASH_TASK].get("skipped") is True
    assert tasks["Report the digest"]["msg"] == sha256(model)
    assert stats["changed"] == 0


def test_a_changed_model_is_hashed_again(work):
    model = work / "model.gguf"
    assert converge(work)[0] == 0
    old = sha256(model)
    st = os.stat(model)
    model.write_bytes(b"GGUF" + os.urandom(4096))  # same size, new content
    os.utime(model, (st.st_atime, st.st_mtime + 10))
    rc, tasks, stats = converge(work)
    assert rc == 0
    assert not tasks[HASH_TASK].get("skipped")
    assert tasks["Report the digest"]["msg"] == sha256(model) != old
    assert stamp(work)["sha256"] == sha256(model)
    assert stats["changed"] == 1


@pytest.mark.parametrize(
    "text", ["not json at all", '{"sha256": "abc"', "[1, 2]", '{"sha256": "%s"}' % ("0" * 64)]
)
def test_a_broken_or_foreign_stamp_counts_as_none(work, text):
    (work / "instances" / "chat" / "model-digest.json").write_text(text)
    rc, tasks, _ = converge(work)
    assert rc == 0
    assert not tasks[HASH_TASK].get("skipped")
    assert tasks["Report the digest"]["msg"] == sha256(work / "model.gguf")
    assert stamp(work)["sha256"] == sha256(work / "model.gguf")


def test_a_missing_model_fails_naming_the_instance_and_path(work):
    (work / "model.gguf").unlink()
    rc, tasks, _ = converge(work)
    assert rc != 0
    msg = tasks["ollama : Fail when the model is missing, instance chat"]["msg"]
    assert "Ollama instance chat" in msg and str(work / "model.gguf") in msg
