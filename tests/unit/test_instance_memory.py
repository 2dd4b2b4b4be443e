"""The instance_memory module and the verify_measured filter: what each instance uses
against its plan. GPU processes are nvidia-smi's real output (the H100 capture under load,
tests/unit/gpu_samples/, the columns the module asks for, as the nvidia-smi stand-in
answers them); systemctl and ps output is in their documented formats."""

import os
import sys

import gpu_samples
import instance_memory as im
from verify import verify_measured, verify_units

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "standins", "gpu"))
import nvidia_smi  # noqa: E402

MIB = 1024 * 1024


def captured_compute_apps():
    """The capture's processes under load, as `--query-compute-apps=pid,gpu_bus_id,
    used_gpu_memory --format=csv,noheader,nounits` prints them: 11327 (2566 MiB), 11328
    (1542 MiB) and 11345 (15690 MiB) on 00000000:00:09.0."""
    return nvidia_smi.answer(
        nvidia_smi.sections(gpu_samples.NVIDIA_SMI_CAPTURE_H100),
        "--query-compute-apps",
        ["pid", "gpu_bus_id", "used_gpu_memory"],
        ["csv", "noheader", "nounits"],
        rows_section="load :: query-compute-apps (per-process)",
    )


SYSTEMCTL = f"Id=llamacpp-big.service\nMemoryCurrent={5 * 1024 * MIB}\n\nId=ollama-chat.service\nMemoryCurrent=[not set]\n"
PS = "    1 init.scope\n11327 -\n11328 ollama-chat.service\n11345 llamacpp-big.service\n"


def fake(smi=True):
    calls = []

    def run(args):
        calls.append(args)
        if args[0] == "systemctl":
            return 0, SYSTEMCTL, ""
        if args[0] == "ps":
            return 0, PS, ""
        if args[0].endswith("nvidia-smi"):
            return 0, captured_compute_apps(), ""
        return 127, "", "not faked"

    return run, (lambda name: "/usr/bin/" + name if smi else None), calls


def test_ram_per_unit_and_gpu_memory_per_process_of_the_unit():
    run, which, calls = fake()
    out = im.measure(["llamacpp-big.service", "ollama-chat.service"], run, which)
    big, chat = out["units"]["llamacpp-big.service"], out["units"]["ollama-chat.service"]
    assert big == {"ram_mib": 5120, "pids": [11345], "gpu_mib": {"0000:00:09.0": 15690}}
    assert chat == {"ram_mib": None, "pids": [11328], "gpu_mib": {"0000:00:09.0": 1542}}
    assert {p["pid"]: p["unit"] for p in out["gpu_processes"]} == {
        11327: None,
        11328: "ollama-chat.service",
        11345: "llamacpp-big.service",
    }
    assert calls[0] == [
        "systemctl",
        "show",
        "-p",
        "Id",
        "-p",
        "MemoryCurrent",
        "llamacpp-big.service",
        "ollama-chat.service",
    ]
    assert out["warnings"] == []


def test_a_host_without_nvidia_smi_reports_no_gpu_figures():
    run, which, _ = fake(smi=False)
    out = im.measure(["llamacpp-big.service"], run, which)
    assert out["units"]["llamacpp-big.service"]["gpu_mib"] == {} and out["gpu_processes"] == []


def test_nvidia_smi_without_its_driver_is_a_warning_not_a_figure():
    def run(args):
        if args[0].endswith("nvidia-smi"):
            return 9, nvidia_smi.NOT_LOADED, ""
        return 0, SYSTEMCTL if args[0] == "systemctl" else PS, ""

    out = im.measure(["llamacpp-big.service"], run, lambda n: "/usr/bin/" + n)
    assert out["units"]["llamacpp-big.service"]["gpu_mib"] == {}
    assert out["warnings"][0].startswith(
        "nvidia-smi --query-compute-apps failed (rc=9): NVIDIA-SMI has failed"
    )


def rows():
    return [
        {"name": "big", "backend": "llamacpp", "estimated_vram_mib": 12000, "estimated_ram_mib": 6000},
        {"name": "chat", "backend": "ollama", "estimated_vram_mib": 1500, "estimated_ram_mib": 1000},
    ]


def test_measured_figures_join_the_rows_and_what_exceeds_the_plan_is_a_warning():
    run, which, _ = fake()
    memory = im.measure(["llamacpp-big.service", "ollama-chat.service"], run, which)
    out = verify_measured(rows(), memory, "ws", 0.25)
    big, chat = out["instances"]
    assert (big["measured_ram_mib"], big["measured_vram_mib"]) == (5120, 15690)
    assert (chat["measured_ram_mib"], chat["measured_vram_mib"]) == (None, 1542)
    # 15690 > 12000 x 1.25: named; chat's 1542 against 1500 is within the margin.
    assert out["warnings"] == [
        "ws/big: uses 15690 MiB of VRAM, planned 12000 MiB (more than 25% above the plan)"
    ]
    assert out["gpus"] == [{"bus_id": "0000:00:09.0", "instances_mib": 15690 + 1542, "others_mib": 2566}]
    assert out["measured_vram_mib"] == 15690 + 1542


def test_without_measurements_the_rows_stay_as_planned():
    out = verify_measured(rows(), {}, "ws")
    assert [r["measured_ram_mib"] for r in out["instances"]] == [None, None]
    assert out["warnings"] == [] and out["gpus"] == [] and out["measured_vram_mib"] is None


def test_units_are_named_by_backend_and_instance():
    assert verify_units(rows() + [{"name": "x"}]) == ["llamacpp-big.service", "ollama-chat.service"]
