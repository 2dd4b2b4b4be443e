"""Real output of the GPU tools (tests/unit/gpu_samples/, sources in its SOURCES.md)."""

import os

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu_samples")


def read(name):
    """One sample's text, byte for byte (no newline translation)."""
    with open(os.path.join(_DIR, name), encoding="utf-8", newline="") as fh:
        return fh.read()


NVIDIA_SMI_590_H100 = read("nvidia-smi-590.48.01-h100.txt")
NVIDIA_SMI_CAPTURE_H100 = read("nvidia-smi-capture-h100-80gb-hbm3-590.48.01.txt")
NVIDIA_SMI_610_HEADER_LINE = read("nvidia-smi-610.57.04-header-line.txt")
NVIDIA_SMI_535_H100 = read("nvidia-smi-535.129.03-h100.txt")
PROC_NVIDIA_580 = read("proc-driver-nvidia-version-580.173.02.txt")
PROC_NVIDIA_OPEN_565 = read("proc-driver-nvidia-version-open-565.57.01.txt")
ROCM_SMI_RX7900XT = read("rocm-smi-json-rx7900xt.json")
ROCMINFO_MI300A_HEAD = read("rocminfo-mi300a-head.txt")
ROCMINFO_MI300A_AGENT = read("rocminfo-mi300a-agent5.txt")
