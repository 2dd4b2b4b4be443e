"""roles/llamacpp_server: a GPU source build the installed toolkit cannot make is refused
before the build, naming the host and the variable.

One ansible-playbook run on localhost aliases (connection local) runs the role's input
checks (tasks_from: validate) and its toolkit checks (tasks_from: toolkit, which
tasks/source.yml runs after installing the toolchain), each host with one toolkit:

- CUDA: ``nvcc-standin``, a stand-in for Debian 12's nvcc 11.8 (nvidia-cuda-toolkit is
  non-free and about 1.7 GB installed): it answers ``--version`` and ``--list-gpu-arch``
  with the real output captured from that nvcc (gpu_samples/, SOURCES.md);
- HIP: a ROCM_PATH holding Debian 12's real hip-config-version.cmake (5.2.0), or the same
  file with its version set to 6.1.40091 as ROCm 6.1's says it;
- Vulkan: an include directory holding the version lines of Debian 12's (1.3.239) or
  Debian 13's (1.4.309) vulkan_core.h, found through -DVulkan_INCLUDE_DIR or VULKAN_SDK
  as CMake's FindVulkan finds it.

The play runs again in check mode for one host of each kind: the refusals hold, nothing
reports a change, and a host whose toolkit is not installed yet is not refused (check mode
installs nothing).
"""

import json
import os
import re
import subprocess
import sys

import pytest
from gpu_samples import read as sample

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(sys.executable)
SOURCE_URL = "https://example.invalid/llama.cpp-0c1e570.tar.gz"

PLAYBOOK = """
- name: Check a GPU source build of llama-server
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the install settings
      ansible.builtin.include_role:
        name: llamacpp_server
        tasks_from: validate.yml

    - name: Check the installed toolkit
      ansible.builtin.include_role:
        name: llamacpp_server
        tasks_from: toolkit.yml
"""


def make_toolkits(root):
    """The stand-in nvcc, two ROCm prefixes and two Vulkan include directories under ``root``."""
    nvcc = root / "cuda" / "bin" / "nvcc-standin"
    nvcc.parent.mkdir(parents=True)
    for name in ("version", "list-gpu-arch"):
        (nvcc.parent / f"nvcc-{name}.txt").write_text(sample(f"nvcc-11.8.89-debian12-{name}.txt"))
    nvcc.write_text(
        "#!/bin/sh\n"
        "# Stand-in for Debian 12's nvcc 11.8.89: its real --version and --list-gpu-arch output.\n"
        'here=$(dirname "$0")\n'
        'case "$1" in\n'
        '  --version) cat "$here/nvcc-version.txt" ;;\n'
        '  --list-gpu-arch) cat "$here/nvcc-list-gpu-arch.txt" ;;\n'
        '  *) echo "nvcc fatal   : stand-in knows only --version and --list-gpu-arch" >&2; exit 1 ;;\n'
        "esac\n"
    )
    nvcc.chmod(0o755)
    hip = sample("hip-config-version-5.2.0-debian12.cmake")
    for name, text in (("rocm-5.2", hip), ("rocm-6.1", hip.replace('"5.2.0"', '"6.1.40091"'))):
        path = root / name / "lib" / "cmake" / "hip" / "hip-config-version.cmake"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    for name, fixture in (
        ("vulkan-1.3.239/include", "vulkan_core-1.3.239-debian12-version.txt"),
        ("vulkan-1.4.309/include", "vulkan_core-1.4.309-debian13-version.txt"),
    ):
        path = root / name / "vulkan" / "vulkan_core.h"
        path.parent.mkdir(parents=True)
        path.write_text(sample(fixture))
    return {"nvcc": str(nvcc), "root": str(root)}


def host_vars(tk):
    root = tk["root"]
    return {
        "cuda120": {"llamacpp_server_variant": "cuda", "llamacpp_server_gpu_targets": ["120", "86-real"]},
        "cudadefault": {"llamacpp_server_variant": "cuda", "llamacpp_server_gpu_targets": []},
        "cudaarg": {
            "llamacpp_server_variant": "cuda",
            "llamacpp_server_gpu_targets": ["86-real"],
            "llamacpp_server_cmake_args": ["-DCMAKE_CUDA_ARCHITECTURES=90-real"],
        },
        "cudagfx": {"llamacpp_server_variant": "cuda", "llamacpp_server_gpu_targets": ["gfx1100"]},
        "cudagood": {
            "llamacpp_server_variant": "cuda",
            "llamacpp_server_gpu_targets": ["86-real", "89-real"],
        },
        "cudamissing": {
            "llamacpp_server_variant": "cuda",
            "llamacpp_server_gpu_targets": ["86-real"],
            "llamacpp_server_build_environment": {"CUDACXX": f"{root}/not-installed/bin/nvcc"},
        },
        "hip52": {
            "llamacpp_server_variant": "hip",
            "llamacpp_server_gpu_targets": ["gfx1100"],
            "llamacpp_server_build_environment": {"ROCM_PATH": f"{root}/rocm-5.2"},
        },
        "hip61": {
            "llamacpp_server_variant": "hip",
            "llamacpp_server_gpu_targets": ["gfx1100"],
            "llamacpp_server_build_environment": {"ROCM_PATH": f"{root}/rocm-6.1"},
        },
        "vulkan239": {
            "llamacpp_server_variant": "vulkan",
            "llamacpp_server_cmake_args": [f"-DVulkan_INCLUDE_DIR={root}/vulkan-1.3.239/include"],
        },
        "vulkan309": {
            "llamacpp_server_variant": "vulkan",
            "llamacpp_server_build_environment": {"VULKAN_SDK": f"{root}/vulkan-1.4.309"},
        },
        "vulkanmissing": {
            "llamacpp_server_variant": "vulkan",
            "llamacpp_server_cmake_args": [f"-DVulkan_INCLUDE_DIR={root}/not-installed/include"],
        },
    }


def run(tmp_path, check, only=None):
    tk = make_toolkits(tmp_path / "toolkits")
    hosts = {h: v for h, v in host_vars(tk).items() if only is None or h in only}
    cuda_env = {"CUDACXX": tk["nvcc"]}
    inventory = {}
    for host, hv in hosts.items():
        hv = dict(hv)
        if hv["llamacpp_server_variant"] == "cuda":
            hv.setdefault("llamacpp_server_build_environment", cuda_env)
        hv["llamacpp_server_gpu_vendor"] = {"cuda": "nvidia", "hip": "amd"}.get(
            hv["llamacpp_server_variant"], "none"
        )
        inventory[host] = dict(hv, ansible_connection="local", ansible_python_interpreter=sys.executable)
    (tmp_path / "hosts.json").write_text(
        json.dumps(
            {
                "all": {
                    "hosts": inventory,
                    "vars": {
                        "llamacpp_server_install": "source",
                        # A URL: validation takes it as it is, and nothing here downloads it.
                        "llamacpp_server_source": SOURCE_URL,
                        "llamacpp_server_source_sha256": "0" * 64,
                    },
                }
            }
        )
    )
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        ANSIBLE_FORKS="12",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"),
    )
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "hosts.json", "play.yml"]
        + (["--check"] if check else []),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    results = {h: {"failed": False, "changed": 0, "messages": "", "failed_task": ""} for h in hosts}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    results[host]["failed"] = True
                    results[host]["failed_task"] = task["task"]["name"]
                    results[host]["messages"] += str(res.get("msg", res)) + "\n"
                if res.get("changed"):
                    results[host]["changed"] += 1
    return results


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    return run(tmp_path_factory.mktemp("gpu-build"), check=False)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return run(tmp_path_factory.mktemp("gpu-build-check"), check=True, only=CHECK_HOSTS)


REFUSED = {
    "cuda120": (
        "Refuse CUDA architectures the installed CUDA toolkit cannot build",
        r"^cuda120: llamacpp_server_gpu_targets \(120, 86-real\) names CUDA architectures 120, which the installed "
        r"nvcc \(\S+/nvcc-standin, CUDA 11\.8\) does not know; it knows 35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, "
        r"80, 86, 87, 89, 90 \(nvcc --list-gpu-arch\)",
    ),
    "cudadefault": (
        "Refuse CUDA architectures the installed CUDA toolkit cannot build",
        r"^cudadefault: llamacpp_server_gpu_targets is empty, so upstream's default list for CUDA 11\.8 applies "
        r"\(50-virtual, .*, 90-virtual; ggml/src/ggml-cuda/CMakeLists\.txt:40-68\), which names 90-virtual, "
        r"and llama\.cpp 0c1e570's CUDA code .* cudaGridDependencySynchronize",
    ),
    "cudaarg": (
        "Refuse CUDA architectures the installed CUDA toolkit cannot build",
        r"^cudaarg: llamacpp_server_cmake_args \(-DCMAKE_CUDA_ARCHITECTURES=90-real\) names 90-real, ",
    ),
    "cudagfx": (
        "Check that the GPU targets are the variant's",
        r"^cudagfx: llamacpp_server_gpu_targets of a cuda source build holds gfx1100, which is no CUDA architecture",
    ),
    "hip52": (
        "Refuse a HIP older than the build needs",
        r"^hip52: llamacpp_server_variant is hip, and llama\.cpp 0c1e570 needs ROCm/HIP 6\.1 or later "
        r"\(ggml/src/ggml-hip/CMakeLists\.txt:54-56\), but \S+/rocm-5\.2/lib/cmake/hip/hip-config-version\.cmake "
        r"says HIP 5\.2\.0\.",
    ),
    "vulkan239": (
        "Refuse Vulkan headers older than the build needs",
        r"^vulkan239: llamacpp_server_variant vulkan with llamacpp_server_install source needs the Vulkan "
        r"headers 1\.3\.272 or later \(llama\.cpp 0c1e570's ggml/src/ggml-vulkan/ggml-vulkan\.cpp:5214-5224 uses "
        r"VK_EXT_layer_settings\), but \S+/vulkan-1\.3\.239/include/vulkan/vulkan_core\.h is 1\.3\.239",
    ),
}
# Not installed: refused in a real run (the toolchain's packages did not bring it), not
# checked in check mode (where the install is only reported).
NOT_INSTALLED = {
    "cudamissing": (
        "Refuse CUDA architectures the installed CUDA toolkit cannot build",
        r"^cudamissing: llamacpp_server_variant is cuda, but the CUDA compiler CMake would use "
        r"\(\S+/not-installed/bin/nvcc\) did not run or did not print its version and architectures: .*\(rc \d+\)\. ",
    ),
    "vulkanmissing": (
        "Refuse Vulkan headers older than the build needs",
        r"^vulkanmissing: .* but \S+/not-installed/include/vulkan/vulkan_core\.h was not found",
    ),
}
PASSING = ["cudagood", "hip61", "vulkan309"]


# One of each kind in check mode.
CHECK_HOSTS = [
    "cuda120",
    "cudagfx",
    "hip52",
    "vulkan239",
    "cudamissing",
    "vulkanmissing",
    "cudagood",
    "hip61",
]


@pytest.mark.parametrize("host", sorted(REFUSED) + sorted(NOT_INSTALLED))
def test_a_build_the_toolkit_cannot_make_is_refused_naming_host_and_variable(ran, host):
    """REFUSED: a toolkit too old or without the architecture; NOT_INSTALLED: none there."""
    task, pattern = {**REFUSED, **NOT_INSTALLED}[host]
    result = ran[host]
    assert result["failed"] and result["failed_task"].endswith(task), result
    assert re.search(pattern, result["messages"], re.M), result
    assert result["changed"] == 0, result


@pytest.mark.parametrize("host", PASSING)
def test_a_toolkit_that_can_build_it_passes_without_a_change(ran, host):
    assert not ran[host]["failed"], ran[host]
    assert ran[host]["changed"] == 0, ran[host]


def test_check_mode_refuses_the_same_skips_what_is_not_installed_and_changes_nothing(checked):
    for host in CHECK_HOSTS:
        result = checked[host]
        assert result["changed"] == 0, (host, result)
        if host in REFUSED:
            task, pattern = REFUSED[host]
            assert result["failed"] and result["failed_task"].endswith(task), (host, result)
            assert re.search(pattern, result["messages"], re.M), (host, result)
        else:
            # Passing, or its toolkit not installed yet: check mode would only report the install.
            assert not result["failed"], (host, result)
