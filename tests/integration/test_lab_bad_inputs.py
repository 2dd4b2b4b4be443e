"""Broken inventories are refused by site.yml's preflight, before any host changes.

Each case is the lab inventory plus an overlay with one fault. The run must fail in
the preflight play, its message must name the host and the instance or variable,
it must report no changed task, and a snapshot of every lab host (file checksums and
unit states) taken before the runs must be unchanged after all of them. The runs only
read the lab, so several run at once.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess

import fixtures_models as fm
import pytest
import yaml
from lab import REPO, run_playbook, snapshot, write_overlay_inventory

# site.yml's preflight: the inventory's plays, then the gateway's (its routes need every plan).
PREFLIGHT = {
    "Validate the inventory before any host changes",
    "Validate the gateway's routes before any host changes",
}
LAB = REPO / "inventory" / "lab"


def lab_vars(path):
    return yaml.safe_load((LAB / path).read_text())


WS = lab_vars("host_vars/workstation.yml")["model_instances"]
LC = lab_vars("host_vars/localcloud.yml")["model_instances"]
AMD = lab_vars("host_vars/amdbox.yml")["model_instances"]
ALL = lab_vars("group_vars/all.yml")
# The overlays below list the instances a case needs; the others are left out.
CODER, CHAT = (next(i for i in WS if i["name"] == name) for name in ("coder", "chat"))
TINY = LC[0]
AMDCHAT, AMDCODER = AMD


def with_(base, **changes):
    out = dict(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def ws(*instances):
    return {"workstation": {"model_instances": list(instances)}}


def lc(*instances):
    return {"localcloud": {"model_instances": list(instances)}}


def store(**changes):
    return {"all": {"model_store": with_(ALL["model_store"], **changes)}}


def gateway(**changes):
    return {"all": {"gateway": with_(ALL["gateway"], **changes)}}


def store_models(*extra):
    return {"all": {"model_store_models": ALL["model_store_models"] + list(extra)}}


SHA_ZERO = "sha256:" + "0" * 64

# id, host to limit to, host_vars overlay, group_vars overlay, words the message must hold
CASES = [
    (
        "duplicate-instance-name",
        "workstation",
        ws(CODER, with_(CHAT, name="coder")),
        None,
        ["workstation", "coder"],
    ),
    ("duplicate-port", "workstation", ws(CODER, with_(CHAT, port=7861)), None, ["workstation", "7861"]),
    ("port-out-of-range", "localcloud", lc(with_(TINY, port=70000)), None, ["localcloud/tiny", "port"]),
    ("port-zero", "localcloud", lc(with_(TINY, port=0)), None, ["localcloud/tiny", "port"]),
    (
        "internal-port-collision",
        "workstation",
        ws(CODER, with_(CHAT, port=5015)),
        None,
        ["workstation", "5015"],
    ),
    (
        "port-held-by-another-service",
        "localcloud",
        lc(with_(TINY, port=2049)),
        None,
        ["localcloud/tiny", "2049"],
    ),
    ("unknown-backend", "localcloud", lc(with_(TINY, backend="vllm")), None, ["localcloud/tiny", "backend"]),
    ("unsafe-instance-name", "localcloud", lc(with_(TINY, name="../evil")), None, ["localcloud", "name"]),
    ("unknown-instance-key", "localcloud", lc(with_(TINY, prot=8081)), None, ["localcloud/tiny", "prot"]),
    (
        "instances-not-a-list",
        "localcloud",
        {"localcloud": {"model_instances": "tiny"}},
        None,
        ["localcloud", "model_instances"],
    ),
    (
        "missing-model",
        "localcloud",
        lc(with_(TINY, model="nope.gguf")),
        None,
        ["localcloud/tiny", "nope.gguf"],
    ),
    (
        "truncated-model",
        "localcloud",
        lc(with_(TINY, model="bad/truncated.gguf")),
        None,
        ["localcloud/tiny", "truncated"],
    ),
    (
        "vocab-only-model",
        "localcloud",
        lc(with_(TINY, model="bad/vocab-only.gguf")),
        None,
        ["localcloud/tiny", "vocab"],
    ),
    (
        "exl2-on-textgen",
        "workstation",
        ws(with_(CODER, model="bad/exl2"), CHAT),
        None,
        ["workstation/coder", "EXL2"],
    ),
    (
        "transformers-model-without-tokenizer",
        "workstation",
        ws(with_(CODER, model="bad/no-tokenizer"), CHAT),
        None,
        ["workstation/coder", "bad/no-tokenizer has no tokenizer", "tokenizer.json"],
    ),
    (
        "exl3-on-amd",
        "amdbox",
        {"amdbox": {"model_instances": [AMDCHAT, with_(AMDCODER, model="bad/exl3")]}},
        None,
        ["amdbox/amdcoder", "EXL3", "NVIDIA"],
    ),
    (
        "model-too-large",
        "workstation",
        ws(with_(CODER, model="bad/huge-Q4_K_M.gguf"), CHAT),
        None,
        ["workstation/coder", "MiB"],
    ),
    (
        "hf-model-on-llamacpp",
        "localcloud",
        lc(with_(TINY, model="bad/exl3")),
        None,
        ["localcloud/tiny", "GGUF"],
    ),
    (
        "removed-textgen-flag",
        "workstation",
        ws(with_(CODER, flags=["--use_flash_attention_2"]), CHAT),
        None,
        ["workstation/coder", "--attn-implementation flash_attention_2"],
    ),
    (
        "flag-missing-value",
        "workstation",
        ws(with_(CODER, flags=["--ctx-size"]), CHAT),
        None,
        ["workstation/coder", "--ctx-size"],
    ),
    (
        "unknown-textgen-flag",
        "workstation",
        ws(with_(CODER, flags=["--no-such-flag"]), CHAT),
        None,
        ["workstation/coder", "--no-such-flag"],
    ),
    (
        "flag-with-inline-comment",
        "workstation",
        ws(with_(CODER, flags=["--threads 4 # four"]), CHAT),
        None,
        ["workstation/coder", "#"],
    ),
    (
        "planner-owned-flag",
        "workstation",
        ws(with_(CODER, flags=["--listen-port 9999"]), CHAT),
        None,
        ["workstation/coder", "port"],
    ),
    (
        "textgen-without-api-port",
        "workstation",
        ws(with_(CODER, api_port=None), CHAT),
        None,
        ["workstation/coder", "api_port"],
    ),
    (
        "api-port-on-ollama",
        "workstation",
        ws(CODER, with_(CHAT, api_port=5050)),
        None,
        ["workstation/chat", "api_port"],
    ),
    (
        "trust-remote-code-needed",
        "workstation",
        ws(with_(CODER, model="bad/remote-code"), CHAT),
        None,
        ["workstation/coder", "trust_remote_code"],
    ),
    (
        "embedding-model-on-textgen",
        "workstation",
        ws(with_(CODER, model="bad/embedder"), CHAT),
        None,
        ["workstation/coder", "embedding"],
    ),
    ("export-to-world", "localcloud", None, store(clients=["*"]), ["localcloud", "*"]),
    ("relative-export-path", "localcloud", None, store(path="models"), ["localcloud", "model_store"]),
    (
        "unknown-export-client",
        "localcloud",
        None,
        store(clients=["workstation", "nohost"]),
        ["localcloud", "nohost"],
    ),
    (
        "mount-without-export",
        "workstation",
        {
            "workstation": {
                "nfs_client_mounts": [{"server": "localcloud", "export": "/srv/other", "path": "/mnt/other"}]
            }
        },
        None,
        ["workstation", "/srv/other"],
    ),
    (
        "unknown-gpu-vendor",
        "workstation",
        {"workstation": {"gpu_vendor": "matrox"}},
        None,
        ["workstation", "gpu_vendor"],
    ),
    (
        "malformed-driver-branch",
        "workstation",
        {"workstation": {"gpu_driver_nvidia_branch": "abc"}},
        None,
        ["workstation", "gpu_driver_nvidia_branch"],
    ),
    (
        "rocm-repository-on-unsupported-distribution",
        "amdbox",
        {"amdbox": {"gpu_driver_rocm_source": "amd"}},
        None,
        ["amdbox", "gpu_driver_rocm_source"],
    ),
    (
        "url-without-checksum",
        "localcloud",
        None,
        store_models({"name": "x.gguf", "url": "http://127.0.0.1:9/x.gguf"}),
        ["localcloud", "x.gguf", "checksum"],
    ),
    (
        "unknown-checksum-algorithm",
        "localcloud",
        None,
        store_models({"name": "y.gguf", "url": "http://127.0.0.1:9/y.gguf", "checksum": "md5:" + "0" * 32}),
        ["localcloud", "md5"],
    ),
    (
        "wrong-checksum",
        "localcloud",
        None,
        store_models(
            {"name": "wrong.gguf", "src": "/srv/lab-sources/tiny-llama-F32.gguf", "checksum": SHA_ZERO}
        ),
        ["localcloud", "wrong.gguf", "checksum"],
    ),
    # The lab's repository entries (served by the Hub stand-in, see host_vars/localcloud.yml),
    # changed: refused before any change, the Hub not asked. (An include that matches no file
    # of the repository, a revision it does not have, a checksum mismatch are the store's
    # findings at run time: unit tests of the role cover them.)
    (
        "repo-moving-revision",
        "localcloud",
        None,
        {
            "all": {
                "model_store_models": [
                    with_(m, revision="main") if m.get("repo") else m for m in ALL["model_store_models"]
                ]
            }
        },
        ["localcloud", "tiny-llama-GGUF", "'main'", "allow_moving_revision"],
    ),
    (
        "repo-with-checksum",
        "localcloud",
        None,
        store_models(
            {
                "name": "other-GGUF",
                "repo": "ailab-lab/tiny-llama-GGUF",
                "revision": "0" * 40,
                "checksum": SHA_ZERO,
            }
        ),
        ["localcloud", "other-GGUF", "checksum"],
    ),
    (
        "repo-include-not-globs",
        "localcloud",
        None,
        store_models(
            {"name": "other-GGUF", "repo": "ailab-lab/tiny-llama-GGUF", "revision": "0" * 40, "include": [3]}
        ),
        ["localcloud", "other-GGUF", "include"],
    ),
    (
        "file-inside-a-repo-directory",
        "localcloud",
        None,
        store_models({"name": "tiny-llama-GGUF/extra.gguf", "src": "/srv/lab-sources/tiny-llama-F32.gguf"}),
        ["localcloud", "tiny-llama-GGUF/extra.gguf", "inside", "repo entry tiny-llama-GGUF"],
    ),
    ("gateway-host-unknown", "localcloud", None, gateway(host="nowhere"), ["gateway.host", "nowhere"]),
    (
        "gateway-without-master-key",
        "localcloud",
        None,
        gateway(master_key=None),
        ["localcloud", "gateway.master_key"],
    ),
    (
        # Two hosts' instances of one name: one route name for two endpoints.
        "gateway-duplicate-route",
        "localcloud,workstation",
        lc(TINY, with_(TINY, name="coder", port=8093)),
        None,
        ["route 'coder'", "localcloud/coder", "workstation/coder"],
    ),
    # Local staging: Ollama copies models itself; the staged models must fit the limit.
    (
        "stage-ollama",
        "workstation",
        ws(CODER, with_(CHAT, stage="local")),
        None,
        ["workstation/chat", "stage"],
    ),
    (
        "stage-over-the-limit",
        "workstation",
        {
            "workstation": {
                "model_instances": [with_(CODER, stage="local"), CHAT],
                "model_instances_stage_max_gib": 0.001,
            }
        },
        None,
        ["workstation", "tiny-llama-F32.gguf", "model_instances_stage_max_gib"],
    ),
]


def volume_dir(name):
    out = subprocess.run(
        ["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", name],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def broken_models(lab):
    """Faulty models in the lab store (written before the snapshot)."""
    bad = os.path.join(volume_dir("ailab-lab-models"), "bad")
    os.makedirs(bad, exist_ok=True)
    truncated = fm.write_gguf(os.path.join(bad, "truncated.gguf"))[0]
    os.truncate(truncated, os.path.getsize(truncated) - 4096)
    fm.write_gguf(os.path.join(bad, "vocab-only.gguf"), tensors=[], n_tokens=1000)
    fm.write_gguf(
        os.path.join(bad, "huge-Q4_K_M.gguf"),
        tensors=fm.qwen7b_tensors(layers=160, hidden=8192, ffn=28672, kv_dim=1024),
        block_count=160,
        embedding_length=8192,
        head_count=64,
        head_count_kv=8,
    )
    fm.write_hf_dir(
        os.path.join(bad, "exl2"), config={"quantization_config": {"quant_method": "exl2", "bits": 4.0}}
    )
    fm.write_hf_dir(
        os.path.join(bad, "exl3"), config={"quantization_config": {"quant_method": "exl3", "bits": 4.0}}
    )
    fm.write_hf_dir(os.path.join(bad, "no-tokenizer"), tokenizer=False)
    fm.write_hf_dir(
        os.path.join(bad, "remote-code"), config={"auto_map": {"AutoModelForCausalLM": "modeling_x.XModel"}}
    )
    fm.write_hf_dir(
        os.path.join(bad, "embedder"),
        config={"architectures": ["BertModel"], "model_type": "bert"},
        extra_files={
            "modules.json": [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
            ],
            "sentence_bert_config.json": {"max_seq_length": 256},
        },
    )
    for root, dirs, files in os.walk(bad):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return bad


# The runs only read the lab (each must stop in the preflight), so they run side by
# side: a few at a time, as many as the controller's cores keep busy.
PARALLEL_RUNS = max(2, min(4, (os.cpu_count() or 1) * 2))


@pytest.fixture(scope="module")
def refusals(lab, broken_models, tmp_path_factory):
    """Every case's run, started after a snapshot of every lab host; then a second snapshot.

    Returns {"runs": {case id: Run}, "before": snapshot, "after": snapshot}.
    """
    hosts = lab["hosts"].values()
    before = snapshot(hosts)

    # Each case's overlay inventory, written here: tmp_path_factory is not thread-safe.
    inventories = {
        case[0]: write_overlay_inventory(
            tmp_path_factory.mktemp("case"), host_vars=case[2], group_vars=case[3]
        )
        for case in CASES
    }

    def run_case(case):
        _id, host = case[0], case[1]
        return _id, run_playbook("site.yml", inventory=inventories[_id], limit=host)

    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        runs = dict(pool.map(run_case, CASES))
    return {"runs": runs, "before": before, "after": snapshot(hosts)}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_change(refusals, case):
    _id, _host, _host_vars, _group_vars, words = case
    run = refusals["runs"][_id]
    assert run.rc != 0, f"{_id}: the run did not fail"
    failures = run.failures()
    assert failures, run.stdout[-2000:]
    plays = {f.get("play") for f in failures}
    assert plays and plays <= PREFLIGHT, (
        f"{_id}: failed outside the preflight: {plays}\n{run.failure_messages()}"
    )
    message = run.failure_messages() + "\n" + "\n".join(str(f.get("res", {})) for f in failures)
    for word in words:
        assert word in message, f"{_id}: {word!r} not in:\n{run.failure_messages()}"
    # Every run stopped before any change, so no lab host differs from the snapshot taken
    # before the first of them (a run that changed a host fails every case: the changed
    # task is in its events, see changed_tasks()).
    assert run.changed_tasks() == [], f"{_id}: changed {run.changed_tasks()}"
    assert refusals["after"] == refusals["before"], "a lab host changed during the refused runs"
