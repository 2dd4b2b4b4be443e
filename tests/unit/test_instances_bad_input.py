"""Bad model_instances input is refused before anything changes on the host.

Each case runs ``ansible-playbook playbooks/instances.yml --check`` against localhost
(connection local, no containers) with one bad instance list and asserts that the play
fails in validation, naming the instance and the variable, with no task reporting a
change. The models are real-format headers written by the gguf and safetensors packages.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import pytest
from fixtures_models import write_gguf, write_hf_dir

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK = os.path.join(ROOT, "playbooks", "instances.yml")
BIN = os.path.dirname(sys.executable)
ARCHIVE_BYTES = b"not a real archive; check mode never unpacks it"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    write_gguf(root / "small-Q4_K_M.gguf", name="small")
    # Complete, but its metadata asks for a KV cache no host has: 80 layers x 1M context.
    write_gguf(
        root / "huge-ctx-Q4_K_M.gguf",
        name="huge",
        block_count=80,
        embedding_length=8192,
        head_count=64,
        head_count_kv=8,
        context_length=1048576,
    )
    files = write_gguf(root / "cut-Q4_K_M.gguf", name="cut")
    with open(files[0], "r+b") as fh:
        fh.truncate(os.path.getsize(files[0]) - 1000)
    write_hf_dir(root / "model-exl2", config={"quantization_config": {"quant_method": "exl2", "bits": 4.0}})
    write_hf_dir(
        root / "remote-code", config={"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}
    )
    return str(root)


def run(tmp_path, store, host_instances):
    """Run the play once for several localhost aliases, one instance list each (parallel forks).

    Returns ``{host: {"failed": bool, "changed": int, "messages": text}}`` from the json callback.
    """
    hosts = {
        host: dict(
            {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "model_instances": insts,
            },
            **HOST_VARS.get(host, {}),
        )
        for host, insts in host_instances.items()
    }
    # A stand-in file for the llama-server release archive: validation checks its sha256.
    archive = str(tmp_path / "llama-0c1e570-bin-ubuntu-x64.tar.gz")
    with open(archive, "wb") as fh:
        fh.write(ARCHIVE_BYTES)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": hosts,
                    "vars": {
                        "model_store": {"mount_path": store},
                        "gpu_vendor": "none",
                        "llamacpp_server_archive": archive,
                        "llamacpp_server_archive_sha256": hashlib.sha256(ARCHIVE_BYTES).hexdigest(),
                    },
                    "children": {"model_hosts": {"hosts": {h: {} for h in hosts}}},
                }
            }
        )
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN="memory",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        ANSIBLE_FORKS="20",
    )
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), "--check", PLAYBOOK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    results = {h: {"failed": False, "changed": 0, "messages": ""} for h in hosts}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    results[host]["failed"] = True
                    results[host]["messages"] += json.dumps(res.get("msg", res)) + "\n"
                if res.get("changed"):
                    results[host]["changed"] += 1
    for host, stats in report["stats"].items():
        results[host]["stats"] = stats
    results["_stderr"] = proc.stderr
    return results


def llamacpp(name="llm", port=18101, **kw):
    return dict({"name": name, "backend": "llamacpp", "model": "small-Q4_K_M.gguf", "port": port}, **kw)


def textgen(name="coder", port=17861, api_port=15010, **kw):
    return dict(
        {
            "name": name,
            "backend": "textgen",
            "model": "small-Q4_K_M.gguf",
            "port": port,
            "api_port": api_port,
        },
        **kw,
    )


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CASES = {
    "duplicate names": (
        [llamacpp(), llamacpp(port=18102)],
        r"case\d+/llm: name: two instances are named llm",
    ),
    "unsafe name": (
        [llamacpp(name="../etc")],
        r"case\d+/\.\./etc: name: '\.\./etc' is not a valid instance name",
    ),
    "ports collide": (
        [llamacpp(), llamacpp(name="llm2")],
        r"port 18101 is used by both case\d+/llm \(port\) and case\d+/llm2 \(port\)",
    ),
    "textgen internal llama-server port collides": (
        [textgen(), llamacpp(port=15015)],
        r"port 15015 is used by both .*internal llama-server port, api_port\+5",
    ),
    "unknown backend": ([llamacpp(backend="vllm")], r"case\d+/llm: backend: unknown backend 'vllm'"),
    "model missing": ([llamacpp(model="nope.gguf")], r"case\d+/llm: model: .*nope\.gguf"),
    "model incomplete": (
        [llamacpp(model="cut-Q4_K_M.gguf")],
        r"case\d+/llm: model: .*cut-Q4_K_M\.gguf is incomplete",
    ),
    "model does not fit": (
        [llamacpp(model="huge-ctx-Q4_K_M.gguf", ctx_size=1048576)],
        r"case\d+/llm: .*(does not fit|RAM)",
    ),
    "EXL2 on textgen": (
        [textgen(model="model-exl2")],
        r"case\d+/coder: model: .*is EXL2.*no ExLlamaV2 loader",
    ),
    "removed textgen flag": (
        [textgen(flags=["--use_flash_attention_2"])],
        r"case\d+/coder: flags: --use_flash_attention_2 .*--attn-implementation flash_attention_2",
    ),
    "trust_remote_code needed": (
        [textgen(model="remote-code")],
        r"case\d+/coder: trust_remote_code: .*needs --trust-remote-code",
    ),
    # llama-server exits on an option it does not know (common/arg.cpp).
    "flag unknown to the pinned llama-server": (
        [llamacpp(flags=["--n_threads 4"])],
        r"case\d+/llm: flags: --n_threads is llama-cpp-python's option; llama-server 0c1e570 takes --threads",
    ),
    # Sent as an HTTP header and one line of llama-server's --api-key-file.
    "api_key with a space": (
        [llamacpp(api_key="two words")],
        r"case\d+/llm: api_key: must be 1-512 printable ASCII characters without spaces",
    ),
    "api_key on ollama": (
        [{"name": "chat", "backend": "ollama", "model": "small-Q4_K_M.gguf", "port": 17434, "api_key": "k"}],
        r"case\d+/chat: api_key: Ollama's server has no API key check",
    ),
    "textgen without api_port": (
        [{"name": "coder", "backend": "textgen", "model": "small-Q4_K_M.gguf", "port": 17861}],
        r"case\d+/coder: api_port: is required for textgen",
    ),
}


# Hosts whose bad input is in host variables rather than in the instance list.
HOST_VARS = {
    "nosum": {"llamacpp_server_archive_sha256": ""},
    "badsum": {"llamacpp_server_archive_sha256": "0" * 64},
    "gpubuild": {"llamacpp_server_variant": "cuda"},
    # A source build: the (stand-in) archive is checked like a release archive.
    "srcnosum": {
        "llamacpp_server_install": "source",
        "llamacpp_server_source": "{{ llamacpp_server_archive }}",
    },
    "srcbadsum": {
        "llamacpp_server_install": "source",
        "llamacpp_server_source": "{{ llamacpp_server_archive }}",
        "llamacpp_server_source_sha256": "0" * 64,
    },
    "srctargets": {
        "llamacpp_server_install": "source",
        "llamacpp_server_source": "{{ llamacpp_server_archive }}",
        "llamacpp_server_source_sha256": "{{ llamacpp_server_archive_sha256 }}",
        "llamacpp_server_gpu_targets": ["gfx1100; rm -rf /"],
    },
    # The default build is the CPU one: on a GPU host it would ignore --n-gpu-layers.
    "cpubuild": {"gpu_vendor": "nvidia", "gpu_vram_mib": 24576},
    # 8192 MiB less 1024 reserved; each instance plans about 3.1 GiB (an 80-layer model's KV
    # cache for 8192 tokens): the second does not fit what the first left... with the reserve.
    "overcommit": {"gpu_vendor": "nvidia", "gpu_vram_mib": 8192, "gpu_reserve_mib": 2048},
}
# Hosts of HOST_VARS whose instance list is not the one good instance.
HOST_INSTANCES = {
    "overcommit": lambda: [
        llamacpp(model="huge-ctx-Q4_K_M.gguf", ctx_size=8192, port=free_port()),
        llamacpp(name="llm2", model="huge-ctx-Q4_K_M.gguf", ctx_size=8192, port=free_port()),
    ]
}
HOST_VAR_CASES = {
    "nosum": r"nosum: llamacpp_server_install is archive, so llamacpp_server_archive .* and\s+llamacpp_server_archive_sha256 \(64 hex digits\) are required",
    "badsum": r"badsum: llamacpp_server_archive \S+ has sha256 [0-9a-f]{64}, not llamacpp_server_archive_sha256 0{64}",
    "gpubuild": r"gpubuild: llamacpp_server_variant is cuda, a build for nvidia GPUs, but the plan for this host uses\s+none",
    "srcnosum": r"srcnosum: llamacpp_server_install is source, so llamacpp_server_source .* and\s+llamacpp_server_source_sha256 \(64 hex digits\) are required",
    "srcbadsum": r"srcbadsum: llamacpp_server_source \S+ has sha256 [0-9a-f]{64}, not llamacpp_server_source_sha256 0{64}",
    "srctargets": r"srctargets: llamacpp_server_install is source, .* targets \['gfx1100; rm -rf /'\]",
    "overcommit": r"overcommit/llm2: gpu: it needs about \d+ MiB of VRAM and the GPU has 8192 MiB, 2048 MiB of it\s+reserved \(gpu_reserve_mib\); the instances before it take llm \(\d+ MiB\)",
    "cpubuild": r"cpubuild: llamacpp_server_variant is cpu, a build without GPU support, but the plan puts\s+llm on the\s+NVIDIA GPU; install a build\s+for it \(llamacpp_server_variant:\s+cuda\s",
}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, store):
    """One check-mode run: a host per bad case, one with a port held by another service, one good."""
    port = free_port()
    hosts = {f"case{i}": CASES[name][0] for i, name in enumerate(sorted(CASES))}
    hosts["taken"] = [llamacpp(port=port)]
    for host in HOST_VARS:
        hosts[host] = (
            HOST_INSTANCES[host]()
            if host in HOST_INSTANCES
            else [llamacpp(port=free_port(), bind="127.0.0.1")]
        )
    hosts["good"] = [llamacpp(port=free_port(), bind="127.0.0.1")]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        results = run(tmp_path_factory.mktemp("run"), store, hosts)
    results["_port"] = port
    return results


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_any_change(outcome, case):
    result = outcome[f"case{sorted(CASES).index(case)}"]
    _, pattern = CASES[case]
    assert result["failed"], result
    assert "refused, nothing was changed" in result["messages"], result
    assert re.search(pattern, result["messages"]), result
    assert result["changed"] == 0, result


@pytest.mark.parametrize("host", sorted(HOST_VAR_CASES))
def test_bad_llama_server_install_is_refused_before_any_change(outcome, host):
    result = outcome[host]
    assert result["failed"], result
    assert re.search(HOST_VAR_CASES[host], result["messages"]), result
    assert result["changed"] == 0, result


def test_port_taken_by_another_service_is_refused(outcome):
    result = outcome["taken"]
    port = outcome["_port"]
    assert result["failed"], result
    pattern = rf"taken/llm: port {port} \(port\) is already used by another service on the host"
    assert re.search(pattern, result["messages"]), result
    assert result["changed"] == 0, result


def test_good_input_passes_validation_in_check_mode(outcome):
    result = outcome["good"]
    assert "refused" not in result["messages"], result
