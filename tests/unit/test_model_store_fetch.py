"""roles/model_store/action_plugins/model_store_fetch.py: the pure helpers, and one writer
per partial file (the download job's lock, the action run against localhost)."""

import fcntl
import grp
import hashlib
import importlib.util
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from loopback import free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_SPEC = importlib.util.spec_from_file_location(
    "model_store_fetch", os.path.join(ROOT, "roles", "model_store", "action_plugins", "model_store_fetch.py")
)
fetch = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fetch)

DIGEST = "a" * 64


def test_stamp_with_same_digest_size_and_mtime_skips_hashing():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert fetch.stamp_matches(stamp, "sha256", DIGEST, 10, 100)


def test_stamp_is_stale_when_size_or_mtime_changed():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert not fetch.stamp_matches(stamp, "sha256", DIGEST, 11, 100)
    assert not fetch.stamp_matches(stamp, "sha256", DIGEST, 10, 101)


def test_stamp_for_another_checksum_does_not_match():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert not fetch.stamp_matches(stamp, "sha256", "b" * 64, 10, 100)
    assert not fetch.stamp_matches(stamp, "sha512", DIGEST, 10, 100)


def test_missing_or_broken_stamp_does_not_match():
    assert not fetch.stamp_matches(None, "sha256", DIGEST, 10, 100)
    assert not fetch.stamp_matches("garbage", "sha256", DIGEST, 10, 100)


def test_stamp_without_wanted_digest_matches_any_recorded_digest():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert fetch.stamp_matches(stamp, "sha256", "", 10, 100)


def test_progress_line_shows_bytes_percent_and_rate_of_this_run():
    line = fetch.progress_line("m.gguf", 3 * 1024**2, 4 * 1024**2, 2.0, start=1024**2)
    assert line == "m.gguf: 3.0 MiB of 4.0 MiB (75%), 1.0 MiB/s"


def test_progress_line_without_a_size():
    assert "size unknown" in fetch.progress_line("m.gguf", 2048, None, 1.0)


def test_curl_resumes_unless_told_not_to():
    assert fetch.curl_argv("http://x/m", "/s/.m.part")[-5:] == [
        "--continue-at",
        "-",
        "--output",
        "/s/.m.part",
        "http://x/m",
    ]
    assert "--continue-at" not in fetch.curl_argv("http://x/m", "/s/.m.part", resume=False)
    assert "--fail" in fetch.curl_argv("http://x/m", "/s/.m.part")


def test_the_unit_is_named_after_the_file():
    assert fetch.unit_name("/s/.m.part") == fetch.unit_name("/s/.m.part")
    assert fetch.unit_name("/s/.m.part") != fetch.unit_name("/s/.n.part")
    assert re.fullmatch(r"ailab-fetch-[0-9a-f]{16}", fetch.unit_name("/s/dir with space/.m.part"))


def test_status_reads_busy_size_and_the_exit_status():
    assert fetch.parse_status("1\n2048\n") == (True, 2048, None)
    assert fetch.parse_status("0\n4096\n0\n") == (False, 4096, 0)
    assert fetch.parse_status("0\n0\n56\n") == (False, 0, 56)
    assert fetch.parse_status("0\n-\n") == (False, None, None)  # no .part file
    assert fetch.parse_status("") == (False, None, None)


# --- one writer per .part file: the download job and the action on localhost ------------

RANGE_SERVER = os.path.join(ROOT, "molecule", "nfs", "files", "range_server.py")
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
MiB = 1024 * 1024

PLAYBOOK = """
- name: Fetch one model file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fetch and verify the model
      model_store_fetch:
        name: model.gguf
        url: "%(url)s"
        dest: "%(dest)s"
        algo: sha256
        digest: "%(digest)s"
        stamp: "%(stamp)s"
        owner: "%(owner)s"
        group: "%(group)s"
        poll: 1
        timeout: 120
"""

needs_tools = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("curl", "flock", "setsid")),
    reason="curl, flock and setsid are needed",
)


@pytest.fixture
def site(tmp_path):
    """The stand-in download site (molecule/nfs/files/range_server.py), throttled, logging each request."""
    www = tmp_path / "www"
    www.mkdir()
    log = tmp_path / "site.log"
    port = free_port()

    def start(data, rate):
        (www / "model.gguf").write_bytes(data)
        proc = subprocess.Popen(
            [sys.executable, RANGE_SERVER, "--dir", str(www), "--bind", "127.0.0.1", "--port", str(port)]
            + ["--rate", str(rate), "--log", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}/model.gguf"
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the stand-in download site did not start")

    procs = []
    start.gets = lambda: [line for line in _read(log).splitlines() if line.startswith("GET /model.gguf ")]
    yield start
    for proc in procs:  # a download still running fails at once without its site
        proc.kill()
        proc.wait()


def _read(path):
    return path.read_text() if path.exists() else ""


def _flock(path):
    """A stand-in for a downloader at work: holds the exclusive lock a download job takes."""
    fh = open(path, "ab")  # noqa: SIM115 - held open across the test on purpose
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


class Run:
    """ansible-playbook with the model_store_fetch action against localhost, its output read as it comes."""

    def __init__(self, tmp_path, url, data, name="run"):
        store = tmp_path / "store"
        store.mkdir(exist_ok=True)
        self.dest = store / "model.gguf"
        self.part = store / ".model.gguf.part"
        self.stamp = store / ".model_store" / "model.gguf.json"
        self.digest = hashlib.sha256(data).hexdigest()
        play = tmp_path / "play.yml"
        play.write_text(
            PLAYBOOK
            % {
                "url": url,
                "dest": self.dest,
                "digest": self.digest,
                "stamp": self.stamp,
                "owner": pwd.getpwuid(os.getuid()).pw_name,
                "group": grp.getgrgid(os.getgid()).gr_name,
            }
        )
        cfg = tmp_path / "ansible.cfg"
        cfg.write_text(
            f"[defaults]\naction_plugins = {ROOT}/roles/model_store/action_plugins\n"
            "localhost_warning = false\nnocolor = true\n"
        )
        self.lines = []
        self.proc = subprocess.Popen(
            [
                PLAYBOOK_BIN,
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"ansible_python_interpreter={sys.executable}",
            ]
            + [str(play)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env=dict(
                os.environ,
                ANSIBLE_CONFIG=str(cfg),
                ANSIBLE_LOCAL_TEMP=str(tmp_path / f"tmp-{name}"),
                ANSIBLE_REMOTE_TEMP=str(tmp_path / f"tmp-{name}"),
            ),
        )
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=90):
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None or self.reader.is_alive(), self.output
            assert time.monotonic() < deadline, f"{text!r} not printed:\n{self.output}"
            time.sleep(0.1)

    def finish(self, timeout=150):
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return rc

    def interrupt(self):
        """Ctrl-C: ansible-playbook stops its workers and exits; what they started in a session of its own stays."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def kill_main(self):
        """SIGKILL for ansible-playbook alone (a lost terminal): its worker, in a session of its own, runs on."""
        self.proc.kill()
        self.proc.wait(timeout=30)


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_tools
def test_the_download_job_writes_nothing_while_another_downloader_holds_the_part(tmp_path, site):
    data = os.urandom(256 * 1024)
    url = site(data, rate=0)
    part = tmp_path / ".model.gguf.part"
    part.write_bytes(data[:1000])
    job = ["sh", "-c", fetch.fetch_job(url, str(part))]

    holder = _flock(part)
    try:
        second = subprocess.run(job, capture_output=True, timeout=30)
        assert second.returncode == fetch.LOCK_BUSY
        assert part.read_bytes() == data[:1000]
        assert not (tmp_path / ".model.gguf.part.rc").exists()
        assert site.gets() == []
    finally:
        holder.close()

    assert subprocess.run(job, capture_output=True, timeout=30).returncode == 0
    assert (tmp_path / ".model.gguf.part.rc").read_text().strip() == "0"
    assert part.read_bytes() == data
    assert site.gets()[0].startswith("GET /model.gguf range=bytes=1000-")


@needs_tools
@pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python")
def test_a_run_waits_while_another_downloader_holds_the_part_then_resumes_it(tmp_path, site):
    data = os.urandom(2 * MiB)
    url = site(data, rate=MiB)
    store = tmp_path / "store"
    store.mkdir()
    part = store / ".model.gguf.part"
    part.write_bytes(data[:MiB])

    holder = _flock(part)
    try:
        run = Run(tmp_path, url, data)
        run.wait_for("waiting for it instead of starting a second one")
        # Two more polls while the lock is held: the run still writes nothing, fetches nothing.
        time.sleep(2.5)
        assert run.proc.poll() is None, run.output
        assert part.read_bytes() == data[:MiB]
        assert site.gets() == []
    finally:
        holder.close()

    assert run.finish() == 0, run.output
    assert "stopped (without a status" in run.output
    assert _sha256(run.dest) == run.digest
    assert json.loads(run.stamp.read_text())["digest"] == run.digest
    assert [line.split()[2] for line in site.gets()] == [f"range=bytes={MiB}-"]
    assert sorted(os.listdir(store)) == [".model_store", "model.gguf"]


@needs_tools
@pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python")
@pytest.mark.parametrize("interrupt", ["interrupt", "kill_main"])
def test_a_run_after_an_interrupted_one_waits_for_its_download_instead_of_starting_a_second(
    tmp_path, site, interrupt
):
    data = os.urandom(4 * MiB)
    url = site(data, rate=MiB // 2)

    first = Run(tmp_path, url, data, name="first")
    first.wait_for("%), ")  # a progress line: the download job is at work
    getattr(first, interrupt)()
    # The interrupted run's download outlives it and keeps writing the .part file.
    size = first.part.stat().st_size
    time.sleep(1.5)
    assert first.part.stat().st_size > size
    assert len(site.gets()) == 1

    second = Run(tmp_path, url, data, name="second")
    assert second.finish() == 0, second.output
    assert len(site.gets()) == 1, (site.gets(), second.output)  # no second writer was started
    assert _sha256(second.dest) == second.digest
    assert "a download of this file is still running" in second.output
    assert json.loads(second.stamp.read_text())["digest"] == second.digest
    # A worker of the first run that lived on may still be finishing; it leaves nothing behind.
    deadline = time.monotonic() + 30
    while sorted(os.listdir(second.dest.parent)) != [".model_store", "model.gguf"]:
        assert time.monotonic() < deadline, os.listdir(second.dest.parent)
        time.sleep(0.5)
    assert _sha256(second.dest) == second.digest
    assert json.loads(second.stamp.read_text())["digest"] == second.digest


@needs_tools
@pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python")
def test_a_download_an_earlier_run_left_finished_is_verified_and_placed_not_fetched_again(tmp_path, site):
    data = os.urandom(512 * 1024)
    url = site(data, rate=0)
    store = tmp_path / "store"
    store.mkdir()
    (store / ".model.gguf.part").write_bytes(data)
    (store / ".model.gguf.part.rc").write_text("0\n")
    (store / ".model.gguf.part.log").write_text("")

    run = Run(tmp_path, url, data)
    assert run.finish() == 0, run.output
    assert "the download an earlier run started has finished, verifying it" in run.output
    assert site.gets() == []
    assert _sha256(run.dest) == run.digest
    assert sorted(os.listdir(store)) == [".model_store", "model.gguf"]
