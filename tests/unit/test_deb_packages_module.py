"""plugins/modules/deb_packages.py: which packages a role must install, from dpkg alone.

The status letters are dpkg's (dpkg-query(1), ``db:Status-Abbrev``: desired action,
package status, error flag); the sample lines below are the output of
``dpkg-query -W -f='${binary:Package}\\t${db:Status-Abbrev}\\t${Version}\\n' ...`` on
Debian 12 (dpkg 1.21.22), with ``rc`` and ``iU`` lines as dpkg prints a removed package
whose config files remain and a package unpacked but not configured.
"""

import json
import os
import subprocess
import sys

import deb_packages
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")

SAMPLE = (
    "bash\tii \t5.2.15-2+b8\n"
    "libc6:amd64\tii \t2.36-9+deb12u14\n"
    "nfs-common\trc \t1:2.6.2-4+deb12u1\n"
    "zstd\tiU \t1.5.4+dfsg2-5\n"
    "nvidia-driver\thi \t535.247.01-1~deb12u1\n"
)


def clean_env():
    """This environment without the project's ansible.cfg (its callbacks print to stdout)."""
    return {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}


def test_installed_means_status_i_without_error_flag():
    assert deb_packages.parse_status(SAMPLE)[0] == {
        "bash": "5.2.15-2+b8",
        "libc6": "2.36-9+deb12u14",
        "nvidia-driver": "535.247.01-1~deb12u1",
    }


def test_held_packages_are_the_ones_whose_desired_action_is_hold():
    assert deb_packages.parse_status(SAMPLE)[1] == ["nvidia-driver"]


@pytest.mark.parametrize(
    "names, missing",
    [
        (["bash", "libc6"], []),
        (["bash", "nfs-common", "zstd", "curl"], ["nfs-common", "zstd", "curl"]),
        (["nvidia-driver=535.247.01-1~deb12u1"], []),
        (["nvidia-driver=535.*"], []),
        (["nvidia-driver=550.*"], ["nvidia-driver=550.*"]),
        (["nvidia-driver=535.247.01-1"], ["nvidia-driver=535.247.01-1"]),
    ],
)
def test_missing_entries_as_given(names, missing):
    assert deb_packages.missing_of(names, deb_packages.parse_status(SAMPLE)[0]) == missing


@pytest.mark.skipif(not os.path.exists("/usr/bin/dpkg-query"), reason="needs dpkg-query (Debian)")
@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible is not beside this Python")
def test_through_ansible_on_this_debian_host_in_check_mode(tmp_path):
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "bash"], capture_output=True, text=True, check=True
    ).stdout
    proc = subprocess.run(
        [ANSIBLE, "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", "--check"]
        + [
            "-m",
            "deb_packages",
            "-a",
            json.dumps({"names": ["bash", "ailab-no-such-package", f"bash={version}"]}),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(
            os.environ,
            ANSIBLE_LIBRARY=os.path.join(ROOT, "plugins", "modules"),
            ANSIBLE_STDOUT_CALLBACK="json",
        ),
    )
    assert proc.returncode == 0 and "localhost | SUCCESS => {" in proc.stdout, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("=>", 1)[1])
    assert result["changed"] is False
    assert result["missing"] == ["ailab-no-such-package"]
    assert result["installed"] == {"bash": version}
    assert result["held"] == []
    assert isinstance(result["lists"], bool)
