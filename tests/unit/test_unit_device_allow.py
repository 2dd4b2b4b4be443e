"""The model units' NVIDIA device allow-list matches the names every driver registers.

systemd turns ``DeviceAllow=char-<name>`` into majors by matching <name> against
/proc/devices with fnmatch(3) when the unit starts (src/core/bpf-devices.c,
bpf_devices_allow_list_major); a name that matches nothing is dropped with a debug
line. The character devices the NVIDIA driver registers, by release:
- up to 535: major 195 "nvidia-frontend" (kernel-open/nvidia/nv-frontend.c,
  register_chrdev), "nvidia-uvm" (nvidia-uvm/uvm.c, NVIDIA_UVM_DEVICE_NAME) and
  "nvidia-caps" (nv-caps.c);
- from 545 on, nv-frontend.c is gone and nv.c registers major 195 as "nvidia" and
  "nvidiactl" (NVIDIA's container toolkit, internal/info/proc/devices/devices.go: "For
  GPU drivers 550.40.x or greater, the gpu device has been renamed from
  "nvidia-frontend" to "nvidia"").
Debian 12 ships 535, Debian 13 550, Ubuntu 24.04 570: both generations must work.
"""

import fnmatch
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The one unit template of every backend (the instance_service role).
TEMPLATES = ("roles/instance_service/templates/etc/systemd/system/instance.service.j2",)
# What CUDA opens: /dev/nvidiactl and /dev/nvidia0 (major 195), /dev/nvidia-uvm.
NEEDED = {
    "535": ["nvidia-frontend", "nvidia-uvm"],
    "550": ["nvidia", "nvidiactl", "nvidia-uvm"],
}


def nvidia_allow_names(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        text = fh.read()
    block = re.search(
        r"\{% if \w+ == 'nvidia' %\}(.*?)\{% (?:elif|endif)", text.split("DevicePolicy=closed")[1], re.S
    )
    return re.findall(r"^DeviceAllow=char-(\S+) rw$", block.group(1), re.M)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("driver", sorted(NEEDED))
def test_every_device_cuda_opens_is_allowed(template, driver):
    patterns = nvidia_allow_names(template)
    for name in NEEDED[driver]:
        assert any(fnmatch.fnmatchcase(name, p) for p in patterns), (template, driver, name)


@pytest.mark.parametrize("template", TEMPLATES)
def test_nothing_beyond_what_cuda_needs_is_allowed(template):
    # No wildcard: modeset, nvlink and nvswitch stay closed.
    assert not any(set(p) & set("*?[") for p in nvidia_allow_names(template))
