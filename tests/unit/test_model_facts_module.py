"""Tests for plugins/modules/model_facts.py through AnsibleModule and the ansible CLI."""

import json
import os
import shutil
import subprocess

import model_facts
import pytest
from fixtures_models import params_of, tiny_tensors, write_gguf
from module_run import run_main

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run_module(args, check_mode=False):
    """Run main() with ``args``; return its exit code (the result is on stdout)."""
    return run_main(model_facts.main, args, check_mode)


@pytest.fixture
def captured(capsys):
    def read():
        return json.loads(capsys.readouterr().out)

    return read


@pytest.fixture
def gguf_file(tmp_path):
    return write_gguf(tmp_path / "Llama-3.1-8B-Instruct-Q4_K_M.gguf", name="Llama 3.1 8B Instruct")[0]


def test_path_returns_model_and_models_keyed_by_the_path_and_changes_nothing(gguf_file, captured):
    assert run_module({"path": gguf_file}) == 0
    out = captured()
    assert out["changed"] is False
    assert out["model"]["format"] == "gguf"
    assert out["model"]["params"] == params_of(tiny_tensors())
    assert out["models"] == {gguf_file: out["model"]}


def test_paths_inspects_each_and_a_bad_path_does_not_fail_the_task(gguf_file, tmp_path, captured):
    missing = str(tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"nope" * 8)
    assert run_module({"paths": [gguf_file, missing, str(bad)]}) == 0
    out = captured()
    assert "failed" not in out and "model" not in out
    assert set(out["models"]) == {gguf_file, missing, str(bad)}
    assert out["models"][gguf_file]["complete"] is True
    assert out["models"][missing]["error"] == f"{missing} does not exist"
    assert out["models"][missing]["format"] == "unknown" and out["models"][missing]["complete"] is False
    assert "bad magic" in out["models"][str(bad)]["error"]


def test_records_are_read_beside_the_models_and_a_missing_one_is_null(gguf_file, tmp_path, captured):
    record = tmp_path / "repo.json"
    record.write_text(json.dumps({"repo": "org/m", "commit": "1" * 40}))
    (tmp_path / "broken.json").write_text("{")
    names = [str(record), str(tmp_path / "absent.json"), str(tmp_path / "broken.json")]
    assert run_module({"paths": [gguf_file], "records": names}) == 0
    out = captured()
    assert out["records"] == {names[0]: {"repo": "org/m", "commit": "1" * 40}, names[1]: None, names[2]: None}
    assert run_module({"path": gguf_file}) == 0
    assert captured()["records"] == {}


def test_path_as_given_is_the_key_even_with_a_tilde(monkeypatch, tmp_path, captured):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_gguf(tmp_path / "m.gguf")
    assert run_module({"path": "~/m.gguf"}) == 0
    out = captured()
    assert list(out["models"]) == ["~/m.gguf"]
    assert out["model"]["complete"] is True and out["model"]["path"] == "~/m.gguf"


def test_check_mode_inspects_exactly_as_a_normal_run(gguf_file, captured):
    assert run_module({"path": gguf_file}, check_mode=True) == 0
    checked = captured()
    assert run_module({"path": gguf_file}) == 0
    normal = captured()
    assert checked["changed"] is False
    assert checked["model"] == normal["model"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "one of the following is required: path, paths"),
        ({"path": "/a", "paths": ["/b"]}, "mutually exclusive: path|paths"),
        ({"paths": []}, "paths must list at least one path"),
        ({"paths": ["/a", ""]}, "paths must not hold empty entries"),
        ({"path": "  "}, "path must not be empty"),
        ({"path": "/a", "size": 3}, "Unsupported parameters"),
    ],
)
def test_bad_arguments_fail_the_module_with_a_clear_message(args, message, captured):
    assert run_module(args) == 1
    out = captured()
    assert out["failed"] is True
    assert message in out["msg"]


def test_documentation_declares_check_mode_support():
    import yaml

    doc = yaml.safe_load(model_facts.DOCUMENTATION)
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert set(doc["options"]) == {"path", "paths", "records"}
    returned = yaml.safe_load(model_facts.RETURN)["models"]["contains"]
    from ansible.module_utils.model_inspect import _new_result

    assert set(_new_result("x")) == set(returned)


ANSIBLE = os.path.join(ROOT, ".venv", "bin", "ansible")
ANSIBLE = ANSIBLE if os.path.exists(ANSIBLE) else shutil.which("ansible")


def run_adhoc(*args):
    """Run the ansible CLI from the repo root (its ansible.cfg); return the host's result."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run(
        [ANSIBLE, "localhost", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head, _sep, body = proc.stdout.partition(" => ")
    assert head.strip() == "localhost | SUCCESS", proc.stdout
    return json.loads(body)


@pytest.mark.skipif(ANSIBLE is None, reason="the ansible CLI is not installed")
def test_ansible_adhoc_command_runs_the_module_from_the_repo_root(gguf_file):
    result = run_adhoc("-m", "model_facts", "-a", "path=" + gguf_file)
    assert result["changed"] is False
    assert result["model"]["format"] == "gguf"
    assert result["model"]["name_tags"]["quant_label"] == "Q4_K_M"
    assert result["models"][gguf_file]["complete"] is True


@pytest.mark.skipif(ANSIBLE is None, reason="the ansible CLI is not installed")
def test_ansible_adhoc_command_in_check_mode_reports_no_change(gguf_file):
    result = run_adhoc("--check", "-m", "model_facts", "-a", "path=" + gguf_file)
    assert result["changed"] is False and result["model"]["complete"] is True
