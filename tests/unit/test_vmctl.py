"""tests/vm/vmctl.sh: net-down stops what serve started (the VM tier's file server).

The server once outlived net-down: serve ran it through a shell function in the
background, so the pid file held the subshell's pid and python, its child, kept running
after every VM scenario. Needs root and network namespaces, as the VM tier does."""

import os
import subprocess
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VMCTL = os.path.join(ROOT, "tests", "vm", "vmctl.sh")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is not running
        return handle.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_net_down_stops_the_file_server_that_serve_started(tmp_path):
    env = dict(
        os.environ,
        AILAB_VM_RUN=str(tmp_path / "run"),
        AILAB_VM_NS=f"ailab-t{uuid.uuid4().hex[:8]}",
        AILAB_VM_IMAGE=str(tmp_path),
    )
    (tmp_path / "www").mkdir()

    def vmctl(*args):
        subprocess.run(
            ["bash", VMCTL, *args], env=env, check=True, capture_output=True, text=True, timeout=60
        )

    vmctl("net-up", "10.239.7.1/24")
    try:
        vmctl("serve", str(tmp_path / "www"), "10.239.7.1", "8080")
        pid = int((tmp_path / "run" / "serve-8080.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert b"http.server" in handle.read()  # the pid file names the server itself
    finally:
        vmctl("net-down")
    assert not alive(pid)
