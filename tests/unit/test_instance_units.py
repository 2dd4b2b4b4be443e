"""The backend units carry the device selection the planner chose for an instance on a
host with several GPUs. Rendered with Ansible's templating the way a converge renders them:
the backend role's defaults and vars build the unit entries (``__<role>_units``), and the
instance_service role's one template writes each unit."""

import os

from ansible.module_utils import serving_plan as sp
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import add_all_plugin_dirs
from ansible.template import Templar, trust_as_template

ROLES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "roles"))
UNIT_TEMPLATE = os.path.join(
    ROLES, "instance_service", "templates", "etc", "systemd", "system", "instance.service.j2"
)
# The role's own filters (systemd_quoted, systemd_exec), as a play that includes it finds them.
add_all_plugin_dirs(os.path.join(ROLES, "instance_service"))


def _load(loader, *parts):
    path = os.path.join(ROLES, *parts)
    data = loader.load_from_file(path) if os.path.exists(path) else {}
    return {k: trust_as_template(v) if isinstance(v, str) else v for k, v in (data or {}).items()}


def render_unit(role, item, **overrides):
    """The unit file ``role`` writes for the instance plan ``item``."""
    loader = DataLoader()
    variables = {}
    for part in (
        ("instance_service", "defaults", "main.yml"),
        (role, "defaults", "main.yml"),
        (role, "vars", "main.yml"),
    ):
        variables.update(_load(loader, *part))
    variables.update(ansible_managed="Ansible managed", **{f"{role}_instances": [item]})
    variables.update(overrides)
    templar = Templar(loader=loader, variables=variables)

    def value(name):
        return templar.template(trust_as_template("{{ " + name + " }}"))

    units = value(f"__{role}_units")
    assert [u["name"] for u in units] == [item["name"]]
    templar.available_variables = dict(
        variables,
        item=units[0],
        instance_service_user=value(f"{role}_user"),
        instance_service_gpu_vendor=value(f"{role}_gpu_vendor"),
    )
    with open(UNIT_TEMPLATE, encoding="utf-8") as fh:
        return templar.template(trust_as_template(fh.read()))


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
    unit = render_unit("textgen_webui", placed_on_the_second_gpu())
    assert 'Environment="CUDA_DEVICE_ORDER=PCI_BUS_ID"\nEnvironment="CUDA_VISIBLE_DEVICES=1"\n' in unit


def test_a_unit_without_device_selection_has_no_extra_environment():
    item = dict(placed_on_the_second_gpu(), env={})
    unit = render_unit("textgen_webui", item)
    assert (
        "CUDA_VISIBLE_DEVICES" not in unit and 'Environment="PYTHONDONTWRITEBYTECODE=1"\nExecStart=' in unit
    )


def test_a_staged_instance_unit_does_not_name_the_store():
    """A staged instance loads its copy: its unit must not make systemd set up the store's
    (automount) path, so it starts while the store server is down (molecule/vm checks it)."""
    plan = placed_on_the_second_gpu()
    staged = dict(
        plan, model="/var/lib/ailab/stage/m.gguf", staged_from="/media/data/models/m.gguf", stage="local"
    )
    store = "ReadOnlyPaths=/media/data/models\n"
    assert store in render_unit("textgen_webui", plan)
    assert "ReadOnlyPaths" not in render_unit("textgen_webui", staged)
    llama = {"backend": "llamacpp", "args": ["--model", plan["model"], "--port", "8080"]}
    assert store in render_unit("llamacpp_server", dict(plan, **llama))
    assert "ReadOnlyPaths" not in render_unit("llamacpp_server", dict(staged, **llama))


def test_every_backend_unit_is_hardened_the_same_way():
    """One template for the three backends: the same sandbox lines in each unit."""
    plan = placed_on_the_second_gpu()
    units = {
        "textgen_webui": render_unit("textgen_webui", plan, textgen_webui_gpu_vendor="nvidia"),
        "llamacpp_server": render_unit(
            "llamacpp_server", dict(plan, args=["--port", "8080"]), llamacpp_server_gpu_vendor="nvidia"
        ),
        "ollama": render_unit(
            "ollama",
            dict(plan, ollama_model="m", env={"OLLAMA_HOST": "127.0.0.1:11434", "OLLAMA_MODELS": "/srv/m"}),
            ollama_gpu_vendor="nvidia",
        ),
    }
    for role, unit in units.items():
        for line in (
            "NoNewPrivileges=true",
            "ProtectSystem=strict",
            "DevicePolicy=closed",
            "PrivateTmp=true",
        ):
            assert f"\n{line}\n" in unit, (role, line)
        assert "DeviceAllow=char-nvidia-uvm rw" in unit and "SupplementaryGroups=render video" in unit, role
    assert "ReadWritePaths=/var/lib/ollama-instances/coder /srv/m\n" in units["ollama"]
    assert "ExecStart=/opt/ollama/0.32.0/bin/ollama serve\n" in units["ollama"]


def test_a_cpu_host_unit_opens_no_device_and_joins_no_gpu_group():
    unit = render_unit("textgen_webui", dict(placed_on_the_second_gpu(), env={}))
    assert "DeviceAllow" not in unit and "SupplementaryGroups" not in unit and "DevicePolicy=closed" in unit


def test_the_llamacpp_unit_passes_the_key_file_only_to_an_instance_with_a_key():
    plan = dict(placed_on_the_second_gpu(), args=["--model", "/m/a b.gguf", "--port", "8080"])
    with_key = render_unit("llamacpp_server", plan, llamacpp_server_api_keys={"coder": "k"})
    assert "--port 8080 --api-key-file /var/lib/llamacpp/coder/api-key\n" in with_key
    assert "'/m/a b.gguf'" in with_key
    assert "--api-key-file" not in render_unit("llamacpp_server", plan)


def test_environment_values_and_arguments_reach_the_program_as_written():
    """systemd.syntax(7): a double-quoted word takes C escapes; systemd.unit(5): '%' starts a
    specifier; systemd.service(5): ExecStart= expands $NAME. Each is escaped in the unit."""
    plan = dict(
        placed_on_the_second_gpu(),
        env={"A": 'say "hi" \\ 100%'},
        args=["--alias", "50%$HOME"],
    )
    unit = render_unit("llamacpp_server", plan)
    assert 'Environment="A=say \\"hi\\" \\\\ 100%%"\n' in unit
    assert "--alias '50%%$$HOME'" in unit
