"""The simulated GPU host (tests/standins/gpu/): the nvidia-smi stand-in prints the real
capture, refuses what the real one refuses, fails as the real one fails without its
driver, and gpu_facts, run as Ansible runs it, reads the simulated tree to the same facts a
real H100 host gives (the capture's values)."""

import json
import os
import subprocess
import sys

import gpu_samples
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STANDINS = os.path.join(ROOT, "tests", "standins", "gpu")
sys.path.insert(0, STANDINS)
import gpu_sim  # noqa: E402

CAPTURE = gpu_samples.NVIDIA_SMI_CAPTURE_H100
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


def smi(root, *args):
    proc = subprocess.run(
        [os.path.join(str(root), "usr", "bin", "nvidia-smi"), *args], capture_output=True, text=True
    )
    return proc.returncode, proc.stdout


def captured_output(command):
    """The output the capture holds for ``# $ nvidia-smi <command>``, cut by hand."""
    marker = f"# $ nvidia-smi {command}\n" + "#" * 80 + "\n"
    start = CAPTURE.index(marker) + len(marker)
    return CAPTURE[start : CAPTURE.index("\n\n\n" + "#" * 80, start) + 1]


@pytest.fixture
def loaded(tmp_path):
    gpu_sim.build(str(tmp_path / "h"), "nvidia-loaded")
    return tmp_path / "h"


def test_the_table_list_and_version_are_the_capture_byte_for_byte(loaded):
    assert smi(loaded) == (0, captured_output(""))
    assert smi(loaded, "-L") == (0, captured_output("-L"))
    assert smi(loaded, "--version") == (0, captured_output("--version"))
    assert "Driver Version: 590.48.01      CUDA Version: 13.1" in smi(loaded)[1]


def test_a_query_answers_from_the_captured_row_with_and_without_units(loaded):
    query = "--query-gpu=pci.bus_id,name,memory.total,driver_version"
    assert smi(loaded, query, "--format=csv,noheader,nounits") == (
        0,
        "00000000:00:09.0, NVIDIA H100 80GB HBM3, 81559, 590.48.01\n",
    )
    # Aliases from --help-query-gpu; the header keeps its units under nounits.
    assert smi(loaded, "--query-gpu=gpu_name,memory.total", "--format=csv") == (
        0,
        "name, memory.total [MiB]\nNVIDIA H100 80GB HBM3, 81559 MiB\n",
    )
    assert smi(loaded, "--query-gpu=memory.total", "--format=csv,nounits") == (
        0,
        "memory.total [MiB]\n81559\n",
    )


def test_a_field_the_real_one_does_not_know_is_refused_as_it_refuses_it(loaded):
    # CoHDI/composable-resource-operator issue 37: stdout, a blank line, exit code 2.
    assert smi(loaded, "--query-gpu=device_minor", "--format=csv,noheader") == (
        2,
        'Field "device_minor" is not a valid field to query.\n\n',
    )


def test_what_the_capture_does_not_hold_is_not_answered(loaded):
    rc, out = smi(loaded, "-q")
    assert rc == 2 and "stand-in" in out
    rc, out = smi(loaded, "--query-gpu=name", "--format=xml")
    assert rc == 2 and "stand-in" in out


@pytest.mark.parametrize("state", ["nvidia-nouveau", "nvidia-unbound"])
def test_without_the_nvidia_module_it_fails_as_the_real_one_does(tmp_path, state):
    gpu_sim.build(str(tmp_path / "h"), state)
    rc, out = smi(tmp_path / "h", "--query-gpu=name", "--format=csv")
    assert rc == 9  # nvidia-smi(1), RETURN VALUE: "NVIDIA driver is not loaded"
    assert out.startswith("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")


def test_the_tree_carries_the_captured_cards_identity(loaded):
    dev = loaded / "sys" / "bus" / "pci" / "devices" / "0000:00:09.0"
    assert {n: (dev / n).read_text().strip() for n in ("class", "vendor", "device")} == {
        "class": "0x030200",  # pci.baseClass 0x3, pci.subClass 0x2
        "vendor": "0x10de",
        "device": "0x2330",  # pci.device_id 0x233010DE
    }
    assert os.path.basename(os.path.realpath(dev / "driver")) == "nvidia"
    proc = (loaded / "proc" / "driver" / "nvidia" / "version").read_text()
    assert proc.startswith("NVRM version: NVIDIA UNIX x86_64 Kernel Module  590.48.01  ")
    assert (loaded / "sys" / "module" / "nvidia" / "version").read_text() == "590.48.01\n"


def test_an_existing_directory_that_is_no_simulation_is_left_alone(tmp_path):
    (tmp_path / "keep").write_text("x")
    with pytest.raises(SystemExit):
        gpu_sim.build(str(tmp_path), "nvidia-loaded")
    assert (tmp_path / "keep").read_text() == "x"


def gpu_facts(root):
    proc = subprocess.run(
        [ANSIBLE, "localhost", "-m", "gpu_facts", "-a", f"sysfs_root={root}", "-o"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.split(" => ", 1)[1])["ansible_facts"]["gpu"]


@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible is not beside this Python")
def test_gpu_facts_reads_a_loaded_host_as_a_real_one(loaded):
    gpu = gpu_facts(loaded)
    (dev,) = gpu["devices"]
    assert dev["name"] == "NVIDIA H100 80GB HBM3" and dev["driver_loaded"] is True
    assert gpu["total_vram_mib"] == 81559 and gpu["cuda_version"] == "13.1"
    assert gpu["driver_version"] == gpu["nvidia_module_version"] == "590.48.01"
    assert gpu["warnings"] == []


@pytest.mark.skipif(not os.path.exists(ANSIBLE), reason="ansible is not beside this Python")
def test_gpu_facts_reads_a_fresh_host_as_a_real_one(tmp_path):
    gpu_sim.build(str(tmp_path / "h"), "nvidia-nouveau")
    gpu = gpu_facts(tmp_path / "h")
    (dev,) = gpu["devices"]
    assert gpu["vendor"] == "nvidia" and gpu["total_vram_mib"] == 0
    assert dev["driver"] == "nouveau" and dev["driver_loaded"] is False and dev["vram_mib"] is None
    assert any("nvidia-smi" in w and "rc=9" in w and "couldn't communicate" in w for w in gpu["warnings"])
    assert any("VRAM unknown" in w for w in gpu["warnings"])
