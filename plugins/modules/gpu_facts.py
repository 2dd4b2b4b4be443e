#!/usr/bin/python
"""Ansible module: report a host's GPUs as ansible_facts.gpu."""

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Report the GPUs of a host, their memory and driver versions
description:
  - Finds display controllers from NVIDIA, AMD and Intel in C(/sys/bus/pci/devices) and reports
    the vendor of the best compute GPU (nvidia > amd > intel), every device, the VRAM of the
    chosen vendor's devices, and the driver, CUDA and ROCm versions where the tools exist.
  - VRAM comes from C(nvidia-smi) (NVIDIA), C(mem_info_vram_total) in sysfs or C(rocm-smi) (AMD).
    Intel integrated GPUs share system memory and report no VRAM.
  - Works on a host with no GPU and no tools (vendor C(none)). Changes nothing.
  - Inventory values can override detection, for hosts whose GPU cannot be probed and for tests.
options:
  sysfs_root:
    description:
      - Directory that holds C(sys/), C(proc/), C(usr/share/) and C(opt/rocm/) to read, normally C(/).
      - When it is not C(/), the vendor tools are looked for in its C(usr/bin/) first (a simulated
        host's stand-ins), then on the C(PATH).
      - Tests point it at a simulated host (the inventory variable C(gpu_sysfs_root)).
    type: path
    default: /
  vendor:
    description:
      - C(auto) reports what is detected. Any other value overrides the vendor and sets
        C(source) to C(inventory) (the inventory variable C(gpu_vendor)).
    type: str
    choices: [auto, nvidia, amd, intel, none]
    default: auto
  vram_mib:
    description:
      - Overrides the total VRAM in MiB (the inventory variable C(gpu_vram_mib)).
      - With a I(vendor) override and no I(vram_mib), the detected VRAM is kept when the detected
        vendor is the same, else it is 0.
    type: int
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
author:
  - Lab toolkit maintainers
"""

EXAMPLES = r"""
- name: Gather GPU facts
  gpu_facts:

- name: Gather GPU facts, trusting the inventory for the VRAM
  gpu_facts:
    vendor: "{{ gpu_vendor | default('auto') }}"
    vram_mib: "{{ gpu_vram_mib | default(omit) }}"

- name: Show the GPU vendor
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpu.vendor }} with {{ ansible_facts.gpu.total_vram_mib }} MiB"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: dict
  contains:
    gpu:
      description: The host's GPUs.
      returned: always
      type: dict
      contains:
        vendor:
          description: Vendor of the best compute GPU (nvidia > amd > intel), or none.
          type: str
          sample: nvidia
        devices:
          description:
            - Every NVIDIA, AMD and Intel display controller, sorted by PCI slot, with
              C(pci_slot), C(vendor), C(vendor_id), C(device_id), C(name), C(vram_mib) (null when
              unknown or shared), C(driver) (the kernel driver bound, or null),
              C(driver_loaded) (the vendor's compute driver nvidia, amdgpu, i915 or xe is bound) and
              C(integrated) (an AMD APU's GPU with under 1 GiB of its own memory, never chosen nor pooled).
          type: list
          elements: dict
          sample:
            - pci_slot: "0000:01:00.0"
              vendor: nvidia
              vendor_id: "0x10de"
              device_id: "0x2684"
              name: NVIDIA GeForce RTX 4090
              vram_mib: 24564
              driver: nvidia
              driver_loaded: true
              integrated: false
        total_vram_mib:
          description: VRAM of the chosen vendor's devices in MiB (or the override).
          type: int
          sample: 24564
        driver_version:
          description:
            - NVIDIA driver version (nvidia-smi or /proc/driver/nvidia/version), or the amdgpu module version.
          type: str
          sample: 550.54.14
        cuda_version:
          description: CUDA version the NVIDIA driver supports, from nvidia-smi.
          type: str
          sample: "12.4"
        rocm_version:
          description: ROCm version from /opt/rocm/.info/version, else the rocminfo runtime version.
          type: str
          sample: 6.2.0
        gfx_targets:
          description: AMD gfx targets named by rocminfo.
          type: list
          elements: str
          sample: [gfx1100]
        source:
          description: C(detected), or C(inventory) when an override was applied.
          type: str
          sample: detected
        detected_vendor:
          description: The vendor detection found, before overrides.
          type: str
          sample: nvidia
        warnings:
          description: Problems a user should know (driver not bound, VRAM unknown, a tool failed).
          type: list
          elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.gpu_detect import VENDOR_CHOICES, gpu_facts


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "path", "default": "/"},
            "vendor": {"type": "str", "default": "auto", "choices": list(VENDOR_CHOICES)},
            "vram_mib": {"type": "int"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["vram_mib"] is not None and p["vram_mib"] < 0:
        module.fail_json(msg="vram_mib must be 0 or more, got {}".format(p["vram_mib"]))

    def run(args):
        return module.run_command(args)

    root = p["sysfs_root"]
    tools_dirs = [os.path.join(root, "usr", "bin")] if os.path.realpath(root) != "/" else []

    def which(name):
        return module.get_bin_path(name, opt_dirs=tools_dirs)

    facts = gpu_facts(root, p["vendor"], p["vram_mib"], run=run, which=which)
    module.exit_json(changed=False, ansible_facts={"gpu": facts})


if __name__ == "__main__":
    main()
