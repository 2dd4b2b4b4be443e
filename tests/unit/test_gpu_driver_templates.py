"""The apt files gpu_driver writes for NVIDIA's and AMD's repositories (unreachable
from CI), rendered with Ansible's templating from the role's own defaults and
platform vars, then read back by apt itself where apt is installed."""

import os
import shutil
import subprocess

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "roles", "gpu_driver"))
PLATFORMS = {
    "Debian_12": ("Debian", "12", "bookworm"),
    "Debian_13": ("Debian", "13", "trixie"),
    "Ubuntu_22": ("Ubuntu", "22", "jammy"),
    "Ubuntu_24": ("Ubuntu", "24", "noble"),
}


def trusted(data):
    """Role files are trusted templates, as when Ansible loads them from the role."""
    if isinstance(data, str):
        return trust_as_template(data)
    if isinstance(data, dict):
        return {k: trusted(v) for k, v in data.items()}
    if isinstance(data, list):
        return [trusted(v) for v in data]
    return data


def role_vars(platform, **overrides):
    loader = DataLoader()
    variables = {}
    for name in ("defaults/main.yml", "vars/main.yml", "vars/default.yml", f"vars/{platform}.yml"):
        variables.update(trusted(loader.load_from_file(os.path.join(ROLE, name))))
    distribution, major, release = PLATFORMS[platform]
    variables["ansible_facts"] = {
        "distribution": distribution,
        "distribution_major_version": major,
        "distribution_release": release,
        "architecture": "x86_64",
        "kernel": "6.1.0-18-amd64",
    }
    variables.update(
        ansible_managed="Ansible managed",
        role_path=ROLE,
        __gpu_driver_vendor=overrides.pop("vendor", "nvidia"),
        inventory_hostname="gpu1",
    )
    variables.update(overrides)
    return loader, variables


def render(template, platform, **overrides):
    loader, variables = role_vars(platform, **overrides)
    with open(os.path.join(ROLE, "templates", template), encoding="utf-8") as fh:
        text = fh.read()
    return Templar(loader=loader, variables=variables).template(trust_as_template(text))


def value(variable, platform, **overrides):
    loader, variables = role_vars(platform, **overrides)
    return Templar(loader=loader, variables=variables).template(trust_as_template(f"{{{{ {variable} }}}}"))


def fields(text):
    """deb822 text (one stanza) -> {field: value}, comments skipped."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, val = line.partition(":")
        out[key] = val.strip()
    return out


def test_cuda_source_for_debian_12_is_flat_and_signed():
    text = render(
        "etc/apt/sources.list.d/nvidia-cuda.sources.j2", "Debian_12", gpu_driver_nvidia_source="cuda"
    )
    assert text.startswith("#")
    assert fields(text) == {
        "Types": "deb",
        "URIs": "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/",
        "Suites": "/",
        "Signed-By": "/etc/apt/keyrings/nvidia-cuda.asc",
    }


def test_cuda_source_follows_a_mirror_and_ubuntu_24():
    text = render(
        "etc/apt/sources.list.d/nvidia-cuda.sources.j2",
        "Ubuntu_24",
        gpu_driver_nvidia_source="cuda",
        gpu_driver_cuda_repo_base_url="http://mirror.lab/cuda/repos/",
    )
    assert fields(text)["URIs"] == "http://mirror.lab/cuda/repos/ubuntu2404/x86_64/"
    key = value(
        "__gpu_driver_cuda_keyring_url",
        "Ubuntu_24",
        gpu_driver_cuda_repo_base_url="http://mirror.lab/cuda/repos",
    )
    assert key == "http://mirror.lab/cuda/repos/ubuntu2404/x86_64/3bf863cc.pub"


def test_rocm_sources_pin_the_version_and_use_amds_suite():
    rocm = fields(
        render(
            "etc/apt/sources.list.d/rocm.sources.j2",
            "Ubuntu_22",
            vendor="amd",
            gpu_driver_rocm_version="6.4.1",
        )
    )
    assert rocm == {
        "Types": "deb",
        "URIs": "https://repo.radeon.com/rocm/apt/6.4.1",
        "Suites": "jammy",
        "Components": "main",
        "Architectures": "amd64",
        "Signed-By": "/etc/apt/keyrings/rocm.asc",
    }
    amdgpu = fields(render("etc/apt/sources.list.d/amdgpu.sources.j2", "Debian_12", vendor="amd"))
    assert amdgpu["URIs"] == "https://repo.radeon.com/amdgpu/6.4.3/ubuntu"
    assert amdgpu["Suites"] == "jammy"


def test_rocm_pin_prefers_amds_repository():
    pin = fields(render("etc/apt/preferences.d/gpu-driver-rocm.pref.j2", "Ubuntu_24", vendor="amd"))
    assert pin == {"Package": "*", "Pin": "release o=repo.radeon.com", "Pin-Priority": "600"}


def test_nvidia_pin_holds_every_driver_package_at_the_version():
    pin = fields(
        render(
            "etc/apt/preferences.d/gpu-driver-nvidia.pref.j2",
            "Debian_12",
            gpu_driver_nvidia_version="535.261.03",
        )
    )
    assert pin["Pin"] == "version 535.261.03-*"
    assert pin["Pin-Priority"] == "1001"
    assert "/nvidia/" in pin["Package"].split()


def test_container_toolkit_source_is_per_architecture():
    text = render("etc/apt/sources.list.d/nvidia-container-toolkit.sources.j2", "Debian_13")
    assert fields(text)["URIs"] == "https://nvidia.github.io/libnvidia-container/stable/deb/amd64"
    assert fields(text)["Suites"] == "/"


def test_package_lists_follow_source_branch_and_module_flavour():
    assert value("__gpu_driver_nvidia_packages", "Debian_12") == [
        "nvidia-driver",
        "nvidia-kernel-dkms",
        "nvidia-smi",
        "libnvidia-cfg1",
        "nvidia-persistenced",
    ]
    assert "nvidia-open-kernel-dkms" in value(
        "__gpu_driver_nvidia_packages", "Debian_13", gpu_driver_nvidia_kernel_modules="open"
    )
    assert value("__gpu_driver_nvidia_packages", "Ubuntu_24", gpu_driver_nvidia_branch="550") == [
        "nvidia-driver-550"
    ]
    assert value(
        "__gpu_driver_nvidia_packages",
        "Ubuntu_22",
        gpu_driver_nvidia_version="575.57.08",
        gpu_driver_nvidia_kernel_modules="open",
    ) == ["nvidia-driver-575-open"]
    assert value(
        "__gpu_driver_nvidia_packages",
        "Debian_12",
        gpu_driver_nvidia_source="cuda",
        gpu_driver_nvidia_branch="570",
    ) == ["cuda-drivers-570"]
    assert value(
        "__gpu_driver_nvidia_packages",
        "Debian_12",
        gpu_driver_nvidia_source="cuda",
        gpu_driver_nvidia_kernel_modules="open",
    ) == ["nvidia-open"]
    assert value("__gpu_driver_rocm_packages", "Ubuntu_24", vendor="amd", gpu_driver_rocm_source="amd") == [
        "rocm-hip-runtime",
        "rocminfo",
        "rocm-smi-lib",
        "amdgpu-dkms",
    ]


def test_blacklist_keeps_nouveau_away():
    text = render("etc/modprobe.d/blacklist-nouveau.conf.j2", "Debian_12")
    assert "blacklist nouveau" in text.splitlines()
    assert "options nouveau modeset=0" in text.splitlines()


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt to parse the sources")
def test_apt_parses_every_rendered_source(tmp_path):
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    for name, platform, extra in (
        ("nvidia-cuda.sources", "Debian_12", {"gpu_driver_nvidia_source": "cuda"}),
        ("nvidia-container-toolkit.sources", "Debian_12", {}),
        ("rocm.sources", "Ubuntu_24", {"vendor": "amd"}),
        ("amdgpu.sources", "Ubuntu_24", {"vendor": "amd"}),
    ):
        (parts / name).write_text(render(f"etc/apt/sources.list.d/{name}.j2", platform, **extra))
    result = subprocess.run(
        [
            "apt-get",
            "-o",
            "Dir::Etc::SourceList=/dev/null",
            "-o",
            f"Dir::Etc::SourceParts={parts}",
            "-o",
            "Dir::State::Lists=%s" % (tmp_path / "lists"),
            "-o",
            "APT::Architecture=amd64",
            # Prints what it would fetch; fetches nothing.
            "update",
            "--print-uris",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    uris = [word.strip("'") for word in result.stdout.split() if word.startswith("'")]
    assert "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/InRelease" in uris
    assert "https://nvidia.github.io/libnvidia-container/stable/deb/amd64/InRelease" in uris
    assert "https://repo.radeon.com/rocm/apt/6.4.3/dists/noble/InRelease" in uris
    assert "https://repo.radeon.com/amdgpu/6.4.3/ubuntu/dists/noble/InRelease" in uris
