"""The stand-ins speak the interfaces the roles rely on (loopback only, seconds).

The textgen stand-in must treat CMD_FLAGS.txt like upstream v4.7.3 (strict parser,
--user-data-dir from the real command line); the Ollama stand-in must import a GGUF
through the client protocol and report it in /api/show, /api/tags and /api/ps.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STANDINS = os.path.join(ROOT, "tests", "standins")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_port(port, proc, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("standins")
    subprocess.run([sys.executable, os.path.join(STANDINS, "package_standins.py"), str(out)], check=True)
    return out


@pytest.fixture
def textgen(packaged, tmp_path):
    archive = next(p for p in os.listdir(packaged) if p.startswith("text-generation-webui"))
    with tarfile.open(packaged / archive) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    install = tmp_path / "src" / os.listdir(tmp_path / "src")[0]
    env = dict(os.environ, GPU_CHOICE="N", LAUNCH_AFTER_INSTALL="false")
    subprocess.run(["bash", "start_linux.sh"], cwd=install, env=env, check=True, capture_output=True)
    assert (install / "installer_files" / "env" / "bin" / "python").exists()
    return install


def test_textgen_standin_refuses_a_removed_flag_with_exit_2(textgen, tmp_path):
    data = tmp_path / "inst"
    data.mkdir()
    (data / "CMD_FLAGS.txt").write_text("# comment line\n\n--api\n--use_flash_attention_2\n")
    proc = subprocess.run(
        [str(textgen / "installer_files/env/bin/python"), "server.py", "--user-data-dir", str(data)],
        cwd=textgen,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--use_flash_attention_2" in proc.stderr


def test_textgen_standin_serves_the_model_named_in_cmd_flags(textgen, tmp_path):
    data, model = tmp_path / "inst", tmp_path / "m-Q4_K_M.gguf"
    data.mkdir()
    model.write_bytes(b"GGUF")
    api = free_port()
    (data / "CMD_FLAGS.txt").write_text(
        f"# header\n--model {model}\n--api\n--api-port {api}\n--nowebui\n--api-key s3cret\n"
    )
    proc = subprocess.Popen(
        [str(textgen / "installer_files/env/bin/python"), "server.py", "--user-data-dir", str(data)],
        cwd=textgen,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_port(api, proc)
        with pytest.raises(urllib.error.HTTPError):
            get(f"http://127.0.0.1:{api}/v1/models")
        out = get(f"http://127.0.0.1:{api}/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert [m["id"] for m in out["data"]] == [str(model)]
    finally:
        proc.terminate()
        proc.wait(10)


def test_ollama_standin_imports_and_loads_a_gguf(packaged, tmp_path):
    with _zst(packaged, tmp_path) as tar:
        tar.extractall(tmp_path / "ollama", filter="data")
    binary = str(tmp_path / "ollama" / "bin" / "ollama")
    port = free_port()
    env = dict(os.environ, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_MODELS=str(tmp_path / "models"))
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 1000)
    (tmp_path / "Modelfile").write_text(f"FROM {model}\n")
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        subprocess.run([binary, "create", "tiny", "-f", str(tmp_path / "Modelfile")], env=env, check=True)
        base = f"http://127.0.0.1:{port}"
        show = get(base + "/api/show", data=b'{"model": "tiny"}')
        assert "sha256-" + hashlib.sha256(model.read_bytes()).hexdigest() in show["modelfile"]
        assert [m["name"] for m in get(base + "/api/tags")["models"]] == ["tiny:latest"]
        assert get(base + "/api/ps")["models"] == []
        loaded = get(base + "/api/generate", data=b'{"model": "tiny", "keep_alive": -1}')
        assert loaded["done_reason"] == "load"
        assert [m["name"] for m in get(base + "/api/ps")["models"]] == ["tiny:latest"]
    finally:
        proc.terminate()
        proc.wait(10)


def _zst(packaged, tmp_path):
    raw = subprocess.run(
        ["zstd", "-dc", str(packaged / "ollama-linux-amd64.tar.zst")], check=True, capture_output=True
    ).stdout
    (tmp_path / "ollama.tar").write_bytes(raw)
    return tarfile.open(tmp_path / "ollama.tar")
