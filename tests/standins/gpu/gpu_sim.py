#!/usr/bin/env python3
"""A simulated NVIDIA GPU host for tests: the files GPU detection reads, under a root prefix.

    gpu_sim.py ROOT STATE [--bin DIR]

Writes under ROOT what a real host shows, for the one card of the real capture the
nvidia-smi stand-in prints (tests/unit/gpu_samples/nvidia-smi-capture-h100-80gb-hbm3-590.48.01.txt:
an H100 80GB HBM3 at PCI 00000000:00:09.0, device id 0x233010DE, class 0x3/0x2, driver
590.48.01; the PCI files are those values as sysfs spells them):

- ``sys/bus/pci/devices/0000:00:09.0/{class,vendor,device,subsystem_vendor,subsystem_device}``
  and, per STATE, its ``driver`` link into ``sys/bus/pci/drivers/<driver>``;
- ``sys/module/<module>/`` for each loaded module (``version`` for nvidia);
- ``proc/driver/nvidia/version`` while the nvidia module is loaded: the two lines of the
  real 580.173.02 file (tests/unit/gpu_samples/proc-driver-nvidia-version-580.173.02.txt)
  with its version number replaced by the capture's 590.48.01, so module, nvidia-smi and
  proc agree as on one real host;
- the capture (``usr/share/ailab-gpu-standin/``) and the nvidia-smi stand-in with ROOT
  baked in (``usr/bin/nvidia-smi``, and ``DIR/nvidia-smi`` with --bin).

STATE is one of:
- ``nvidia-loaded``: the card bound to nvidia, the module loaded (a working host);
- ``nvidia-nouveau``: the card bound to nouveau, nouveau loaded, nvidia not (a fresh
  Debian host, or one whose driver was just installed and not rebooted into);
- ``nvidia-unbound``: no driver bound, no module loaded (nouveau blacklisted, nvidia not
  built or not loaded).

Nothing outside ROOT and DIR is touched; ROOT is replaced when it holds an earlier
simulation (``.ailab-gpu-sim``), refused otherwise. Standard library only (it runs on the
test hosts).
"""

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nvidia_smi  # noqa: E402  (the stand-in beside this file, copied with it)

SAMPLES = os.path.join(os.path.dirname(HERE), "..", "unit", "gpu_samples")
CAPTURE = "nvidia-smi-capture-h100-80gb-hbm3-590.48.01.txt"
PROC_SAMPLE = "proc-driver-nvidia-version-580.173.02.txt"
PROC_SAMPLE_VERSION = "580.173.02"
MARKER = ".ailab-gpu-sim"
STATES = {
    "nvidia-loaded": {"driver": "nvidia", "modules": ["nvidia"]},
    "nvidia-nouveau": {"driver": "nouveau", "modules": ["nouveau"]},
    "nvidia-unbound": {"driver": None, "modules": []},
}


def sample(name):
    for directory in (SAMPLES, HERE):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", newline="") as fh:
                return fh.read()
    raise SystemExit(f"gpu_sim: {name} not found beside {HERE} or in {SAMPLES}")


def captured_card(capture):
    """The card's identity from the capture's query row, read as the stand-in answers it:
    (slot, vendor, device, subsystem vendor, subsystem device, class, driver version)."""
    fields = [
        "pci.bus_id",
        "pci.device_id",
        "pci.sub_device_id",
        "pci.baseClass",
        "pci.subClass",
        "driver_version",
    ]
    row = nvidia_smi.answer(nvidia_smi.sections(capture), "--query-gpu", fields, ["csv", "noheader"])
    bus_id, device_id, sub_id, base_class, sub_class, driver = row.splitlines()[0].split(", ")
    device_id, sub_id = int(device_id, 16), int(sub_id, 16)
    domain, rest = bus_id.split(":", 1)
    return {
        "slot": f"{int(domain, 16):04x}:{rest.lower()}",
        "vendor": f"0x{device_id & 0xFFFF:04x}",
        "device": f"0x{device_id >> 16:04x}",
        "subsystem_vendor": f"0x{sub_id & 0xFFFF:04x}",
        "subsystem_device": f"0x{sub_id >> 16:04x}",
        "class": f"0x{int(base_class, 16):02x}{int(sub_class, 16):02x}00",
        "driver_version": driver,
    }


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.chmod(path, mode)


def stand_in(root):
    with open(os.path.join(HERE, "nvidia_smi.py"), encoding="utf-8") as fh:
        text = fh.read()
    return text.replace('"@ROOT@"', repr(os.path.abspath(root)), 1)


def build(root, state, bin_dir=None):
    if state not in STATES:
        raise SystemExit("gpu_sim: STATE must be one of " + ", ".join(STATES))
    if os.path.exists(root):
        if not os.path.exists(os.path.join(root, MARKER)):
            raise SystemExit(f"gpu_sim: {root} exists and is not a simulated host; not touching it")
        shutil.rmtree(root)
    capture = sample(CAPTURE)
    card = captured_card(capture)
    write(os.path.join(root, MARKER), state + "\n")
    dev = os.path.join(root, "sys", "bus", "pci", "devices", card["slot"])
    for name in ("class", "vendor", "device", "subsystem_vendor", "subsystem_device"):
        write(os.path.join(dev, name), card[name] + "\n")
    driver = STATES[state]["driver"]
    if driver:
        target = os.path.join(root, "sys", "bus", "pci", "drivers", driver)
        os.makedirs(target, exist_ok=True)
        os.symlink(os.path.relpath(target, dev), os.path.join(dev, "driver"))
    for module in STATES[state]["modules"]:
        os.makedirs(os.path.join(root, "sys", "module", module), exist_ok=True)
        if module == "nvidia":
            write(os.path.join(root, "sys", "module", module, "version"), card["driver_version"] + "\n")
            proc = sample(PROC_SAMPLE).replace(PROC_SAMPLE_VERSION, card["driver_version"])
            write(os.path.join(root, "proc", "driver", "nvidia", "version"), proc, 0o444)
    write(os.path.join(root, "usr", "share", "ailab-gpu-standin", "nvidia-smi-capture.txt"), capture)
    script = stand_in(root)
    for directory in [os.path.join(root, "usr", "bin")] + ([bin_dir] if bin_dir else []):
        write(os.path.join(directory, "nvidia-smi"), script, 0o755)
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("state", choices=sorted(STATES))
    parser.add_argument("--bin", dest="bin_dir")
    args = parser.parse_args(argv)
    card = build(args.root, args.state, args.bin_dir)
    print(f"{args.root}: {args.state} ({card['slot']}, driver {card['driver_version']})")


if __name__ == "__main__":
    sys.exit(main())
