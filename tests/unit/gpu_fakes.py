"""Sysfs trees and vendor tool outputs for the GPU detection tests."""

import os
import sys

import gpu_samples

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "standins", "gpu"))
import nvidia_smi  # noqa: E402

# Every tool output here is real (tests/unit/gpu_samples/, sources in its SOURCES.md).
# nvidia-smi: the H100 capture, through the nvidia-smi stand-in that prints it
# (tests/standins/gpu/nvidia_smi.py): the query row gpu_detect asks for, and the table.
_SMI = nvidia_smi.sections(gpu_samples.NVIDIA_SMI_CAPTURE_H100)
QUERY_FIELDS = ["pci.bus_id", "name", "memory.total", "driver_version"]


def nvidia_query_row(bus_id=None):
    """The captured row for gpu_detect's query (csv,noheader,nounits), as the stand-in
    answers it; ``bus_id`` replaces the card's PCI address, for hosts with more than one."""
    row = nvidia_smi.answer(_SMI, "--query-gpu", QUERY_FIELDS, ["csv", "noheader", "nounits"])
    return row if not bus_id else bus_id + row[row.index(",") :]


H100_SLOT = "0000:00:09.0"  # the capture's pci.bus_id, 00000000:00:09.0, as sysfs names it
H100_DEVICE = "0x2330"  # the capture's pci.device_id 0x233010DE
H100_NAME = "NVIDIA H100 80GB HBM3"
H100_VRAM_MIB = 81559
H100_DRIVER = "590.48.01"
H100_CUDA = "13.1"
NVIDIA_SMI_QUERY = nvidia_query_row()
NVIDIA_SMI_TABLE = _SMI["idle :: nvidia-smi (default table)"]
# /proc/driver/nvidia/version of a 580.173.02 module.
NVIDIA_PROC_VERSION = gpu_samples.PROC_NVIDIA_580
NVIDIA_PROC_MODULE = "580.173.02"
# rocm-smi --showproductname --showuse --showmeminfo vram --json, RX 7900 XT: 21458059264 B.
ROCM_SMI_VRAM = gpu_samples.ROCM_SMI_RX7900XT
ROCM_SMI_VRAM_MIB = 21458059264 // (1024 * 1024)
# rocminfo of an MI300A (ROCm 6.3.1): the head (runtime 1.14) and its first GPU agent.
ROCMINFO = gpu_samples.ROCMINFO_MI300A_HEAD + gpu_samples.ROCMINFO_MI300A_AGENT
# Lines of Debian 12's pci.ids (package pci.ids 0.0~2023.04.11-1, /usr/share/misc/pci.ids,
# lines 1120, 3931-3932, 9599, 12705, 12799, 26448, 34873), in the file's order.
PCI_IDS = """\
1002  Advanced Micro Devices, Inc. [AMD/ATI]
\t744c  Navi 31 [Radeon RX 7900 XT/7900 XTX]
\t\t1da2 e471  NITRO+ RX 7900 XTX Vapor-X
10de  NVIDIA Corporation
\t2330  GH100[H100 SXM5 80GB]
\t2684  AD102 [GeForce RTX 4090]
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


def nvidia_tools(query_out=NVIDIA_SMI_QUERY):
    return FakeTools(
        {
            ("nvidia-smi", NVIDIA_QUERY): (0, query_out, ""),
            ("nvidia-smi", ()): (0, NVIDIA_SMI_TABLE, ""),
        }
    )
