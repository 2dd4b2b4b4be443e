"""GPU detection from sysfs trees written by the tests and real vendor tool output
(tests/unit/gpu_samples/, through gpu_fakes)."""

import os

import pytest
from ansible.module_utils import gpu_detect as gd
from gpu_fakes import (
    H100_CUDA,
    H100_DEVICE,
    H100_DRIVER,
    H100_NAME,
    H100_SLOT,
    H100_VRAM_MIB,
    NVIDIA_PROC_MODULE,
    NVIDIA_PROC_VERSION,
    PCI_IDS,
    ROCM_SMI_VRAM,
    ROCM_SMI_VRAM_MIB,
    ROCMINFO,
    FakeTools,
    add_drm_card,
    add_pci,
    nvidia_query_row,
    nvidia_smi,
    nvidia_tools,
    write,
)

GIB = 1024**3


@pytest.fixture
def root(tmp_path):
    # Every host has non-GPU PCI devices: they must be ignored.
    add_pci(str(tmp_path), "0000:00:00.0", "0x8086", "0x4650", pci_class="0x060000")
    add_pci(str(tmp_path), "0000:00:1f.3", "0x8086", "0x7a50", pci_class="0x040300", driver="snd_hda_intel")
    return str(tmp_path)


def test_host_without_gpu_or_tools_reports_vendor_none(root):
    facts = gd.detect(root, FakeTools().run, FakeTools().which)
    assert facts["vendor"] == "none"
    assert facts["devices"] == []
    assert facts["total_vram_mib"] == 0
    assert facts["source"] == "detected"
    assert facts["warnings"] == []


def test_empty_root_without_sys_reports_vendor_none(tmp_path):
    assert gd.detect(str(tmp_path))["vendor"] == "none"


def test_nvidia_with_driver_uses_nvidia_smi_for_name_vram_and_versions(root):
    add_pci(root, H100_SLOT, "0x10de", H100_DEVICE, driver="nvidia")
    write(os.path.join(root, "proc/driver/nvidia/version"), NVIDIA_PROC_VERSION)
    tools = nvidia_tools()
    facts = gd.detect(root, tools.run, tools.which)
    assert facts["vendor"] == "nvidia"
    (dev,) = facts["devices"]
    assert dev == {
        "pci_slot": H100_SLOT,
        "vendor": "nvidia",
        "vendor_id": "0x10de",
        "device_id": H100_DEVICE,
        "name": H100_NAME,
        "vram_mib": H100_VRAM_MIB,
        "driver": "nvidia",
        "driver_loaded": True,
        "integrated": False,
    }
    assert facts["total_vram_mib"] == H100_VRAM_MIB
    assert facts["driver_version"] == H100_DRIVER  # nvidia-smi's, before the module's
    assert facts["cuda_version"] == H100_CUDA
    assert facts["nvidia_module_version"] == NVIDIA_PROC_MODULE
    assert facts["warnings"] == []
    assert all(isinstance(call, list) for call in tools.calls)


def test_nvidia_without_driver_or_tools_is_detected_with_unknown_vram_and_a_warning(root):
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684", driver="nouveau")
    write(os.path.join(root, "usr/share/misc/pci.ids"), PCI_IDS)
    facts = gd.detect(root, FakeTools().run, FakeTools().which)
    assert facts["vendor"] == "nvidia"
    (dev,) = facts["devices"]
    assert dev["driver"] == "nouveau" and dev["driver_loaded"] is False
    assert dev["vram_mib"] is None and dev["name"] == "AD102 [GeForce RTX 4090]"
    assert facts["total_vram_mib"] == 0 and facts["cuda_version"] is None
    assert any("driver is not bound" in w for w in facts["warnings"])
    assert any("VRAM unknown" in w for w in facts["warnings"])


def test_nvidia_driver_version_falls_back_to_proc_when_nvidia_smi_fails(root):
    add_pci(root, H100_SLOT, "0x10de", H100_DEVICE, driver="nvidia")
    write(os.path.join(root, "proc/driver/nvidia/version"), NVIDIA_PROC_VERSION)
    tools = FakeTools({"nvidia-smi": (9, nvidia_smi.NOT_LOADED, "")})
    facts = gd.detect(root, tools.run, tools.which)
    assert facts["driver_version"] == NVIDIA_PROC_MODULE
    assert any("nvidia-smi" in w and "rc=9" in w for w in facts["warnings"])


def test_device_without_pci_ids_gets_a_generic_name(root):
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684")
    assert gd.detect(root)["devices"][0]["name"] == "NVIDIA device 0x2684"


def test_amd_vram_comes_from_drm_card_matched_by_pci_path(root):
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c", driver="amdgpu")
    add_drm_card(root, "card1", "0000:03:00.0", vram_bytes=24 * GIB)
    write(os.path.join(root, "opt/rocm/.info/version"), "6.2.0-96\n")
    tools = FakeTools({"rocminfo": (0, ROCMINFO, "")})
    facts = gd.detect(root, tools.run, tools.which)
    assert facts["vendor"] == "amd"
    (dev,) = facts["devices"]
    assert dev["vram_mib"] == 24576 and dev["driver_loaded"] is True
    assert facts["total_vram_mib"] == 24576
    assert facts["rocm_version"] == "6.2.0-96"
    assert facts["gfx_targets"] == ["gfx942"]
    assert not any(call[0].endswith("rocm-smi") for call in tools.calls)  # sysfs was enough


def test_amd_vram_falls_back_to_rocm_smi_json(root):
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c", driver="amdgpu")
    tools = FakeTools(
        {
            ("rocm-smi", ("--showmeminfo", "vram", "--json")): (0, ROCM_SMI_VRAM, ""),
            "rocminfo": (0, ROCMINFO, ""),
        }
    )
    facts = gd.detect(root, tools.run, tools.which)
    assert facts["devices"][0]["vram_mib"] == ROCM_SMI_VRAM_MIB
    assert facts["total_vram_mib"] == ROCM_SMI_VRAM_MIB
    assert facts["rocm_version"] == "1.14"  # no /opt/rocm/.info/version: the rocminfo runtime


def test_intel_igpu_alone_is_vendor_intel_with_no_vram(root):
    add_pci(root, "0000:00:02.0", "0x8086", "0xa780", driver="i915")
    facts = gd.detect(root)
    assert facts["vendor"] == "intel"
    assert facts["devices"][0]["vram_mib"] is None
    assert facts["devices"][0]["driver_loaded"] is True
    assert facts["total_vram_mib"] == 0
    assert facts["warnings"] == []


def test_mixed_intel_igpu_and_nvidia_dgpu_picks_nvidia_and_counts_only_its_vram(root):
    add_pci(root, "0000:00:02.0", "0x8086", "0xa780", driver="i915")
    add_pci(root, H100_SLOT, "0x10de", H100_DEVICE, driver="nvidia")
    tools = nvidia_tools()
    facts = gd.detect(root, tools.run, tools.which)
    assert facts["vendor"] == "nvidia"
    assert [d["vendor"] for d in facts["devices"]] == ["intel", "nvidia"]
    assert facts["total_vram_mib"] == H100_VRAM_MIB


def test_nvidia_beats_amd_and_two_nvidia_cards_sum(root):
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c", driver="amdgpu", vram_bytes=16 * GIB)
    add_pci(root, H100_SLOT, "0x10de", H100_DEVICE, driver="nvidia")
    add_pci(root, "0000:00:0a.0", "0x10de", H100_DEVICE, driver="nvidia")
    # The captured card twice: nvidia-smi lists one row per card, its bus id in upper case.
    two = nvidia_query_row() + nvidia_query_row("00000000:00:0A.0")
    tools = nvidia_tools(two)
    facts = gd.detect(root, tools.run, tools.which)
    assert facts["vendor"] == "nvidia"
    assert facts["total_vram_mib"] == 2 * H100_VRAM_MIB


def test_amd_apu_integrated_gpu_is_not_pooled_with_the_discrete_card(root):
    """A Ryzen APU's Radeon (512 MiB carve-out, its usual size) beside a discrete card:
    only the discrete card's VRAM counts, as Ollama's discovery skips the iGPU."""
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c", driver="amdgpu", vram_bytes=24 * GIB)
    add_pci(root, "0000:0e:00.0", "0x1002", "0x164e", driver="amdgpu", vram_bytes=512 * 1024 * 1024)
    facts = gd.detect(root)
    assert facts["vendor"] == "amd" and facts["total_vram_mib"] == 24576
    igpu = [d for d in facts["devices"] if d["pci_slot"] == "0000:0e:00.0"][0]
    assert igpu["integrated"] is True
    assert any("integrated GPU with 512 MiB" in w for w in facts["warnings"])


def test_amd_apu_alone_plans_for_the_cpu_not_its_carve_out(root):
    add_pci(root, "0000:0e:00.0", "0x1002", "0x164e", driver="amdgpu", vram_bytes=512 * 1024 * 1024)
    facts = gd.gpu_facts(root)
    assert facts["vendor"] == "none" and facts["total_vram_mib"] == 0
    host = _plan_fresh_host(facts)
    assert not host["refused"], host["errors"]
    assert host["instances"][0]["device"] == "cpu"


def test_3d_controller_class_counts_as_a_gpu(root):
    add_pci(root, "0000:01:00.0", "0x10de", "0x20b0", pci_class="0x030200", driver="nvidia")
    assert gd.detect(root)["vendor"] == "nvidia"


def test_unknown_vendor_display_controller_is_ignored(root):
    add_pci(root, "0000:05:00.0", "0x1a03", "0x2000", driver="ast")  # BMC graphics
    assert gd.detect(root)["vendor"] == "none"


@pytest.mark.parametrize(
    "given, expected",
    [("00000000:01:00.0", "0000:01:00.0"), ("0000:81:00.0", "0000:81:00.0"), ("01:00.0", "0000:01:00.0")],
)
def test_bus_ids_are_normalised_to_sysfs_slots(given, expected):
    assert gd.normalise_bus_id(given) == expected


def test_rocm_smi_parser_ignores_garbage():
    assert gd.parse_rocm_smi_vram("not json") == []
    assert gd.parse_rocm_smi_vram("[]") == []


def test_vendor_override_without_vram_keeps_detected_vram_when_vendor_matches(root):
    add_pci(root, H100_SLOT, "0x10de", H100_DEVICE, driver="nvidia")
    tools = nvidia_tools()
    facts = gd.gpu_facts(root, "nvidia", None, tools.run, tools.which)
    assert facts["source"] == "inventory"
    assert facts["vendor"] == "nvidia" and facts["total_vram_mib"] == H100_VRAM_MIB


def test_vendor_override_without_vram_gives_zero_when_vendor_differs(root):
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684", driver="nvidia")
    tools = nvidia_tools()
    facts = gd.gpu_facts(root, "amd", None, tools.run, tools.which)
    assert facts["vendor"] == "amd" and facts["total_vram_mib"] == 0
    assert facts["detected_vendor"] == "nvidia"


def test_vendor_and_vram_override_on_a_host_without_gpu(root):
    facts = gd.gpu_facts(root, "nvidia", 24576)
    assert facts == {**facts, "vendor": "nvidia", "total_vram_mib": 24576, "source": "inventory"}
    assert facts["detected_vendor"] == "none"


def test_vram_override_with_auto_vendor_keeps_the_detected_vendor(root):
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c", driver="amdgpu", vram_bytes=16 * GIB)
    facts = gd.gpu_facts(root, "auto", 8192)
    assert facts["vendor"] == "amd" and facts["total_vram_mib"] == 8192 and facts["source"] == "inventory"


def test_vendor_none_override_hides_a_detected_gpu(root):
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c", driver="amdgpu", vram_bytes=16 * GIB)
    facts = gd.gpu_facts(root, "none", 16384)
    assert facts["vendor"] == "none" and facts["total_vram_mib"] == 0
    assert any("ignored" in w for w in facts["warnings"])


def test_no_override_leaves_detection_alone(root):
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c", driver="amdgpu", vram_bytes=16 * GIB)
    assert gd.gpu_facts(root)["source"] == "detected"


def test_unknown_override_vendor_is_an_error():
    with pytest.raises(ValueError):
        gd.apply_overrides(gd.from_inventory("none", None), "matrox")


def test_from_inventory_builds_facts_without_a_host():
    facts = gd.from_inventory("amd", 16384)
    assert facts["vendor"] == "amd" and facts["total_vram_mib"] == 16384 and facts["source"] == "inventory"


# ---------------------------------------------------------------- a fresh GPU host, detection to plan


def _plan_fresh_host(facts):
    from ansible.module_utils import serving_plan as sp

    instance = {"name": "coder", "backend": "llamacpp", "model": "m.gguf", "port": 8080}
    model = {
        "format": "gguf",
        "layers": 28,
        "heads": 28,
        "kv_heads": 4,
        "embedding_length": 3584,
        "context_length": 32768,
        "size_bytes": 4683 * 1024 * 1024,
        "complete": True,
        "servable": True,
    }
    return sp.plan_host("ws", [instance], {"m.gguf": model}, facts, 65536)


@pytest.mark.parametrize("driver", [None, "nouveau"])
def test_fresh_nvidia_host_is_refused_asking_for_gpu_vram_mib_never_planned_for_the_cpu(root, driver):
    """Before the driver loads, nothing reads the card's memory: the plan must not fall
    back to the CPU (a CPU plan, and so a CPU build, for a GPU host) but ask for it."""
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684", driver=driver)
    write(os.path.join(root, "usr/share/misc/pci.ids"), PCI_IDS)
    facts = gd.gpu_facts(root, "auto", None, FakeTools().run, FakeTools().which)
    host = _plan_fresh_host(facts)
    assert host["refused"]
    (message,) = host["errors"]
    assert message.startswith(
        "ws/coder: gpu_vram_mib: the NVIDIA GPU (AD102 [GeForce RTX 4090] at 0000:01:00.0"
    )
    assert f"driver: {driver or 'none'}" in message and "not loaded" in message
    assert "set gpu_vram_mib" in message
    assert not any("runs on the CPU" in r for r in host["instances"][0]["reasons"])


def test_fresh_nvidia_host_with_gpu_vram_mib_is_planned_for_its_gpu(root):
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684")
    facts = gd.gpu_facts(root, "auto", 24576, FakeTools().run, FakeTools().which)
    host = _plan_fresh_host(facts)
    assert not host["refused"], host["errors"]
    (p,) = host["instances"]
    assert p["device"] == "gpu" and p["gpu_layers"] == 29 and p["estimated_vram_mib"] > 0


def test_the_same_host_after_its_driver_loads_needs_no_gpu_vram_mib(root):
    add_pci(root, H100_SLOT, "0x10de", H100_DEVICE, driver="nvidia")
    facts = gd.gpu_facts(root, "auto", None, nvidia_tools().run, nvidia_tools().which)
    host = _plan_fresh_host(facts)
    assert not host["refused"], host["errors"]
    assert host["instances"][0]["gpu_layers"] == 29


def test_driver_loaded_but_no_memory_reported_says_so(root):
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684", driver="nvidia")
    tools = FakeTools({"nvidia-smi": (9, nvidia_smi.NOT_LOADED, "")})
    host = _plan_fresh_host(gd.gpu_facts(root, "auto", None, tools.run, tools.which))
    (message,) = host["errors"]
    assert "reports no memory size (nvidia-smi gave none" in message


def test_fresh_amd_host_without_amdgpu_bound_is_refused_too(root):
    add_pci(root, "0000:03:00.0", "0x1002", "0x744c")
    host = _plan_fresh_host(gd.gpu_facts(root, "auto", None, FakeTools().run, FakeTools().which))
    (message,) = host["errors"]
    assert "ws/coder: gpu_vram_mib: the AMD GPU" in message and "not loaded" in message


def test_gpu_vendor_from_inventory_without_a_card_or_vram_is_refused(root):
    host = _plan_fresh_host(gd.gpu_facts(root, "nvidia", None, FakeTools().run, FakeTools().which))
    (message,) = host["errors"]
    assert "gpu_vendor is nvidia but no NVIDIA GPU was found on the host" in message


def test_gpu_vendor_none_is_how_a_gpu_host_is_planned_for_the_cpu(root):
    add_pci(root, "0000:01:00.0", "0x10de", "0x2684")
    host = _plan_fresh_host(gd.gpu_facts(root, "none", None, FakeTools().run, FakeTools().which))
    assert not host["refused"], host["errors"]
    (p,) = host["instances"]
    assert p["device"] == "cpu" and any("runs on the CPU" in r for r in p["reasons"])


# ---------------------------------------------------------------- real tool output (gpu_samples.py)


def test_cuda_version_from_real_nvidia_smi_headers_of_three_driver_generations():
    import gpu_samples as real

    assert gd.parse_cuda_version(real.NVIDIA_SMI_535_H100) == "12.2"
    assert gd.parse_cuda_version(real.NVIDIA_SMI_590_H100) == "13.1"
    # Driver 610 prints "CUDA UMD Version:".
    assert gd.parse_cuda_version(real.NVIDIA_SMI_610_HEADER_LINE) == "13.3"


def test_module_version_from_real_proc_files_proprietary_and_open():
    import gpu_samples as real

    assert gd.parse_nvidia_proc_version(real.PROC_NVIDIA_580) == "580.173.02"
    assert gd.parse_nvidia_proc_version(real.PROC_NVIDIA_OPEN_565) == "565.57.01"


def test_real_rocm_smi_json_gives_the_vram():
    import gpu_samples as real

    (card,) = gd.parse_rocm_smi_vram(real.ROCM_SMI_RX7900XT)
    assert card == {"card": "card0", "vram_mib": 21458059264 // (1024 * 1024), "pci_slot": None}


def test_real_rocminfo_gives_the_gpu_target_not_the_cpu_agents():
    import gpu_samples as real

    text = real.ROCMINFO_MI300A_HEAD + real.ROCMINFO_MI300A_AGENT
    assert gd.parse_rocminfo(text) == {"gfx_targets": ["gfx942"], "runtime_version": "1.14"}
