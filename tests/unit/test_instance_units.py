"""The backend units carry the device selection the planner chose for an instance on a
host with several GPUs (rendered with Ansible's templating from the role's defaults)."""

import os

from ansible.module_utils import serving_plan as sp
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "roles"))


def render(role, template, **overrides):
    loader = DataLoader()
    variables = {
        k: trust_as_template(v) if isinstance(v, str) else v
        for k, v in loader.load_from_file(os.path.join(ROLES, role, "defaults", "main.yml")).items()
    }
    variables.update(ansible_managed="Ansible managed")
    variables.update(overrides)
    with open(os.path.join(ROLES, role, "templates", template), encoding="utf-8") as fh:
        return Templar(loader=loader, variables=variables).template(trust_as_template(fh.read()))


def placed_on_the_second_gpu():
    gpu = {
        "vendor": "nvidia",
        "total_vram_mib": 49152,
        "devices": [
            {"vendor": "nvidia", "pci_slot": "0000:01:00.0", "vram_mib": 24576},
            {"vendor": "nvidia", "pci_slot": "0000:41:00.0", "vram_mib": 24576},
        ],
    }
    model = {
        "format": "gguf",
        "layers": 28,
        "heads": 28,
        "kv_heads": 4,
        "embedding_length": 3584,
        "context_length": 32768,
        "size_bytes": 4683 * 1024 * 1024,
        "complete": True,
        "servable": True,
    }
    inst = {
        "name": "coder",
        "backend": "textgen",
        "model": "m.gguf",
        "port": 7861,
        "api_port": 5010,
        "gpus": [1],
    }
    hp = sp.plan_host("ws", [inst], {"m.gguf": model}, gpu, 65536)
    assert hp["errors"] == [], hp["errors"]
    return hp["instances"][0]


def test_textgen_unit_sets_the_devices_of_its_gpus():
    unit = render(
        "textgen_webui",
        "etc/systemd/system/textgen-instance.service.j2",
        item=placed_on_the_second_gpu(),
        textgen_webui_python="/opt/text-generation-webui/installer_files/env/bin/python",
    )
    assert 'Environment="CUDA_DEVICE_ORDER=PCI_BUS_ID"\nEnvironment="CUDA_VISIBLE_DEVICES=1"\n' in unit


def test_a_unit_without_device_selection_has_no_extra_environment():
    item = dict(placed_on_the_second_gpu(), env={})
    unit = render(
        "textgen_webui",
        "etc/systemd/system/textgen-instance.service.j2",
        item=item,
        textgen_webui_python="/opt/text-generation-webui/installer_files/env/bin/python",
    )
    assert "CUDA_VISIBLE_DEVICES" not in unit and "Environment=PYTHONDONTWRITEBYTECODE=1\nExecStart=" in unit


def test_a_staged_instance_unit_does_not_name_the_store():
    """A staged instance loads its copy: its unit must not make systemd set up the store's
    (automount) path, so it starts while the store server is down (molecule/vm checks it)."""
    plan = placed_on_the_second_gpu()
    staged = dict(
        plan, model="/var/lib/ailab/stage/m.gguf", staged_from="/media/data/models/m.gguf", stage="local"
    )
    python = {"textgen_webui_python": "/opt/text-generation-webui/installer_files/env/bin/python"}
    path = "etc/systemd/system/textgen-instance.service.j2"
    store = "ReadOnlyPaths=/media/data/models\n"
    assert store in render(
        "textgen_webui", path, item=plan, textgen_webui_store_path="/media/data/models", **python
    )
    assert "ReadOnlyPaths" not in render(
        "textgen_webui", path, item=staged, textgen_webui_store_path="/media/data/models", **python
    )
    hardening = {"llamacpp_server_store_path": "/media/data/models", "llamacpp_server_gpu_vendor": "none"}
    assert store in render(
        "llamacpp_server", "hardening.j2", item=dict(plan, backend="llamacpp"), **hardening
    )
    assert "ReadOnlyPaths" not in render("llamacpp_server", "hardening.j2", item=staged, **hardening)
