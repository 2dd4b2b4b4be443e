"""The gpu_facts module: options, facts shape, check mode, no changes."""

import json
import os
import subprocess
import sys

import gpu_facts
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from gpu_fakes import (
    H100_CUDA,
    H100_DEVICE,
    H100_SLOT,
    H100_VRAM_MIB,
    NVIDIA_SMI_QUERY,
    NVIDIA_SMI_TABLE,
    add_pci,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run_module(monkeypatch, args, tools=None):
    """Run gpu_facts.main() with args; vendor tools are faked (none by default)."""
    tools = tools or {}
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: tools.get(name) and name)

    def fake_run(self, args, *a, **k):
        assert isinstance(args, list), "run_command must get an argument list"
        return tools[args[0]](args)

    monkeypatch.setattr(AnsibleModule, "run_command", fake_run)
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        gpu_facts.main()
    return exc.value.code


def result(capsys):
    return json.loads(capsys.readouterr().out)


def test_no_gpu_tree_reports_vendor_none_and_changes_nothing(tmp_path, monkeypatch, capsys):
    assert run_module(monkeypatch, {"sysfs_root": str(tmp_path)}) == 0
    out = result(capsys)
    assert out["changed"] is False
    assert out["ansible_facts"]["gpu"]["vendor"] == "none"
    assert out["ansible_facts"]["gpu"]["source"] == "detected"


def test_nvidia_tree_with_fake_nvidia_smi_reports_vram(tmp_path, monkeypatch, capsys):
    add_pci(str(tmp_path), H100_SLOT, "0x10de", H100_DEVICE, driver="nvidia")

    def smi(args):
        return (0, NVIDIA_SMI_QUERY if len(args) > 1 else NVIDIA_SMI_TABLE, "")

    run_module(monkeypatch, {"sysfs_root": str(tmp_path)}, {"nvidia-smi": smi})
    gpu = result(capsys)["ansible_facts"]["gpu"]
    assert (
        gpu["vendor"] == "nvidia"
        and gpu["total_vram_mib"] == H100_VRAM_MIB
        and gpu["cuda_version"] == H100_CUDA
    )


def test_check_mode_gives_the_same_facts(tmp_path, monkeypatch, capsys):
    add_pci(str(tmp_path), "0000:00:02.0", "0x8086", "0xa780", driver="i915")
    run_module(monkeypatch, {"sysfs_root": str(tmp_path), "_ansible_check_mode": True})
    out = result(capsys)
    assert out["changed"] is False and out["ansible_facts"]["gpu"]["vendor"] == "intel"


def test_inventory_override_sets_vendor_vram_and_source(tmp_path, monkeypatch, capsys):
    run_module(monkeypatch, {"sysfs_root": str(tmp_path), "vendor": "amd", "vram_mib": 16384})
    gpu = result(capsys)["ansible_facts"]["gpu"]
    assert (gpu["vendor"], gpu["total_vram_mib"], gpu["source"]) == ("amd", 16384, "inventory")


def test_unknown_vendor_choice_fails(tmp_path, monkeypatch, capsys):
    assert run_module(monkeypatch, {"sysfs_root": str(tmp_path), "vendor": "matrox"}) == 1
    assert "vendor" in result(capsys)["msg"]


def test_negative_vram_fails(tmp_path, monkeypatch, capsys):
    assert run_module(monkeypatch, {"sysfs_root": str(tmp_path), "vram_mib": -1}) == 1
    assert "vram_mib must be 0 or more" in result(capsys)["msg"]


def test_module_documentation_is_valid_yaml_declaring_check_mode():
    import yaml

    doc = yaml.safe_load(gpu_facts.DOCUMENTATION)
    assert doc["module"] == "gpu_facts"
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert set(doc["options"]) == {"sysfs_root", "vendor", "vram_mib"}
    yaml.safe_load(gpu_facts.EXAMPLES)
    yaml.safe_load(gpu_facts.RETURN)


def test_ad_hoc_ansible_command_runs_the_module_from_the_repo_root():
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    if not os.path.exists(ansible):
        pytest.skip("ansible is not installed beside this Python")
    proc = subprocess.run(
        [ansible, "localhost", "-m", "gpu_facts", "-a", "vendor=nvidia vram_mib=8192", "-o"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"total_vram_mib": 8192' in proc.stdout and '"source": "inventory"' in proc.stdout
