"""plugins/modules/ollama_model.py against the Ollama stand-in (tests/standins/ollama).

The stand-in serves Ollama's documented API (GET /api/version, POST /api/show,
/api/create, /api/generate, /api/blobs) and its `create` client hashes the FROM file
and uploads it, as `ollama create` does (ollama/ollama cmd/cmd.go: CreateHandler hashes each
FROM file with sha256, createBlob sends it to /api/blobs/sha256:<hex>, then /api/create).
The module is run through Ansible once (argument spec, check mode) and otherwise
called directly.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

import ollama_model
import pytest
from loopback import free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STANDIN = os.path.join(ROOT, "tests", "standins", "ollama", "ollama_standin.py")
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


@pytest.fixture
def instance(tmp_path):
    """A running stand-in instance, a model file, its Modelfile, and the module's params."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    env = dict(os.environ, OLLAMA_HOST=host, OLLAMA_MODELS=str(tmp_path / "models"))
    proc = subprocess.Popen([sys.executable, STANDIN, "serve"], env=env, stderr=subprocess.DEVNULL)
    client = tmp_path / "ollama"
    client.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    client.chmod(0o755)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + os.urandom(4096))
    (tmp_path / "chat").mkdir()
    modelfile = tmp_path / "chat" / "Modelfile"
    modelfile.write_text(f"FROM {model}\n")
    params = {
        "name": "chat",
        "url": f"http://{host}",
        "ollama_host": host,
        "model": "tiny",
        "path": str(model),
        "modelfile": str(modelfile),
        "stamp": str(tmp_path / "chat" / "model-digest.json"),
        "ollama_bin": str(client),
        "api_timeout": 20,
        "load_timeout": 30,
    }
    yield params
    proc.terminate()
    proc.wait(timeout=10)


def run_command(args, environ_update=None):
    proc = subprocess.run(
        args, capture_output=True, text=True, env=dict(os.environ, **(environ_update or {}))
    )
    return proc.returncode, proc.stdout, proc.stderr


def ensure(params, check_mode=False):
    result, error = ollama_model.ensure(params, check_mode, run_command)
    assert error is None, error
    return result


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def stamp(params):
    with open(params["stamp"], encoding="utf-8") as fh:
        return json.load(fh)


def loaded(params):
    status, reply = ollama_model.api(params["url"], "/api/ps")
    assert status == 200
    return [m["name"] for m in reply["models"]]


def test_first_run_hashes_imports_and_loads_then_a_rerun_changes_nothing(instance):
    first = ensure(instance)
    assert first["changed"] and first["hashed"] and first["stamp_written"] and first["created"]
    assert first["sha256"] == sha256(instance["path"])
    st = os.stat(instance["path"])
    assert stamp(instance) == {
        "path": instance["path"],
        "size": st.st_size,
        "mtime": pytest.approx(st.st_mtime, abs=1e-5),
        "inode": st.st_ino,
        "sha256": sha256(instance["path"]),
    }
    assert "tiny:latest" in loaded(instance)
    again = ensure(instance)
    assert again == {
        "changed": False,
        "hashed": False,
        "stamp_written": False,
        "created": False,
        "sha256": first["sha256"],
    }


def test_a_changed_model_is_hashed_and_imported_again(instance):
    old = ensure(instance)["sha256"]
    st = os.stat(instance["path"])
    with open(instance["path"], "wb") as fh:
        fh.write(b"GGUF" + os.urandom(4096))  # same size, new content
    os.utime(instance["path"], (st.st_atime, st.st_mtime + 10))
    result = ensure(instance)
    assert result["hashed"] and result["created"] and result["changed"]
    assert result["sha256"] == sha256(instance["path"]) != old
    assert stamp(instance)["sha256"] == result["sha256"]


@pytest.mark.parametrize(
    "text", ["not json at all", '{"sha256": "abc"', "[1, 2]", '{"sha256": "%s"}' % ("0" * 64)]
)
def test_a_broken_or_foreign_stamp_counts_as_none(instance, text):
    ensure(instance)
    with open(instance["stamp"], "w", encoding="utf-8") as fh:
        fh.write(text)
    result = ensure(instance)
    assert result["hashed"] and result["stamp_written"] and not result["created"]
    assert stamp(instance)["sha256"] == sha256(instance["path"])


def test_a_model_the_instance_lost_is_imported_again_without_hashing(instance):
    ensure(instance)
    models = os.path.join(os.path.dirname(os.path.dirname(instance["stamp"])), "models", "manifests")
    subprocess.run(["rm", "-rf", models], check=True)
    result = ensure(instance)
    assert result["created"] and not result["hashed"] and not result["stamp_written"]


def test_check_mode_writes_creates_and_loads_nothing(instance):
    result = ensure(instance, check_mode=True)
    assert result["changed"] and result["stamp_written"] and result["created"]
    assert not os.path.exists(instance["stamp"])
    status, _ = ollama_model.api(instance["url"], "/api/show", {"model": "tiny"})
    assert status == 404
    assert loaded(instance) == []


def test_a_missing_model_fails_naming_the_instance_and_path(instance):
    os.unlink(instance["path"])
    result, error = ollama_model.ensure(instance, False, run_command)
    assert "Ollama instance chat" in error and instance["path"] in error and "mounted" in error
    assert not result["created"]


def test_an_instance_whose_api_never_answers_fails_after_the_timeout(instance):
    params = dict(instance, url=f"http://127.0.0.1:{free_port()}", api_timeout=2)
    start = time.monotonic()
    result, error = ollama_model.ensure(params, False, run_command)
    assert 2 <= time.monotonic() - start < 15
    assert "Ollama instance chat" in error and "did not answer within 2 s" in error


def test_a_failing_create_reports_the_client_error(instance, tmp_path):
    broken = tmp_path / "broken-ollama"
    broken.write_text("#!/bin/sh\necho 'Error: no FROM line' >&2\nexit 1\n")
    broken.chmod(0o755)
    result, error = ollama_model.ensure(dict(instance, ollama_bin=str(broken)), False, run_command)
    assert result["created"]
    assert "ollama create tiny failed (rc 1): Error: no FROM line" in error


@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible is not beside this Python")
def test_through_ansible_check_mode_then_converge(instance, tmp_path):
    args = " ".join(f"{k}={v}" for k, v in instance.items())
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}  # without the project's callbacks
    env.update(ANSIBLE_LIBRARY=os.path.join(ROOT, "plugins", "modules"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    base = [ANSIBLE, "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
    base += ["-m", "ollama_model", "-a", args, "-o"]
    check = subprocess.run(
        base + ["--check"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert '"changed": true' in check.stdout and not os.path.exists(instance["stamp"])
    run = subprocess.run(base, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"created": true' in run.stdout
    assert stamp(instance)["sha256"] == sha256(instance["path"])
