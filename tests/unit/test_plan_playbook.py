"""playbooks/plan.yml end to end against localhost (connection local, GPU from inventory)."""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(os.path.join(ROOT, "plugins", "modules", "model_facts.py")),
        reason="the model_facts module is not in this tree yet",
    ),
    pytest.mark.skipif(not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python"),
]

GGUF_NAME = "Tiny-Llama-Instruct-Q4_K_M.gguf"


@pytest.fixture
def lab(tmp_path):
    fixtures = pytest.importorskip("fixtures_models")
    models = tmp_path / "models"
    models.mkdir()
    fixtures.write_gguf(str(models / GGUF_NAME), name="Tiny Llama Instruct")
    return tmp_path


def write_inventory(tmp_path, instances, **hostvars):
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "gpu_vendor": "nvidia",
        "gpu_vram_mib": 8192,
        "host_mem_mib": 16384,
        "model_store": {"mount_path": str(tmp_path / "models")},
        "model_instances": instances,
    }
    host.update(hostvars)
    path = tmp_path / "hosts.yml"
    path.write_text(json.dumps({"all": {"hosts": {"planhost": host}}}))  # JSON is YAML
    return str(path)


def run_plan(inventory, plan_dir, *extra):
    return subprocess.run(
        [PLAYBOOK_BIN, "-i", inventory, "playbooks/plan.yml", "-e", f"plan_dir={plan_dir}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false"),
    )


CODER = {"name": "coder", "backend": "textgen", "model": GGUF_NAME, "port": 7861, "api_port": 5010}


def test_plan_prints_the_table_and_writes_the_host_json(lab):
    chat = {"name": "chat", "backend": "ollama", "model": str(lab / "models" / GGUF_NAME), "port": 11435}
    inventory = write_inventory(lab, [dict(CODER, flags=["--ctx-size 2048"]), chat])
    proc = run_plan(inventory, lab / "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "INSTANCE" in proc.stdout and "coder" in proc.stdout and "chat" in proc.stdout
    plan = json.loads((lab / "plan" / "planhost.json").read_text())
    assert plan["refused"] is False and plan["gpu"]["source"] == "inventory"
    coder, chat_plan = plan["instances"]
    for key in ("name", "backend", "loader", "flags", "cmd_flags", "env", "port", "api_port"):
        assert key in coder
    for key in ("estimated_vram_mib", "fits", "reasons"):
        assert key in coder
    assert coder["loader"] == "llama.cpp" and coder["fits"] is True
    assert "--ctx-size 2048" in coder["cmd_flags"].splitlines()
    assert coder["model"] == str(lab / "models" / GGUF_NAME)
    # The deploy's default bind (serving_default_bind, as model_instances has it): loopback
    # without a gateway on another host, not an address of the preview's own.
    assert chat_plan["env"]["OLLAMA_HOST"] == "127.0.0.1:11435"


def test_plan_binds_the_hosts_address_when_a_gateway_elsewhere_must_reach_it(lab):
    chat = {"name": "chat", "backend": "ollama", "model": str(lab / "models" / GGUF_NAME), "port": 11435}
    inventory = write_inventory(lab, [chat], gateway={"host": "gw", "port": 4000})
    proc = run_plan(inventory, lab / "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads((lab / "plan" / "planhost.json").read_text())
    assert plan["instances"][0]["env"]["OLLAMA_HOST"] == f"{default_ipv4()}:11435"
    assert "gateway on gw:" in proc.stdout


def default_ipv4():
    """What Ansible's setup module reports as this host's default IPv4 address."""
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible"),
            "localhost",
            "-c",
            "local",
            "-m",
            "setup",
            "-a",
            "gather_subset=!all,!min,network filter=ansible_default_ipv4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_LOAD_CALLBACK_PLUGINS="0"),
    )
    body = proc.stdout[proc.stdout.index("{") :]
    return json.loads(body)["ansible_facts"]["ansible_default_ipv4"].get("address", "127.0.0.1")


def test_plan_refuses_textgen_flags_of_another_release_than_the_flag_table(lab):
    inventory = write_inventory(lab, [CODER], textgen_webui_version="v4.8.0")
    proc = run_plan(inventory, lab / "plan")
    assert proc.returncode != 0
    assert "planhost: textgen_webui_version is v4.8.0, but instance flags are checked against" in proc.stdout
    assert "pin textgen_webui_version: v4.7.3" in proc.stdout


def test_refused_instance_fails_after_writing_and_lists_every_error(lab):
    bad = dict(CODER, flags=["--use_flash_attention_2"])
    clash = {"name": "chat", "backend": "ollama", "model": GGUF_NAME, "port": 5015}
    inventory = write_inventory(lab, [bad, clash])
    proc = run_plan(inventory, lab / "plan")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "planhost/coder: flags: --use_flash_attention_2" in out
    assert "use --attn-implementation flash_attention_2" in out
    assert "port 5015 is used by both planhost/coder" in out
    plan = json.loads((lab / "plan" / "planhost.json").read_text())
    assert plan["refused"] is True and len(plan["errors"]) == 2


def test_missing_model_file_is_refused_with_the_model_error(lab):
    inventory = write_inventory(lab, [dict(CODER, model="nope.gguf")])
    proc = run_plan(inventory, lab / "plan")
    assert proc.returncode != 0
    plan = json.loads((lab / "plan" / "planhost.json").read_text())
    assert any(e.startswith("planhost/coder: model: ") and "nope.gguf" in e for e in plan["errors"])


def test_check_mode_still_writes_the_plan_and_changes_nothing_on_the_host(lab):
    inventory = write_inventory(lab, [CODER])
    before = sorted(os.listdir(lab / "models"))
    proc = run_plan(inventory, lab / "plan", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (lab / "plan" / "planhost.json").exists()
    assert sorted(os.listdir(lab / "models")) == before


def test_host_without_instances_is_skipped(lab):
    inventory = write_inventory(lab, [])
    proc = run_plan(inventory, lab / "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (lab / "plan" / "planhost.json").exists()


def test_the_store_server_plans_its_own_instances_from_the_store_not_the_clients_mount_point(lab):
    """On model_store.server the store lives at model_store.path; mount_path is where the
    clients mount it, and nothing is mounted there on the server itself."""
    store = {"server": "planhost", "path": str(lab / "models"), "mount_path": str(lab / "not-mounted-here")}
    inventory = write_inventory(lab, [CODER], model_store=store)
    proc = run_plan(inventory, lab / "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (coder,) = json.loads((lab / "plan" / "planhost.json").read_text())["instances"]
    assert coder["model"] == str(lab / "models" / GGUF_NAME) and not coder["refused"]


@pytest.mark.parametrize(
    ("server", "expected"), [("planhost", "/srv/store"), ("elsewhere", "/media/data/models")]
)
def test_model_instances_reads_the_store_where_this_host_has_it(tmp_path, server, expected):
    """The deploy's default agrees with plan.yml: the store server reads model_store.path."""
    play = tmp_path / "store_path.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "ansible.builtin.include_vars": os.path.join(
                                ROOT, "roles/model_instances/defaults/main.yml"
                            )
                        },
                        {"ansible.builtin.debug": {"msg": "STORE={{ model_instances_store_path }}"}},
                    ],
                }
            ]
        )
    )
    store = {"server": server, "path": "/srv/store", "mount_path": "/media/data/models"}
    inventory = write_inventory(tmp_path, [], model_store=store)
    proc = subprocess.run(
        [PLAYBOOK_BIN, "-i", inventory, str(play)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'"msg": "STORE={expected}"' in proc.stdout


def test_plan_refuses_a_port_another_service_holds_as_the_deploy_does(lab):
    """The preview probes the host's listening ports with the deploy's own task file."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        llm = {"name": "llm", "backend": "llamacpp", "model": GGUF_NAME, "port": port}
        proc = run_plan(write_inventory(lab, [llm]), lab / "plan")
    assert proc.returncode != 0
    assert f"planhost/llm: port {port} (port) is already used by another service on the host" in proc.stdout


def test_two_instances_that_do_not_fit_one_card_are_refused_then_placed_with_a_reserve_and_partial_offload(
    lab,
):
    """An 80-layer model's KV cache for 8192 tokens (about 2.5 GiB) per instance on a
    6 GiB card: the second is refused before anything changes; with 1 GiB reserved and
    partial_offload on the second, both are placed (the second on the CPU, as too little
    GPU is left) and the table shows the ledger."""
    fixtures = pytest.importorskip("fixtures_models")
    fixtures.write_gguf(
        str(lab / "models" / "deep.gguf"),
        name="deep",
        block_count=80,
        embedding_length=8192,
        head_count=64,
        head_count_kv=8,
        context_length=8192,
    )
    first = {"name": "one", "backend": "llamacpp", "model": "deep.gguf", "port": 18201, "ctx_size": 8192}
    second = dict(first, name="two", port=18202)
    proc = run_plan(write_inventory(lab, [first, second], gpu_vram_mib=6144), lab / "plan")
    assert proc.returncode != 0
    assert "planhost/two: gpu: it needs about" in proc.stdout
    assert "the instances before it take one (" in proc.stdout
    plan = json.loads((lab / "plan" / "planhost.json").read_text())
    assert plan["refused"] and [e["name"] for e in plan["ledger"]["gpu"]["instances"]] == ["one"]

    placed = write_inventory(
        lab, [first, dict(second, partial_offload=True)], gpu_vram_mib=6144, gpu_reserve_mib=1024
    )
    proc = run_plan(placed, lab / "plan")
    assert proc.returncode == 0, proc.stdout[-3000:]
    plan = json.loads((lab / "plan" / "planhost.json").read_text())
    ledger = plan["ledger"]["gpu"]
    assert ledger["total_mib"] == 6144 and ledger["reserve_mib"] == 1024
    # What one leaves (under 4 GiB) is no GPU worth the name: two runs on the CPU.
    assert [e["name"] for e in ledger["instances"]] == ["one"]
    assert plan["instances"][1]["device"] == "cpu"
    assert ledger["free_mib"] == 6144 - 1024 - ledger["instances"][0]["mib"]
    assert "planhost VRAM ledger (MiB): 6144 total, reserve 1024; one " in proc.stdout
    assert "planned with what is left (partial_offload): cpu" in proc.stdout
