"""Fake sysfs trees and fake vendor tools for the GPU detection tests."""

import json
import os

NVIDIA_SMI_4090 = "00000000:01:00.0, NVIDIA GeForce RTX 4090, 24564, 550.54.14\n"
NVIDIA_SMI_HEADER = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.14              Driver Version: 550.54.14      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""
NVIDIA_PROC_VERSION = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)
ROCM_SMI_VRAM = json.dumps(
    {"card0": {"VRAM Total Memory (B)": "17163091968", "VRAM Total Used Memory (B)": "123456"}}
)
ROCMINFO = """\
ROCk module is loaded
=====================
HSA System Attributes
=====================
Runtime Version:         1.14
*******
Agent 1
*******
  Name:                    AMD Ryzen 9 7950X 16-Core Processor
*******
Agent 2
*******
  Name:                    gfx1100
  Marketing Name:          AMD Radeon RX 7900 XTX
"""
PCI_IDS = """\
# fake pci.ids
10de  NVIDIA Corporation
\t2684  AD102 [GeForce RTX 4090]
\t\t10de 165b  sub device
1002  Advanced Micro Devices, Inc. [AMD/ATI]
\t744c  Navi 31 [Radeon RX 7900 XT/7900 XTX]
8086  Intel Corporation
\ta780  Raptor Lake-S GT1 [UHD Graphics 770]
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def add_pci(root, slot, vendor_id, device_id, pci_class="0x030000", driver=None, vram_bytes=None):
    """A PCI device directory, optionally bound to a driver and with amdgpu's VRAM file."""
    dev = os.path.join(root, "sys", "bus", "pci", "devices", slot)
    write(os.path.join(dev, "class"), pci_class + "\n")
    write(os.path.join(dev, "vendor"), vendor_id + "\n")
    write(os.path.join(dev, "device"), device_id + "\n")
    if driver:
        drv = os.path.join(root, "sys", "bus", "pci", "drivers", driver)
        os.makedirs(drv, exist_ok=True)
        os.symlink(os.path.relpath(drv, dev), os.path.join(dev, "driver"))
    if vram_bytes is not None:
        write(os.path.join(dev, "mem_info_vram_total"), f"{vram_bytes}\n")
    return dev


def add_drm_card(root, card, slot, vram_bytes=None):
    """/sys/class/drm/cardN with a device link to the PCI slot (and a connector beside it)."""
    drm = os.path.join(root, "sys", "class", "drm")
    os.makedirs(os.path.join(drm, card), exist_ok=True)
    target = os.path.join(root, "sys", "bus", "pci", "devices", slot)
    os.symlink(os.path.relpath(target, os.path.join(drm, card)), os.path.join(drm, card, "device"))
    os.makedirs(os.path.join(drm, card + "-DP-1"), exist_ok=True)
    if vram_bytes is not None:
        write(os.path.join(target, "mem_info_vram_total"), f"{vram_bytes}\n")


class FakeTools:
    """Stand-ins for run_command and get_bin_path: fixed outputs per command."""

    def __init__(self, outputs=None):
        self.outputs = outputs or {}  # (tool, tuple(args)) or tool -> (rc, out, err)
        self.calls = []

    def which(self, name):
        return "/usr/bin/" + name if any(k == name or k[0] == name for k in self.outputs) else None

    def run(self, args):
        self.calls.append(list(args))
        assert isinstance(args, list), "commands must be argument lists"
        tool = os.path.basename(args[0])
        key = (tool, tuple(args[1:]))
        if key in self.outputs:
            return self.outputs[key]
        if tool in self.outputs:
            return self.outputs[tool]
        return 127, "", f"not faked: {args}"


NVIDIA_QUERY = (
    "--query-gpu=pci.bus_id,name,memory.total,driver_version",
    "--format=csv,noheader,nounits",
)


def nvidia_tools(query_out=NVIDIA_SMI_4090):
    return FakeTools(
        {
            ("nvidia-smi", NVIDIA_QUERY): (0, query_out, ""),
            ("nvidia-smi", ()): (0, NVIDIA_SMI_HEADER, ""),
        }
    )
