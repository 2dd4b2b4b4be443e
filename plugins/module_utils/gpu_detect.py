"""Find a host's GPUs, their memory and driver/runtime versions.

Sources, each optional (a host with no GPU and no tools gives vendor "none"):
- PCI: ``<root>/sys/bus/pci/devices/*/class`` (display controllers are 0x03xxxx),
  ``vendor`` (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel), ``device``, and the ``driver``
  symlink (the kernel driver bound to the device);
- VRAM without tools: ``mem_info_vram_total`` (bytes) in the PCI device directory or
  under ``<root>/sys/class/drm/cardN/device`` (matched to the PCI slot by path): amdgpu
  (and xe) publish it;
- NVIDIA: ``nvidia-smi --query-gpu=pci.bus_id,name,memory.total,driver_version
  --format=csv,noheader,nounits``, the CUDA version from plain ``nvidia-smi``, and
  ``<root>/proc/driver/nvidia/version`` (the loaded kernel module);
- AMD: ``rocm-smi --showmeminfo vram --json``, ``rocminfo`` (gfx targets, runtime
  version), ``<root>/opt/rocm/.info/version``;
- names: nvidia-smi, else ``pci.ids`` under ``<root>/usr/share/{hwdata,misc}``.

``vendor`` is the vendor of the best compute GPU present (nvidia > amd > intel);
``total_vram_mib`` sums that vendor's devices. ``driver_loaded`` is true when the
vendor's compute driver (nvidia, amdgpu, i915/xe) is bound to the device: an NVIDIA
card bound to nouveau reports driver "nouveau" and driver_loaded false.

Commands are run through a ``run(args) -> (rc, stdout, stderr)`` callable and found
through ``which(name) -> path or None`` (AnsibleModule.run_command / get_bin_path in
the module, fakes in tests). Standard library only.
"""

import glob
import json
import os
import re

VENDOR_IDS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}
VENDOR_RANK = ("nvidia", "amd", "intel")
VENDOR_CHOICES = ("auto", "nvidia", "amd", "intel", "none")
COMPUTE_DRIVERS = {"nvidia": ("nvidia",), "amd": ("amdgpu",), "intel": ("i915", "xe")}
VENDOR_NAMES = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}
NVIDIA_QUERY = [
    "--query-gpu=pci.bus_id,name,memory.total,driver_version",
    "--format=csv,noheader,nounits",
]
MIB = 1024 * 1024
# Below this much VRAM an AMD GPU is an APU's integrated one (Ollama's IGPUMemLimit).
IGPU_MEM_LIMIT_MIB = 1024


def _path(root, *parts):
    return os.path.join(root, *[p.lstrip("/") for p in parts])


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _int(text):
    try:
        return int(str(text).strip(), 0)
    except (TypeError, ValueError):
        return None


def normalise_bus_id(bus_id):
    """``00000000:01:00.0`` (nvidia-smi) -> ``0000:01:00.0`` (sysfs)."""
    bus_id = bus_id.strip().lower()
    match = re.match(r"^(?:([0-9a-f]+):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$", bus_id)
    if not match:
        return bus_id
    domain = int(match.group(1) or "0", 16)
    return f"{domain:04x}:{match.group(2)}"


def _vram_from_file(path):
    value = _int(_read(path))
    return value // MIB if value else None


def _drm_vram(root):
    """PCI slot -> VRAM MiB from ``/sys/class/drm/cardN/device/mem_info_vram_total``."""
    found = {}
    for card in sorted(glob.glob(_path(root, "sys/class/drm/card*"))):
        if not re.match(r"^card\d+$", os.path.basename(card)):
            continue  # connectors such as card0-DP-1
        device = os.path.join(card, "device")
        vram = _vram_from_file(os.path.join(device, "mem_info_vram_total"))
        if vram:
            found[os.path.basename(os.path.realpath(device))] = vram
    return found


def _pci_ids_lookup(root, wanted):
    """{(vendor_hex, device_hex): name} for the wanted ids, from pci.ids when present."""
    names = {}
    for candidate in ("usr/share/hwdata/pci.ids", "usr/share/misc/pci.ids"):
        path = _path(root, candidate)
        if not os.path.isfile(path):
            continue
        vendor = None
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if not line.strip() or line.startswith("#"):
                        continue
                    if not line.startswith("\t"):
                        vendor = line[:4].lower()
                        continue
                    if line.startswith("\t\t") or vendor is None:
                        continue
                    key = (vendor, line[1:5].lower())
                    if key in wanted:
                        names[key] = line[5:].strip()
        except OSError:
            continue
        break
    return names


def scan_pci(root="/"):
    """Display-class PCI devices from a known GPU vendor, sorted by slot."""
    devices = []
    for devdir in sorted(glob.glob(_path(root, "sys/bus/pci/devices/*"))):
        pci_class = _int(_read(os.path.join(devdir, "class")))
        vendor = VENDOR_IDS.get((_read(os.path.join(devdir, "vendor")) or "").lower())
        if pci_class is None or pci_class >> 16 != 0x03 or vendor is None:
            continue
        driver_link = os.path.join(devdir, "driver")
        driver = os.path.basename(os.path.realpath(driver_link)) if os.path.lexists(driver_link) else None
        devices.append(
            {
                "pci_slot": os.path.basename(devdir),
                "vendor": vendor,
                "vendor_id": (_read(os.path.join(devdir, "vendor")) or "").lower(),
                "device_id": (_read(os.path.join(devdir, "device")) or "").lower(),
                "name": None,
                "vram_mib": _vram_from_file(os.path.join(devdir, "mem_info_vram_total")),
                "driver": driver,
                "driver_loaded": driver in COMPUTE_DRIVERS[vendor],
            }
        )
    return devices


def parse_nvidia_smi(text):
    """Rows of the nvidia-smi query -> [{pci_slot, name, vram_mib, driver_version}]."""
    rows = []
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0]:
            continue
        rows.append(
            {
                "pci_slot": normalise_bus_id(parts[0]),
                "name": parts[1],
                "vram_mib": _int(parts[2].split(".")[0]),
                "driver_version": parts[3] or None,
            }
        )
    return rows


def parse_cuda_version(text):
    """The CUDA version in nvidia-smi's header: "CUDA Version: 12.2" up to driver 590,
    "CUDA UMD Version: 13.3" from driver 610 (tests/unit/gpu_samples.py)."""
    match = re.search(r"CUDA (?:UMD )?Version:\s*([0-9][0-9.]*)", text or "")
    return match.group(1) if match else None


def parse_nvidia_proc_version(text):
    """``/proc/driver/nvidia/version`` -> the kernel module version."""
    match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+([0-9][0-9.]*)", text or "")
    return match.group(1) if match else None


def parse_rocm_smi_vram(text):
    """``rocm-smi --showmeminfo vram --json`` -> [{card, vram_mib, pci_slot or None}] by card."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return []
    cards = []
    if not isinstance(data, dict):
        return cards
    for card in sorted(data, key=lambda c: (_int(re.sub(r"\D", "", c)) or 0, c)):
        info = data[card]
        if not isinstance(info, dict) or not card.startswith("card"):
            continue
        total = None
        for key, value in info.items():
            if key.lower().startswith("vram total memory"):
                total = _int(value)
        bus = info.get("PCI Bus")
        cards.append(
            {
                "card": card,
                "vram_mib": total // MIB if total else None,
                "pci_slot": normalise_bus_id(bus) if bus else None,
            }
        )
    return cards


def parse_rocminfo(text):
    """gfx targets (``Name: gfx1100``) and the HSA runtime version from rocminfo."""
    targets = []
    for match in re.finditer(r"^\s*Name:\s*(gfx[0-9a-z]+)\s*$", text or "", re.MULTILINE):
        if match.group(1) not in targets:
            targets.append(match.group(1))
    runtime = re.search(r"Runtime Version:\s*([0-9][0-9.]*)", text or "")
    return {"gfx_targets": targets, "runtime_version": runtime.group(1) if runtime else None}


def _tool(which, run, name, args, warnings):
    path = which(name) if which else None
    if not path or not run:
        return None
    rc, out, err = run([path] + list(args))
    if rc != 0:
        warnings.append(
            "{} {} failed (rc={}): {}".format(name, " ".join(args), rc, (err or out or "").strip()[:200])
        )
        return None
    return out


def detect(root="/", run=None, which=None):
    """GPU facts from sysfs and the vendor tools; see the module docstring."""
    warnings = []
    devices = scan_pci(root)
    drm = _drm_vram(root)
    for dev in devices:
        if dev["vram_mib"] is None and dev["pci_slot"] in drm:
            dev["vram_mib"] = drm[dev["pci_slot"]]
    vendors = {d["vendor"] for d in devices}
    facts = {
        "vendor": next((v for v in VENDOR_RANK if v in vendors), "none"),
        "devices": devices,
        "total_vram_mib": 0,
        "driver_version": None,
        "cuda_version": None,
        "rocm_version": None,
        "gfx_targets": [],
        "source": "detected",
        "detected_vendor": None,
        "warnings": warnings,
    }

    if "nvidia" in vendors:
        out = _tool(which, run, "nvidia-smi", NVIDIA_QUERY, warnings)
        by_slot = {row["pci_slot"]: row for row in parse_nvidia_smi(out)}
        for dev in devices:
            row = by_slot.get(dev["pci_slot"])
            if dev["vendor"] == "nvidia" and row:
                dev["name"] = row["name"]
                dev["vram_mib"] = row["vram_mib"]
                facts["driver_version"] = facts["driver_version"] or row["driver_version"]
        if by_slot:
            facts["cuda_version"] = parse_cuda_version(_tool(which, run, "nvidia-smi", [], warnings))
        proc = parse_nvidia_proc_version(_read(_path(root, "proc/driver/nvidia/version")))
        facts["nvidia_module_version"] = proc
        facts["driver_version"] = facts["driver_version"] or proc

    if "amd" in vendors:
        amd = [d for d in devices if d["vendor"] == "amd"]
        if any(d["vram_mib"] is None for d in amd):
            cards = parse_rocm_smi_vram(
                _tool(which, run, "rocm-smi", ["--showmeminfo", "vram", "--json"], warnings)
            )
            by_slot = {c["pci_slot"]: c for c in cards if c["pci_slot"]}
            for index, dev in enumerate(amd):
                card = by_slot.get(dev["pci_slot"]) or (
                    cards[index] if not by_slot and index < len(cards) else None
                )
                if dev["vram_mib"] is None and card:
                    dev["vram_mib"] = card["vram_mib"]
        info = parse_rocminfo(_tool(which, run, "rocminfo", [], warnings))
        facts["gfx_targets"] = info["gfx_targets"]
        facts["rocm_version"] = _read(_path(root, "opt/rocm/.info/version")) or info["runtime_version"]
        if facts["vendor"] == "amd":
            facts["driver_version"] = _read(_path(root, "sys/module/amdgpu/version"))

    names = _pci_ids_lookup(
        root, {(d["vendor_id"][2:], d["device_id"][2:]) for d in devices if not d["name"]}
    )
    for dev in devices:
        if not dev["name"]:
            dev["name"] = names.get((dev["vendor_id"][2:], dev["device_id"][2:])) or "{} device {}".format(
                VENDOR_NAMES[dev["vendor"]],
                dev["device_id"],
            )

    # An AMD APU's integrated Radeon shares system memory behind a small carve-out: it is
    # neither pooled with a discrete card nor chosen as the host's GPU. Ollama's rule
    # (discover/amd_linux.go: ``totalMemory < IGPUMemLimit``, 1 GiB, "unsupported Radeon
    # iGPU detected skipping") is the one used here.
    for dev in devices:
        dev["integrated"] = (
            dev["vendor"] == "amd" and dev["vram_mib"] is not None and dev["vram_mib"] < IGPU_MEM_LIMIT_MIB
        )
        if dev["integrated"]:
            warnings.append(
                "{} ({}): an integrated GPU with {} MiB of its own memory; not used (Ollama skips "
                "Radeon iGPUs under 1 GiB)".format(dev["name"], dev["pci_slot"], dev["vram_mib"])
            )
    usable = {d["vendor"] for d in devices if not d["integrated"]}
    facts["vendor"] = next((v for v in VENDOR_RANK if v in usable), "none")
    chosen = [d for d in devices if d["vendor"] == facts["vendor"] and not d["integrated"]]
    facts["total_vram_mib"] = sum(d["vram_mib"] or 0 for d in chosen)
    for dev in chosen:
        if not dev["driver_loaded"]:
            warnings.append(
                "{} {} ({}): the {} driver is not bound (driver: {})".format(
                    VENDOR_NAMES[dev["vendor"]],
                    dev["name"],
                    dev["pci_slot"],
                    "/".join(COMPUTE_DRIVERS[dev["vendor"]]),
                    dev["driver"] or "none",
                )
            )
        if dev["vram_mib"] is None and dev["vendor"] != "intel":
            warnings.append(
                "{} ({}): VRAM unknown; load the driver or set gpu_vram_mib in inventory".format(
                    dev["name"], dev["pci_slot"]
                )
            )
    facts["detected_vendor"] = facts["vendor"]
    return facts


def apply_overrides(facts, vendor="auto", vram_mib=None):
    """Apply inventory ``gpu_vendor`` / ``gpu_vram_mib`` to detected facts (a new dict).

    - vendor other than "auto": that vendor, source "inventory"; VRAM is ``vram_mib``
      when given, else the detected total when the detected vendor is the same, else 0;
    - vendor "auto" with ``vram_mib``: the detected vendor with that VRAM, source
      "inventory";
    - vendor "none": no GPU, VRAM 0.
    """
    vendor = (vendor or "auto").lower()
    if vendor not in VENDOR_CHOICES:
        raise ValueError("gpu vendor must be one of {}, got {!r}".format(", ".join(VENDOR_CHOICES), vendor))
    result = dict(facts)
    result["warnings"] = list(facts.get("warnings", []))
    detected = facts.get("detected_vendor") or facts.get("vendor", "none")
    if vendor == "auto" and vram_mib is None:
        return result
    if vendor != "auto":
        result["vendor"] = vendor
    result["source"] = "inventory"
    if result["vendor"] == "none":
        if vram_mib:
            result["warnings"].append(f"gpu_vram_mib={vram_mib} ignored: gpu_vendor is none")
        result["total_vram_mib"] = 0
    elif vram_mib is not None:
        result["total_vram_mib"] = int(vram_mib)
    elif result["vendor"] != detected:
        result["total_vram_mib"] = 0
    return result


def from_inventory(vendor, vram_mib):
    """Facts for a host whose GPU is given in inventory (nothing detected)."""
    empty = {
        "vendor": "none",
        "devices": [],
        "total_vram_mib": 0,
        "driver_version": None,
        "cuda_version": None,
        "rocm_version": None,
        "gfx_targets": [],
        "source": "detected",
        "detected_vendor": None,
        "warnings": [],
    }
    return apply_overrides(empty, vendor, vram_mib)


def gpu_facts(root="/", vendor="auto", vram_mib=None, run=None, which=None):
    """Detection plus overrides: the ``ansible_facts.gpu`` value."""
    return apply_overrides(detect(root, run, which), vendor, vram_mib)
