#!/usr/bin/python
"""Ansible module: the memory model instances use now, host RAM and GPU memory, per unit."""

DOCUMENTATION = r"""
---
module: instance_memory
short_description: Measure the host RAM and GPU memory each model instance's unit uses
description:
  - Host RAM is systemd's C(MemoryCurrent) of each unit (its control group, the server and every
    child, such as text-generation-webui's llama-server), read with one C(systemctl show).
  - GPU memory is what C(nvidia-smi --query-compute-apps) reports per process, each process counted
    for the unit it runs in (C(ps -e -o pid=,unit=)), per GPU (PCI bus id). Hosts without a working
    C(nvidia-smi) report no GPU figures and say why in C(warnings). AMD GPUs are not measured.
  - Changes nothing.
options:
  units:
    description: The systemd units of the instances, e.g. C(llamacpp-tiny.service).
    type: list
    elements: str
    required: true
  sysfs_root:
    description:
      - The host's root as GPU detection reads it (the inventory C(gpu_sysfs_root)); when it is not C(/),
        C(nvidia-smi) is looked for in its C(usr/bin/) first (a simulated host's stand-in).
    type: path
    default: /
attributes:
  check_mode:
    support: full
author:
  - Lab toolkit maintainers
"""

EXAMPLES = r"""
- name: Measure the instances
  instance_memory:
    units: [llamacpp-tiny.service, ollama-chat.service]
  register: __memory
"""

RETURN = r"""
units:
  description: Per unit, C(ram_mib) (null when systemd has no figure), C(pids) and C(gpu_mib) (MiB per GPU bus id).
  type: dict
  returned: always
  sample:
    llamacpp-tiny.service: {ram_mib: 612, pids: [812, 815], gpu_mib: {"0000:01:00.0": 5210}}
gpu_processes:
  description: Every compute process nvidia-smi lists, with C(pid), C(bus_id), C(mib) and C(unit) (null when not ours).
  type: list
  elements: dict
  returned: always
warnings:
  description: Why a figure is missing.
  type: list
  elements: str
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpu_detect import normalise_bus_id

MIB = 1024 * 1024
COMPUTE_QUERY = ["--query-compute-apps=pid,gpu_bus_id,used_gpu_memory", "--format=csv,noheader,nounits"]


def parse_memory(text):
    """``systemctl show -p Id -p MemoryCurrent u1 u2 ...`` -> {unit: MiB or None}."""
    out = {}
    for block in (text or "").strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            value = props.get("MemoryCurrent", "")
            out[props["Id"]] = int(value) // MIB if value.isdigit() else None
    return out


def parse_units(text):
    """``ps -e -o pid=,unit=`` -> {pid: unit}."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out[int(parts[0])] = parts[1]
    return out


def parse_compute_apps(text):
    """Rows of ``nvidia-smi --query-compute-apps=pid,gpu_bus_id,used_gpu_memory
    --format=csv,noheader,nounits`` -> [{pid, bus_id, mib}] (a [N/A] figure counts 0)."""
    rows = []
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        rows.append(
            {
                "pid": int(parts[0]),
                "bus_id": normalise_bus_id(parts[1]),
                "mib": int(parts[2]) if parts[2].isdigit() else 0,
            }
        )
    return rows


def measure(units, run, which):
    warnings = []
    result = {unit: {"ram_mib": None, "pids": [], "gpu_mib": {}} for unit in units}
    rc, out, err = run(["systemctl", "show", "-p", "Id", "-p", "MemoryCurrent", *units])
    if rc == 0:
        for unit, mib in parse_memory(out).items():
            if unit in result:
                result[unit]["ram_mib"] = mib
    else:
        warnings.append(f"systemctl show failed (rc={rc}): {(err or out).strip()[:200]}")
    rc, out, err = run(["ps", "-e", "-o", "pid=,unit="])
    owners = parse_units(out) if rc == 0 else {}
    for pid, unit in sorted(owners.items()):
        if unit in result:
            result[unit]["pids"].append(pid)
    processes = []
    smi = which("nvidia-smi")
    if smi:
        rc, out, err = run([smi, *COMPUTE_QUERY])
        if rc == 0:
            for row in parse_compute_apps(out):
                row["unit"] = owners.get(row["pid"]) if owners.get(row["pid"]) in result else None
                processes.append(row)
                if row["unit"]:
                    per_gpu = result[row["unit"]]["gpu_mib"]
                    per_gpu[row["bus_id"]] = per_gpu.get(row["bus_id"], 0) + row["mib"]
        else:
            warnings.append(f"nvidia-smi --query-compute-apps failed (rc={rc}): {(out or err).strip()[:200]}")
    return {"units": result, "gpu_processes": processes, "warnings": warnings}


def main():
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "required": True},
            "sysfs_root": {"type": "path", "default": "/"},
        },
        supports_check_mode=True,
    )
    root = module.params["sysfs_root"]
    tools = [os.path.join(root, "usr", "bin")] if os.path.realpath(root) != "/" else []

    def run(args):
        return module.run_command(args)

    def which(name):
        return module.get_bin_path(name, opt_dirs=tools)

    module.exit_json(changed=False, **measure(module.params["units"], run, which))


if __name__ == "__main__":
    main()
