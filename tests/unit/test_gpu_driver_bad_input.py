"""gpu_driver refuses bad input with a message naming the host and the variable,
before it changes anything: ansible-playbook in check mode against localhost."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

DEBIAN_12 = {
    "distribution": "Debian",
    "distribution_major_version": "12",
    "distribution_release": "bookworm",
    "os_family": "Debian",
    "architecture": "x86_64",
}
DEBIAN_13 = dict(DEBIAN_12, distribution_major_version="13", distribution_release="trixie")
UBUNTU_22 = dict(
    DEBIAN_12, distribution="Ubuntu", distribution_major_version="22", distribution_release="jammy"
)

PLAY = """---
- name: Run gpu_driver with bad input
  hosts: localhost
  connection: local
  gather_facts: true
  tasks:
    - name: Pretend to be the platform under test
      fake_os_facts:
        facts: "{{ fake_facts }}"
    - name: Run the role
      ansible.builtin.include_role:
        name: gpu_driver
"""

# Should a check ever stop firing, nothing may leave this machine: every download
# source points at a closed loopback port.
OFFLINE = {
    "gpu_driver_cuda_repo_base_url": "http://127.0.0.1:9/cuda",
    "gpu_driver_cuda_keyring_url": "http://127.0.0.1:9/cuda.pub",
    "gpu_driver_rocm_repo_base_url": "http://127.0.0.1:9/rocm",
    "gpu_driver_rocm_keyring_url": "http://127.0.0.1:9/rocm.gpg.key",
    "gpu_driver_nvidia_container_toolkit_repo_url": "http://127.0.0.1:9/ctk",
    "gpu_driver_nvidia_container_toolkit_keyring_url": "http://127.0.0.1:9/ctk.key",
}

pytestmark = pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook not installed")


def run_role(tmp_path, extra_vars, facts=None):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    variables = dict(OFFLINE, **extra_vars)
    variables.update(fake_facts=facts or DEBIAN_12, ansible_python_interpreter=sys.executable)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_LIBRARY=os.pathsep.join(
            [
                os.path.join(ROOT, "plugins", "modules"),
                os.path.join(ROOT, "tests", "unit", "gpu_driver_library"),
            ]
        ),
        # The faked facts stay in this run, whatever cache a configuration names.
        ANSIBLE_CACHE_PLUGIN="memory",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"),
    )
    result = subprocess.run(
        [PLAYBOOK_BIN, "--check", "-i", "localhost,", "-e", "@" + str(tmp_path / "vars.json"), str(playbook)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    recap = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+).*failed=(\d+)", output)
    assert recap, output
    return result.returncode, int(recap.group(1)), int(recap.group(2)), " ".join(output.split())


def assert_refused(tmp_path, extra_vars, *phrases, facts=None):
    rc, changed, failed, output = run_role(tmp_path, extra_vars, facts)
    assert rc != 0, output
    assert failed == 1, output
    assert changed == 0, output
    for phrase in phrases:
        assert phrase in output, f"{phrase!r} not in {output}"


def test_unknown_vendor_is_refused(tmp_path):
    assert_refused(tmp_path, {"gpu_vendor": "matrox"}, "gpu_driver_vendor", "must be one of", "matrox")


def test_malformed_branch_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "none", "gpu_driver_nvidia_branch": "55x"},
        'localhost: gpu_driver_nvidia_branch="55x"',
        "not valid",
    )


def test_malformed_version_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "nvidia", "gpu_driver_nvidia_version": "550.1.2.3"},
        "localhost:",
        'gpu_driver_nvidia_version="550.1.2.3"',
        "not valid",
    )


def test_version_outside_the_branch_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {
            "gpu_driver_vendor": "nvidia",
            "gpu_driver_nvidia_branch": "550",
            "gpu_driver_nvidia_version": "535.261.03",
        },
        'localhost: gpu_driver_nvidia_branch="550"',
        'gpu_driver_nvidia_version="535.261.03"',
    )


def test_malformed_rocm_version_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "amd", "gpu_driver_rocm_version": "latest"},
        'localhost: gpu_driver_rocm_version="latest" is not a ROCm release',
    )


def test_rocm_from_amd_on_debian_13_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "amd", "gpu_driver_rocm_source": "amd"},
        "localhost: gpu_driver_rocm_source=amd",
        "does not support Debian 13",
        facts=DEBIAN_13,
    )


def test_rocm_from_the_distribution_on_ubuntu_22_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "amd"},
        "localhost: gpu_driver_rocm_source=distribution",
        "Ubuntu 22 ships no ROCm",
        facts=UBUNTU_22,
    )


def test_cuda_repository_on_debian_13_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "nvidia", "gpu_driver_nvidia_source": "cuda"},
        "localhost: gpu_driver_nvidia_source=cuda",
        "no packages for Debian 13 on x86_64",
        facts=DEBIAN_13,
    )


def test_cuda_repository_on_an_unsupported_architecture_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "nvidia", "gpu_driver_nvidia_source": "cuda"},
        "no packages for Debian 12 on ppc64le",
        facts=dict(DEBIAN_12, architecture="ppc64le"),
    )


def test_branch_debian_does_not_ship_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "nvidia", "gpu_driver_nvidia_branch": "570"},
        'localhost: gpu_driver_nvidia_branch="570"',
        "ships only branch 535",
        "gpu_driver_nvidia_source: cuda",
    )


def test_unsupported_distribution_is_refused(tmp_path):
    assert_refused(
        tmp_path,
        {"gpu_driver_vendor": "nvidia"},
        "localhost: Debian 11 is not supported",
        facts=dict(DEBIAN_12, distribution_major_version="11", distribution_release="bullseye"),
    )


def test_secure_boot_without_an_enrolled_key_is_refused(tmp_path):
    efivar = tmp_path / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    efivar.write_bytes(b"\x06\x00\x00\x00\x01")
    assert_refused(
        tmp_path,
        {
            "gpu_driver_vendor": "nvidia",
            "__gpu_driver_efivar_secure_boot": str(efivar),
            "__gpu_driver_mok_certificate": str(tmp_path / "missing-mok.pub"),
        },
        "localhost: Secure Boot is enabled",
        "mokutil --import",
        "disable Secure Boot",
        "gpu_driver_secure_boot_modules_signed: true",
    )


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs a Debian-family controller")
def test_secure_boot_disabled_is_not_refused_by_the_secure_boot_check(tmp_path):
    """Paired case: the same run with Secure Boot off gets past the check (then stops on the
    unsupported-release assert placed here on purpose, so nothing touches the machine)."""
    efivar = tmp_path / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    efivar.write_bytes(b"\x06\x00\x00\x00\x00")
    rc, changed, failed, output = run_role(
        tmp_path,
        {
            "gpu_driver_vendor": "nvidia",
            "__gpu_driver_efivar_secure_boot": str(efivar),
            "gpu_driver_manage_debian_components": True,
            "__gpu_driver_mok_certificate": str(tmp_path / "missing-mok.pub"),
        },
        facts=dict(DEBIAN_12, distribution_release="no-such-release"),
    )
    assert "localhost: Secure Boot is enabled" not in output
    assert "localhost: no entry for no-such-release" in output, output
    assert changed == 0
