"""Verify the gpu_driver role on the three scenario hosts (read-only checks)."""

import json
import os
import subprocess
import sys

import pytest

testinfra_hosts = ["ailab-gpu-nvidia", "ailab-gpu-amd", "ailab-gpu-none"]

FACT = "/etc/ansible/facts.d/gpu_driver.fact"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _name(host):
    return host.backend.get_hostname()


def _only(host, *names):
    if _name(host) not in names:
        pytest.skip("not a {} host".format("/".join(names)))


def _fact(host):
    return json.loads(host.file(FACT).content_string)


def _selection(host, package):
    return host.check_output("dpkg --get-selections %s", package).split()[-1]


def test_nvidia_packages_are_installed(host):
    _only(host, "ailab-gpu-nvidia")
    for package in (
        "nvidia-driver",
        "nvidia-kernel-dkms",
        "nvidia-smi",
        "nvidia-persistenced",
        "dkms",
        "initramfs-tools",
    ):
        assert host.package(package).is_installed, package
    assert host.package("nvidia-driver").version.startswith("535.")


def test_nvidia_comes_from_debian_non_free(host):
    _only(host, "ailab-gpu-nvidia")
    sources = host.file("/etc/apt/sources.list").content_string
    entry = [line for line in sources.splitlines() if line.startswith("deb ") and " bookworm " in line][0]
    assert entry.split()[3:] == ["main", "contrib", "non-free", "non-free-firmware"]
    policy = host.check_output("apt-cache policy nvidia-driver")
    assert "bookworm/non-free" in policy


def test_nvidia_packages_are_held(host):
    _only(host, "ailab-gpu-nvidia")
    for package in ("nvidia-driver", "nvidia-kernel-dkms", "nvidia-smi", "nvidia-persistenced"):
        assert _selection(host, package) == "hold", package


def test_a_held_package_the_last_run_installed_and_this_one_does_not_want_is_released(host):
    """side_effect.yml recorded nvidia-kernel-support as held by an earlier run (as after a
    branch change): its hold would block apt, so converge released it."""
    _only(host, "ailab-gpu-nvidia")
    assert _selection(host, "nvidia-kernel-support") == "install"
    assert "nvidia-kernel-support" not in _fact(host)["packages"]


def test_nouveau_is_blacklisted_and_initramfs_tools_will_carry_it(host):
    _only(host, "ailab-gpu-nvidia")
    blacklist = host.file("/etc/modprobe.d/blacklist-nouveau.conf")
    assert blacklist.mode == 0o644
    assert "blacklist nouveau" in blacklist.content_string.splitlines()
    assert "options nouveau modeset=0" in blacklist.content_string.splitlines()
    # initramfs-tools copies /etc/modprobe.d into every initrd it builds.
    assert host.file("/usr/sbin/update-initramfs").exists
    assert host.file("/usr/share/initramfs-tools/hooks").is_directory


def test_nvidia_persistenced_is_enabled(host):
    _only(host, "ailab-gpu-nvidia")
    assert host.service("nvidia-persistenced").is_enabled


def test_nvidia_uvm_is_loaded_at_boot_and_its_nodes_made_before_the_model_units(host):
    """Debian loads only nvidia-drm at boot (nvidia-kernel-support's nvidia-load.conf), and
    systemd resolves DeviceAllow=char-nvidia-uvm from /proc/devices when a unit starts
    (src/core/bpf-devices.c): nvidia-uvm must be there before any model unit starts."""
    _only(host, "ailab-gpu-nvidia")
    load = host.file("/etc/modules-load.d/ailab-nvidia-uvm.conf")
    assert "nvidia-uvm" in [
        line.strip() for line in load.content_string.splitlines() if not line.startswith("#")
    ]
    # Debian's modprobe.d rule maps that name to its renamed module.
    assert "install nvidia-uvm " in host.check_output("cat /etc/nvidia/current/nvidia-modprobe.conf")
    assert host.file("/usr/bin/nvidia-modprobe").exists
    unit = "ailab-nvidia-devices.service"
    assert host.service(unit).is_enabled
    host.run_expect([0], f"systemd-analyze verify {unit}")
    # No nvidia module in a container: the condition skips it, nothing fails.
    state = host.check_output(f"systemctl show -p ActiveState -p Result --value {unit}").split()
    assert state[0] != "failed" and "failed" not in state
    assert (
        "ExecStart=/usr/bin/nvidia-modprobe -u -c=0"
        in host.file(f"/etc/systemd/system/{unit}").content_string
    )


def test_only_nvidia_hosts_get_the_nvidia_device_unit(host):
    _only(host, "ailab-gpu-amd", "ailab-gpu-none")
    assert not host.file("/etc/systemd/system/ailab-nvidia-devices.service").exists
    assert not host.file("/etc/modules-load.d/ailab-nvidia-uvm.conf").exists


def test_missing_kernel_headers_are_reported(host):
    _only(host, "ailab-gpu-nvidia")
    kernel = host.check_output("uname -r")
    assert not host.file(f"/lib/modules/{kernel}/build").exists
    fact = _fact(host)
    assert fact["kernel"] == kernel
    assert fact["kernel_headers"] == "missing"
    assert fact["kernel_module_status"] == "headers-missing"
    assert fact["kernel_module_version"] == ""
    # DKMS has the sources registered and built nothing.
    assert "nvidia-current" in host.check_output("dkms status")


def test_nvidia_fact_records_the_reboot_decision(host):
    """The simulated fresh host: its H100 is there and still bound to nouveau (as a fresh
    Debian host's is), so the blacklist needs a reboot; reboots are not allowed here."""
    _only(host, "ailab-gpu-nvidia")
    fact = _fact(host)
    assert fact["vendor"] == "nvidia"
    assert fact["source"] == "distribution"
    assert fact["gpu_present"] is True
    assert fact["reboot_required"] is True
    assert fact["reboot_reasons"] == [
        "the nouveau module is still loaded; the blacklist takes effect at the next boot"
    ]
    assert fact["held"] is True


def test_nvidia_programs_are_not_started_before_the_module_loads(host):
    """nvidia-persistenced and the device node unit cannot start without the nvidia module:
    on a fresh host the role enables them for the next boot and starts neither (a start
    would fail the converge; Debian's own postinst already tried nvidia-persistenced at
    install time, and it failed there, as on a real host before its reboot)."""
    _only(host, "ailab-gpu-nvidia")
    for unit in ("nvidia-persistenced", "ailab-nvidia-devices"):
        assert host.service(unit).is_enabled, unit
        assert not host.service(unit).is_running, unit
    # The device unit's own condition (the module's proc file) kept it from running.
    assert host.check_output("systemctl show -p ActiveState --value ailab-nvidia-devices") == "inactive"


def test_the_simulated_card_is_seen_as_a_real_fresh_host_shows_it(host):
    _only(host, "ailab-gpu-nvidia")
    out = host.run("/var/lib/ailab-gpu-sim/usr/bin/nvidia-smi")
    assert out.rc == 9 and "couldn't communicate with the NVIDIA driver" in out.stdout


def test_rocm_packages_are_installed_from_debian(host):
    _only(host, "ailab-gpu-amd")
    for package in ("rocminfo", "rocm-smi", "libamdhip64-5", "firmware-amd-graphics"):
        assert host.package(package).is_installed, package
        assert _selection(host, package) == "hold", package
    assert host.file("/usr/bin/rocminfo").exists
    assert not host.file("/etc/apt/sources.list.d/rocm.sources").exists
    assert not host.package("amdgpu-dkms").is_installed


def test_service_users_get_render_and_video(host):
    _only(host, "ailab-gpu-amd")
    assert host.group("render").exists
    assert host.group("video").exists
    groups = host.user("textgen").groups
    assert "render" in groups and "video" in groups
    assert not host.user("ollama").exists


def test_amd_fact_reports_in_kernel_module_state(host):
    _only(host, "ailab-gpu-amd")
    fact = _fact(host)
    assert fact["vendor"] == "amd"
    assert fact["kernel_module"] == "amdgpu"
    # The container's kernel tree is not there: no amdgpu module for it.
    assert fact["kernel_module_status"] == "missing"
    assert fact["kernel_headers"] == "not-needed"
    assert fact["reboot_required"] is False
    assert fact["service_users"] == ["textgen"]
    assert fact["service_users_missing"] == ["ollama"]


def test_none_host_is_untouched(host):
    _only(host, "ailab-gpu-none")
    assert not host.file(FACT).exists
    assert not host.file("/etc/modprobe.d/blacklist-nouveau.conf").exists
    assert host.check_output("cat /etc/apt/sources.list").split()[3:] == ["main"]
    before = host.file("/root/gpu-driver-before.sha256").content_string.split()[0]
    now = host.check_output(
        "bash -c 'set -o pipefail; { dpkg --get-selections; cat /etc/apt/sources.list "
        "/etc/apt/sources.list.d/* 2>/dev/null || true; } | sha256sum'"
    ).split()[0]
    assert now == before
    for package in ("nvidia-driver", "rocminfo", "dkms"):
        assert not host.package(package).is_installed, package


def test_verify_reports_the_fresh_host_as_it_really_is(host, tmp_path_factory):
    """playbooks/verify.yml on the simulated fresh host: the card is there, bound to nouveau,
    and no nvidia module exists for the running kernel (DKMS had no headers to build it
    with): the report says so, with the reason gpu_driver recorded, and the run fails."""
    _only(host, "ailab-gpu-nvidia")
    reports = tmp_path_factory.mktemp("reports")
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            "--limit",
            "ailab-gpu-nvidia",
            os.path.join(REPO, "playbooks", "verify.yml"),
            "-e",
            f"verify_report_dir={reports}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0, proc.stdout[-3000:]
    report = (reports / "health.md").read_text()
    kernel = host.check_output("uname -r")
    assert (
        f"driver **missing**: no nvidia module for the running kernel {kernel} "
        "(0000:00:09.0 bound to nouveau); gpu_driver found it headers-missing for kernel "
        f"{kernel}: DKMS could not build it, the running kernel's headers are not installable"
    ) in report, report
