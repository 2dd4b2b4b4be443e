"""The lab host harness works: systemd is PID 1 and running, python3 is there."""


def test_systemd_is_running(host):
    state = host.run("systemctl is-system-running")
    assert state.stdout.strip() in ("running", "degraded"), state.stdout


def test_pid1_is_systemd(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_python3_present(host):
    assert host.run("python3 --version").rc == 0


def test_converge_wrote_identity(host):
    identity = host.file("/etc/ailab-lab-host")
    assert identity.exists
    assert identity.mode == 0o644
    assert host.backend.get_hostname() in identity.content_string
