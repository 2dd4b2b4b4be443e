"""The serving planner: backend, loader, flags, environment, memory fit and refusals."""

import math

import pytest
from ansible.module_utils import llama_server_options
from ansible.module_utils import serving_plan as sp

HOST = "ws"
MIB = 1024 * 1024
ROOT = "/media/data/models"

NV24 = {"vendor": "nvidia", "total_vram_mib": 24564, "devices": [{"vendor": "nvidia"}]}
NV2X24 = {
    "vendor": "nvidia",
    "total_vram_mib": 49128,
    "devices": [{"vendor": "nvidia"}, {"vendor": "nvidia"}],
}
NV8 = {"vendor": "nvidia", "total_vram_mib": 8192}
NV6 = {"vendor": "nvidia", "total_vram_mib": 6144}
NV4 = {"vendor": "nvidia", "total_vram_mib": 4096}
AMD16 = {"vendor": "amd", "total_vram_mib": 16384, "devices": [{"vendor": "amd"}]}
INTEL = {"vendor": "intel", "total_vram_mib": 0}
NONE = {"vendor": "none", "total_vram_mib": 0}


def gguf(**kw):
    """A Qwen2.5-7B-like Q4_K_M GGUF (28 layers, GQA 28/4 heads, 3584 wide)."""
    model = {
        "format": "gguf",
        "name": "Qwen2.5-Coder-7B-Instruct",
        "architecture": "qwen2",
        "params": 7_615_616_512,
        "quantization": {"name": "Q4_K_M", "bits": 4.9},
        "context_length": 32768,
        "layers": 28,
        "heads": 28,
        "kv_heads": 4,
        "embedding_length": 3584,
        "size_bytes": 4683 * MIB,
        "complete": True,
        "servable": True,
        "is_projector": False,
        "trust_remote_code_required": False,
        "name_tags": {"purpose": ["code", "instruct"], "size_label": "7B", "quant_label": "Q4_K_M"},
        "reasons": [],
        "error": None,
    }
    model.update(kw)
    return model


def hf(**kw):
    """The same model as bf16 safetensors (15.2 GB)."""
    model = gguf(
        format="safetensors",
        quantization={"name": "BF16", "bits": 16.0},
        size_bytes=15_231_233_024,
    )
    model.update(kw)
    return model


def inst(**kw):
    base = {"name": "coder", "backend": "textgen", "model": "m", "port": 7861, "api_port": 5010}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def plan(instance=None, model=None, gpu=NV24, mem=65536, **kw):
    return sp.plan_instance(
        instance or inst(), gguf() if model is None else model, gpu, mem, HOST, model_root=ROOT, **kw
    )


def errors_of(p):
    return " | ".join(p["errors"])


# ---------------------------------------------------------------- format x vendor x VRAM table

CASES = [
    # id, instance overrides, model, gpu, expected loader, flags that must be present, gpu_layers, device
    ("gguf-nvidia24-all-layers", {}, gguf(), NV24, "llama.cpp", ["--gpu-layers 29"], 29, "gpu"),
    ("gguf-amd16-all-layers", {}, gguf(), AMD16, "llama.cpp", ["--gpu-layers 29"], 29, "gpu"),
    ("gguf-cpu-zero-layers", {}, gguf(), NONE, "llama.cpp", ["--gpu-layers 0"], 0, "cpu"),
    ("gguf-4gib-gpu-counts-as-none", {}, gguf(), NV4, "llama.cpp", ["--gpu-layers 0"], 0, "cpu"),
    ("gguf-intel-counts-as-none", {}, gguf(), INTEL, "llama.cpp", ["--gpu-layers 0"], 0, "cpu"),
    (
        "gguf-nvidia6-long-ctx-split",
        {"ctx_size": 32768},
        gguf(),
        NV6,
        "llama.cpp",
        ["--gpu-layers 24"],
        24,
        "split",
    ),
    ("gguf-unknown-layers-all", {}, gguf(layers=None), NV24, "llama.cpp", ["--gpu-layers 999"], 999, "gpu"),
    ("hf-bf16-nvidia24", {}, hf(), NV24, "Transformers", [], None, "gpu"),
    (
        "hf-bf16-amd-fits-at-32g",
        {},
        hf(),
        {"vendor": "amd", "total_vram_mib": 32768},
        "Transformers",
        [],
        None,
        "gpu",
    ),
    (
        "hf-bf16-nvidia8-4bit",
        {"load_in_4bit": True},
        hf(),
        NV8,
        "Transformers",
        ["--load-in-4bit"],
        None,
        "gpu",
    ),
    ("hf-bf16-cpu", {}, hf(), NONE, "Transformers", ["--cpu"], None, "cpu"),
    ("exl3-nvidia", {}, hf(format="exl3", size_bytes=5000 * MIB), NV24, "ExLlamav3", [], None, "gpu"),
    (
        "exl3-by-name-nvidia",
        {},
        hf(name="Qwen2.5-7B-exl3-4bpw", size_bytes=5000 * MIB),
        NV24,
        "ExLlamav3",
        [],
        None,
        "gpu",
    ),
    (
        "gptq-nvidia",
        {},
        hf(format="gptq", quantization={"name": "gptq", "bits": 4}, size_bytes=5 * 1024 * MIB),
        NV8,
        "Transformers",
        [],
        None,
        "gpu",
    ),
    (
        "bnb-model-nvidia",
        {},
        hf(format="bitsandbytes", size_bytes=5 * 1024 * MIB),
        NV24,
        "Transformers",
        [],
        None,
        "gpu",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_planning_table_picks_loader_flags_and_layers(case):
    _id, overrides, model, gpu, loader, flags, layers, device = case
    p = plan(inst(**overrides), model, gpu)
    assert p["errors"] == [], p["errors"]
    assert p["fits"] is True and p["refused"] is False
    assert p["loader"] == loader
    for flag in flags:
        assert flag in p["flags"], (flag, p["flags"])
    assert p["gpu_layers"] == layers
    assert p["device"] == device
    assert p["reasons"], "every plan says why"


REFUSALS = [
    ("exl3-amd", {}, hf(format="exl3", size_bytes=5000 * MIB), AMD16, "ExLlamaV3 only runs on NVIDIA"),
    ("exl3-cpu", {}, hf(format="exl3", size_bytes=5000 * MIB), NONE, "ExLlamaV3 only runs on NVIDIA"),
    ("exl3-nvidia-too-big", {}, hf(format="exl3", size_bytes=30000 * MIB), NV24, "cannot offload to the CPU"),
    ("exl2-nvidia", {}, hf(format="exl2"), NV24, "no ExLlamaV2 loader since 4.0"),
    ("exl2-cpu", {}, hf(format="exl2"), NONE, "pin a textgen older than 4.0"),
    (
        "bnb-model-amd",
        {},
        hf(format="bitsandbytes"),
        AMD16,
        "bitsandbytes, which textgen installs for NVIDIA only",
    ),
    ("bnb-model-cpu", {}, hf(format="bitsandbytes"), NONE, "NVIDIA only"),
    ("bnb-flag-amd", {"flags": ["--load-in-8bit"]}, hf(), AMD16, "--load-in-8bit needs bitsandbytes"),
    ("hf-nvidia8-no-4bit", {}, hf(), NV8, "set load_in_4bit: true"),
    (
        "hf-amd16-4bit-not-possible",
        {"load_in_4bit": True},
        hf(),
        AMD16,
        "4-bit loading (bitsandbytes) is NVIDIA only",
    ),
    ("hf-cpu-ram-too-small", {}, hf(), NONE, "cannot fit in RAM"),
    ("gguf-cpu-ram-too-small", {}, gguf(size_bytes=20000 * MIB), NONE, "cannot fit in RAM"),
    ("ollama-non-gguf", {"backend": "ollama", "api_port": None}, hf(), NV24, "ollama serves GGUF files only"),
    (
        "llamacpp-non-gguf",
        {"backend": "llamacpp", "api_port": None},
        hf(),
        NV24,
        "llamacpp serves GGUF files only",
    ),
    ("diffusers", {}, hf(format="diffusers", servable=False), NV24, "image model"),
    ("sentence-transformers", {}, hf(format="sentence-transformers"), NV24, "computes embeddings"),
    ("vocab-only", {}, gguf(format="vocab-only", servable=False), NV24, "tokenizer and no weights"),
    ("unknown-format", {}, gguf(format="unknown", servable=False), NV24, "not recognised"),
    ("projector", {}, gguf(architecture="clip", is_projector=True, servable=False), NV24, "vision projector"),
    (
        "incomplete",
        {},
        gguf(complete=False, reasons=["part 2 of 3 is missing"]),
        NV24,
        "part 2 of 3 is missing",
    ),
    ("inspect-error", {}, gguf(error="bad magic"), NV24, "bad magic"),
    ("not-servable", {}, gguf(servable=False, reasons=["a LoRA adapter"]), NV24, "a LoRA adapter"),
    ("remote-code", {}, hf(trust_remote_code_required=True), NV24, "set trust_remote_code: true"),
    ("embedding-on-textgen", {}, gguf(name_tags={"purpose": ["embedding"]}), NV24, "allow_non_chat: true"),
    ("guard-on-textgen", {}, gguf(name_tags={"purpose": ["guard"]}), NV24, "guard model, not a chat model"),
    ("tts-on-textgen", {}, gguf(name_tags={"purpose": ["tts"]}), NV24, "allow_non_chat"),
    ("stt-on-textgen", {}, gguf(name_tags={"purpose": ["stt"]}), NV24, "allow_non_chat"),
    (
        "forced-layers-too-many",
        {"flags": ["--gpu-layers 29"], "ctx_size": 32768},
        gguf(),
        NV6,
        "--gpu-layers 29 needs",
    ),
    (
        "ctx-disagrees",
        {"ctx_size": 4096, "flags": ["--ctx-size 8192"]},
        gguf(),
        NV24,
        "disagrees with ctx_size",
    ),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_refusals_say_why_and_name_host_and_instance(case):
    _id, overrides, model, gpu, needle = case
    p = plan(inst(**overrides), model, gpu, mem=16000)
    assert p["refused"] is True
    assert needle in errors_of(p), p["errors"]
    assert all(e.startswith("ws/coder: ") for e in p["errors"]), p["errors"]


def test_removed_flag_error_reads_as_the_user_needs_it():
    p = plan(inst(flags=["--use_flash_attention_2"]), hf())
    (msg,) = p["errors"]
    assert msg.startswith("ws/coder: flags: --use_flash_attention_2 ")
    assert msg.endswith("use --attn-implementation flash_attention_2")


def test_unknown_flag_is_refused_with_a_suggestion():
    p = plan(inst(flags=["--ctx_size 4096"]))
    assert "did you mean --ctx-size" in errors_of(p)


def test_owned_flag_is_refused_naming_the_instance_variable():
    p = plan(inst(flags=["--listen-port 9000"]))
    assert (
        "ws/coder: flags: --listen-port is set by the planner: set the instance variable port" in p["errors"]
    )


def test_renamed_still_accepted_flag_is_normalised_and_warned():
    p = plan(inst(flags=["--n-gpu-layers 10"]))
    assert p["errors"] == []
    assert "--gpu-layers 10" in p["flags"] and not any(f.startswith("--n-gpu-layers") for f in p["flags"])
    assert any("old name of --gpu-layers" in w for w in p["warnings"])


# ---------------------------------------------------------------- memory details


def test_kv_cache_follows_the_formula():
    model = {"layers": 32, "embedding_length": 4096, "heads": 32, "kv_heads": 8}
    assert sp.kv_cache_mib(model, 4096) == (512, True)  # 2*32*4096*8*128*2 bytes


def test_kv_cache_without_head_counts_assumes_full_attention_and_says_so():
    mib, exact = sp.kv_cache_mib({"layers": 32, "embedding_length": 4096}, 4096)
    assert (mib, exact) == (2048, False)


def test_gguf_estimate_is_weights_plus_kv_plus_compute_buffer():
    p = plan(inst(ctx_size=8192))
    kv = sp.kv_cache_mib(gguf(), 8192)[0]
    assert p["estimated_vram_mib"] == 4683 + kv + sp.GGUF_COMPUTE_BUFFER_MIB


def test_gguf_partial_offload_says_how_many_layers_and_why():
    p = plan(inst(ctx_size=32768), gpu=NV6)
    # per layer (4683 + 1792 KV) / 28 = 231.25 MiB; (6144 - 512) / 231.25 = 24.4
    assert p["gpu_layers"] == 24 and p["device"] == "split"
    assert any("Offloads 24 of 28 layers" in r and "6144 MiB" in r for r in p["reasons"])
    assert 0 < p["estimated_vram_mib"] <= 6144 and p["estimated_ram_mib"] > 0


def test_gguf_that_fits_no_layer_runs_on_cpu_with_reason():
    p = plan(inst(), gguf(size_bytes=200000 * MIB), NV6)
    assert p["gpu_layers"] == 0 and p["device"] == "cpu"
    assert any("not even one layer fits" in r for r in p["reasons"])


def test_user_gpu_layers_are_kept_and_the_planner_adds_none():
    p = plan(inst(flags=["--gpu-layers 10"]))
    assert p["gpu_layers"] == 10 and p["device"] == "split"
    assert [f for f in p["flags"] if f.startswith("--gpu-layers")] == ["--gpu-layers 10"]


def test_user_gpu_layers_minus_one_keeps_the_planner_estimate():
    p = plan(inst(flags=["--gpu-layers -1"]))
    assert p["gpu_layers"] == 29
    assert [f for f in p["flags"] if f.startswith("--gpu-layers")] == ["--gpu-layers -1"]


def test_user_cpu_flag_forces_cpu_on_a_gpu_host():
    p = plan(inst(flags=["--cpu"]), hf(), NV24)
    assert p["device"] == "cpu" and p["estimated_vram_mib"] == 0
    assert p["flags"].count("--cpu") == 1


def test_hf_vram_uses_gpustack_rule_for_short_contexts():
    p = plan(inst(ctx_size=2048), hf())
    weights = -(-7_615_616_512 * 2 // MIB)
    assert p["estimated_vram_mib"] == int(weights * 1.2 + 2048)


def test_hf_vram_counts_the_kv_cache_for_long_contexts():
    model = hf(kv_heads=28, context_length=131072)  # no GQA: a big cache
    p = plan(inst(ctx_size=131072), model, {"vendor": "nvidia", "total_vram_mib": 200000})
    kv = sp.kv_cache_mib(model, 131072)[0]
    weights = -(-7_615_616_512 * 2 // MIB)
    assert p["estimated_vram_mib"] == weights + kv + 2048


def test_hf_refusal_gives_the_numbers():
    p = plan(inst(), hf(), NV8)
    weights = -(-7_615_616_512 * 2 // MIB)
    msg = errors_of(p)
    assert f"{int(weights * 1.2 + 2048)} MiB of VRAM ({weights} MiB x1.2 + 2048)" in msg
    assert "the GPU has 8192 MiB" in msg


@pytest.mark.parametrize("gpu", [NV24, NONE], ids=["gpu", "cpu"])
def test_a_transformers_model_without_a_tokenizer_is_refused_naming_the_files(gpu):
    """textgen v4.7.3's load_model calls load_tokenizer (AutoTokenizer.from_pretrained on the
    model's directory) after the model, uncaught: without tokenizer files it stops at
    startup. model_facts says tokenizer null for such a directory."""
    p = plan(inst(), hf(tokenizer=None), gpu=gpu)
    assert "m has no tokenizer (tokenizer.json, or tokenizer.model to convert)" in errors_of(p)
    assert plan(inst(), hf(tokenizer="tokenizer.json"), gpu=gpu)["errors"] == []
    assert plan(inst(), hf(), gpu=gpu)["errors"] == []  # facts without the field: not judged


def test_hf_on_cpu_warns_it_is_slow_and_counts_float32_weights():
    p = plan(inst(), hf(), NONE, mem=131072)
    assert any("slow" in w for w in p["warnings"])
    assert p["estimated_ram_mib"] > 7_615_616_512 * 4 // MIB


def test_hf_on_cpu_with_bf16_flag_counts_16_bit_weights():
    p32 = plan(inst(), hf(), NONE, mem=131072)
    p16 = plan(inst(flags=["--bf16"]), hf(), NONE, mem=131072)
    assert p16["estimated_ram_mib"] < p32["estimated_ram_mib"]


def test_4bit_reason_says_load_in_4bit_was_used():
    p = plan(inst(load_in_4bit=True), hf(), NV8)
    assert any("--load-in-4bit" in r and "load_in_4bit" in r for r in p["reasons"])


def test_4bit_not_used_when_fp16_fits():
    p = plan(inst(load_in_4bit=True), hf(), NV24)
    assert "--load-in-4bit" not in p["flags"]


def test_unknown_host_memory_is_said_not_refused():
    p = plan(inst(), gguf(), NONE, mem=None)
    assert p["fits"] is True
    assert any("Host memory unknown" in r for r in p["reasons"])


def test_context_defaults_to_model_context_capped_at_8192():
    assert plan(inst())["ctx_size"] == 8192
    assert plan(inst(), gguf(context_length=2048))["ctx_size"] == 2048


def test_context_longer_than_trained_is_a_warning():
    p = plan(inst(ctx_size=65536))
    assert any("longer than the model's trained context" in w for w in p["warnings"])


# ---------------------------------------------------------------- textgen rendering


def test_textgen_cmd_flags_has_a_header_then_one_flag_per_line_and_no_inline_comment():
    p = plan(inst(flags=["--cache-type q8_0"]))
    text = p["cmd_flags"]
    head, body = [], []
    for line in text.splitlines():
        (head if line.startswith("#") and not body else body).append(line)
    assert len(head) >= 1 and "instance coder on ws" in head[0]
    assert body == p["flags"]
    assert all("#" not in line for line in body)
    assert text.endswith("\n")
    assert body[:5] == [
        "--model /media/data/models/m",
        "--loader llama.cpp",
        "--listen-port 7861",
        "--api",
        "--api-port 5010",
    ]
    assert body[-1] == "--cache-type q8_0"


def test_textgen_listens_only_on_localhost_by_default():
    assert not any(f.startswith("--listen ") or f == "--listen" for f in plan(inst())["flags"])


def test_bind_all_addresses_adds_listen():
    assert "--listen" in plan(inst(bind="0.0.0.0"))["flags"]


def test_bind_one_address_adds_listen_and_listen_host():
    flags = plan(inst(bind="10.0.0.5"))["flags"]
    assert "--listen" in flags and "--listen-host 10.0.0.5" in flags


def test_trust_remote_code_flag_only_when_the_instance_allows_it():
    assert "--trust-remote-code" not in plan(inst(), hf())["flags"]
    p = plan(inst(trust_remote_code=True), hf(trust_remote_code_required=True))
    assert p["errors"] == [] and "--trust-remote-code" in p["flags"]


def test_model_path_relative_to_the_store_or_absolute():
    assert plan(inst(model="sub/x.gguf"))["model"] == "/media/data/models/sub/x.gguf"
    assert plan(inst(model="/opt/m/x.gguf"))["model"] == "/opt/m/x.gguf"


def test_model_path_with_hash_is_refused():
    assert "holds '#'" in errors_of(plan(inst(model="a#b.gguf")))


def test_textgen_ports_include_the_internal_llama_server_for_llama_cpp_only():
    assert plan(inst())["ports"] == [7861, 5010, 5015]
    assert plan(inst(), hf())["ports"] == [7861, 5010]


def test_api_key_is_kept_out_of_the_plan():
    p = plan(inst(api_key="s3cret"))
    assert p["api_key_set"] is True
    assert "s3cret" not in repr(p)


def test_llamacpp_api_key_goes_to_a_key_file_and_stays_out_of_the_plan():
    p = plan(inst(backend="llamacpp", api_port=None, api_key="s3cret-key"))
    assert p["errors"] == [] and p["api_key_set"] is True
    assert "s3cret-key" not in repr(p)
    assert any("--api-key-file" in r for r in p["reasons"])
    # The role passes the key file; a key on the command line would show in ps.
    for flag in ("--api-key k", "--api-key-file /k"):
        bad = plan(inst(backend="llamacpp", api_port=None, flags=[flag]))
        assert f"{flag.split()[0]} is set by the planner from api_key" in errors_of(bad)


@pytest.mark.parametrize(
    "backend, key, message",
    [
        # Sent as "Authorization: Bearer <key>" and written as one line of a file.
        ("llamacpp", "two words", "printable ASCII characters without spaces"),
        ("textgen", "line\nbreak", "printable ASCII characters without spaces"),
        ("textgen", "clé", "printable ASCII characters without spaces"),
        ("llamacpp", "x" * 513, "1-512"),
        # common/arg.cpp (--api-key-file): a line starting with '#' is a comment, not a key.
        ("llamacpp", "#secret", "must not start with '#'"),
        # Ollama's server checks no key (ollama/ollama#1053, #8536: "use a proxy").
        ("ollama", "s3cret", "Ollama's server has no API key check"),
    ],
)
def test_api_keys_that_cannot_be_carried_are_refused_without_showing_them(backend, key, message):
    extra = {"api_port": None} if backend != "textgen" else {}
    p = plan(inst(backend=backend, api_key=key, **extra))
    assert message in errors_of(p)
    assert "coder: api_key:" in errors_of(p)
    if len(key) > 3:
        assert key not in errors_of(p)


def test_a_textgen_key_may_start_with_a_hash_it_is_a_quoted_word_there():
    assert plan(inst(api_key="#s3cret"))["errors"] == []


def test_llamacpp_prompt_cache_is_capped_at_one_context_and_counted_in_ram():
    # common/common.h: cache_ram_mib = 8192 by default; server-task.cpp keeps the cache under it.
    p = plan(inst(backend="llamacpp", api_port=None, ctx_size=4096), gpu=NONE)
    kv, _ = sp.kv_cache_mib(gguf(), 4096)
    assert p["cache_ram_mib"] == min(8192, max(1, math.ceil(kv)))
    assert p["args"][p["args"].index("--cache-ram") + 1] == str(p["cache_ram_mib"])
    off = plan(inst(backend="llamacpp", api_port=None, ctx_size=4096, flags=["--cache-ram 0"]), gpu=NONE)
    assert off["errors"] == [] and off["cache_ram_mib"] == 0 and off["args"].count("--cache-ram") == 1
    # The cache is host RAM on top of the rest.
    assert p["estimated_ram_mib"] - off["estimated_ram_mib"] == p["cache_ram_mib"]
    big = plan(inst(backend="llamacpp", api_port=None, flags=["-cram 6000"]), gpu=NONE)
    assert big["cache_ram_mib"] == 6000 and "--cache-ram" not in big["args"]
    assert big["estimated_ram_mib"] - off["estimated_ram_mib"] > 5000


@pytest.mark.parametrize("value", ["-1", "lots"])
def test_llamacpp_unlimited_prompt_cache_is_refused(value):
    p = plan(inst(backend="llamacpp", api_port=None, flags=[f"--cache-ram {value}"]))
    assert "cannot be planned" in errors_of(p)


def test_llamacpp_serves_metrics_once_even_when_the_user_asks_too():
    p = plan(inst(backend="llamacpp", api_port=None))
    assert p["args"].count("--metrics") == 1 and "--metrics" in p["flags"]
    q = plan(inst(backend="llamacpp", api_port=None, flags=["--metrics"]))
    assert q["errors"] == [] and q["args"].count("--metrics") == 1


def test_non_chat_model_allowed_with_allow_non_chat_gives_a_warning():
    p = plan(inst(allow_non_chat=True), gguf(name_tags={"purpose": ["embedding"]}))
    assert p["errors"] == [] and any("embedding" in w for w in p["warnings"])


def test_non_chat_model_on_ollama_is_not_refused():
    p = plan(inst(backend="ollama", api_port=None), gguf(name_tags={"purpose": ["embedding"]}))
    assert p["errors"] == []


def test_base_model_gets_a_warning():
    p = plan(inst(), gguf(name_tags={"purpose": ["base"]}))
    assert p["errors"] == [] and any("base model" in w for w in p["warnings"])


# ---------------------------------------------------------------- other backends


def test_llamacpp_args_are_the_llama_server_command_line():
    # Names as llama-server --help of the pinned build prints them (tools/data/).
    p = plan(inst(backend="llamacpp", api_port=None, port=8080, bind="0.0.0.0", ctx_size=4096))
    assert p["loader"] == "llama-server"
    assert p["args"] == [
        "--model",
        "/media/data/models/m",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--ctx-size",
        "4096",
        "--n-gpu-layers",
        "29",
        "--alias",
        "m",
        "--cache-ram",
        str(p["cache_ram_mib"]),
        "--metrics",
    ]
    assert p["cmd_flags"] == "" and p["env"] == {} and p["ports"] == [8080]


def test_llamacpp_on_cpu_has_zero_gpu_layers():
    p = plan(inst(backend="llamacpp", api_port=None), gpu=NONE)
    assert p["args"][p["args"].index("--n-gpu-layers") + 1] == "0"


def test_llamacpp_alias_is_the_model_file_name_that_v1_models_lists():
    # tools/server/server-context.cpp: model_name is the first --alias, else the file name.
    p = plan(inst(backend="llamacpp", api_port=None))
    assert p["args"][p["args"].index("--alias") + 1] == "m"


def test_llamacpp_embedding_model_runs_with_embedding_mode():
    p = plan(inst(backend="llamacpp", api_port=None), gguf(name_tags={"purpose": ["embedding"]}))
    assert "--embedding" in p["args"] and "--embedding" in p["flags"]
    assert "--embedding" not in plan(inst(backend="llamacpp", api_port=None))["args"]


def test_llamacpp_extra_flags_pass_through_but_owned_ones_are_refused():
    ok = plan(inst(backend="llamacpp", api_port=None, flags=["--threads 8", "--metrics", "-fa on"]))
    assert ok["errors"] == []
    assert ok["args"][-5:] == ["--threads", "8", "--metrics", "-fa", "on"]
    assert ok["args"].count("--metrics") == 1
    bad = plan(inst(backend="llamacpp", api_port=None, flags=["--port 1"]))
    assert "--port is set by the planner" in errors_of(bad)
    # Any spelling of an owned option is refused: -c is --ctx-size, -ngl is --n-gpu-layers.
    assert "-c is set by the planner from ctx_size" in errors_of(
        plan(inst(backend="llamacpp", api_port=None, flags=["-c 512"]))
    )
    assert "-ngl is set by the planner" in errors_of(
        plan(inst(backend="llamacpp", api_port=None, flags=["-ngl 9"]))
    )
    assert "contains '#'" in errors_of(plan(inst(backend="llamacpp", api_port=None, flags=["--x 1 # c"])))


@pytest.mark.parametrize(
    "flags, message",
    [
        # llama-server exits on an unknown option (common/arg.cpp: "error: invalid argument").
        (["--no-such-option"], "--no-such-option is not an option of llama-server 0c1e570"),
        (["--thread 4"], "did you mean --threads?"),
        # Spellings of llama-cpp-python's server (the backend before llama-server).
        (["--n_threads 4"], "--n_threads is llama-cpp-python's option; llama-server 0c1e570 takes --threads"),
        (["--chat_format chatml"], "takes --chat-template"),
        (["--threads"], "--threads needs a value"),
        (["--metrics=1"], "--metrics takes no value"),
        (["--threads 4 8"], "'8' is not an option"),
    ],
)
def test_llamacpp_flags_unknown_to_the_pinned_server_are_refused(flags, message):
    assert message in errors_of(plan(inst(backend="llamacpp", api_port=None, flags=flags)))


@pytest.mark.parametrize(
    "gpu, expected",
    [
        (NV24, {"CUDA_VISIBLE_DEVICES": "0"}),
        (NV2X24, {"CUDA_VISIBLE_DEVICES": "0,1"}),
        (AMD16, {"ROCR_VISIBLE_DEVICES": "0"}),
        (NONE, {"CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"}),
        (NV4, {"CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"}),
    ],
)
def test_ollama_env_sets_devices_per_vendor(gpu, expected):
    p = plan(inst(backend="ollama", api_port=None, port=11435), gpu=gpu)
    env = p["env"]
    assert env["OLLAMA_HOST"] == "127.0.0.1:11435"
    assert env["OLLAMA_MODELS"] == sp.DEFAULT_OLLAMA_MODELS_DIR
    assert env["OLLAMA_MAX_LOADED_MODELS"] == "1" and env["OLLAMA_KEEP_ALIVE"] == "-1"
    # The planned context, always: Ollama would otherwise pick its own from the VRAM.
    assert "OLLAMA_NOPRUNE" not in env and env["OLLAMA_CONTEXT_LENGTH"] == str(sp.OLLAMA_DEFAULT_CTX)
    for key, value in expected.items():
        assert env[key] == value
    assert p["flags"] == [] and p["cmd_flags"] == "" and p["loader"] == "ollama"
    assert p["ollama_model"] == "coder"


def test_ollama_context_and_shared_dir_and_extra_env():
    p = plan(
        inst(backend="ollama", api_port=None, ctx_size=16384, env={"OLLAMA_FLASH_ATTENTION": True}),
        ollama_shared=True,
    )
    assert p["env"]["OLLAMA_CONTEXT_LENGTH"] == "16384"
    assert p["env"]["OLLAMA_NOPRUNE"] == "1"
    assert p["env"]["OLLAMA_FLASH_ATTENTION"] == "true"


def test_ollama_env_cannot_override_planner_variables():
    p = plan(inst(backend="ollama", api_port=None, env={"OLLAMA_HOST": "0.0.0.0:1"}))
    assert "OLLAMA_HOST is set by the planner" in errors_of(p)


def test_ollama_ipv6_bind_is_bracketed():
    assert plan(inst(backend="ollama", api_port=None, bind="::1"))["env"]["OLLAMA_HOST"] == "[::1]:7861"


def test_ollama_refuses_flags():
    assert "ollama takes no command-line flags" in errors_of(
        plan(inst(backend="ollama", api_port=None, flags=["-x"]))
    )


def test_backend_auto_picks_llamacpp_for_gguf_and_textgen_for_hf():
    assert plan(inst(backend="auto", api_port=None))["backend"] == "llamacpp"
    p = plan(inst(backend="auto"), hf())
    assert p["backend"] == "textgen" and p["loader"] == "Transformers"


def test_backend_auto_with_unservable_format_is_refused():
    assert plan(inst(backend="auto"), hf(format="diffusers"))["refused"]


# ---------------------------------------------------------------- instance variables


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"name": None}, "ws/?: name:"),
        ({"name": "Coder"}, "not a valid instance name"),
        ({"name": "a/b"}, "not a valid instance name"),
        ({"name": "-x"}, "not a valid instance name"),
        ({"name": "x" * 41}, "not a valid instance name"),
        ({"port": None}, "port: is required"),
        ({"port": 0}, "port: 0 is not a port number"),
        ({"port": 70000}, "70000 is not a port number"),
        ({"port": "http"}, "'http' is not a port number"),
        ({"api_port": None}, "api_port: is required for textgen"),
        ({"api_port": 7861}, "api_port: must differ from port"),
        ({"backend": "vllm"}, "unknown backend 'vllm'"),
        ({"state": "running"}, "must be present or absent"),
        ({"model": None}, "model: is required"),
        ({"load_in_4bit": "maybe"}, "load_in_4bit: must be true or false"),
        ({"ctx_size": 0}, "ctx_size: must be a positive whole number"),
        ({"flags": "--cpu"}, "flags: must be a list of strings"),
        ({"env": {"A": "1"}}, "env: only applies to the ollama backend"),
        ({"bind": "0.0.0.0 #x"}, "is not an address to listen on"),
        ({"trust_remote_cod": True}, "trust_remote_cod: unknown instance variable"),
    ],
)
def test_bad_instance_variables_are_refused_by_name(overrides, needle):
    p = plan(inst(**overrides) if "name" not in overrides or overrides["name"] else _without_name(overrides))
    assert p["refused"] and needle in errors_of(p), p["errors"]


def _without_name(overrides):
    i = inst(**{k: v for k, v in overrides.items() if k != "name"})
    i.pop("name", None)
    return i


def test_api_port_on_other_backends_is_refused():
    p = plan(inst(backend="ollama"))
    assert "only textgen has a separate API port" in errors_of(p)


def test_port_as_digit_string_is_accepted():
    assert plan(inst(port="7861"))["port"] == 7861


def test_string_booleans_from_extra_vars_are_accepted():
    assert plan(inst(load_in_4bit="true"), hf(), NV8)["fits"] is True


def test_instance_that_is_not_a_mapping_is_refused():
    p = sp.plan_instance("coder", None, NV24, None, HOST)
    assert p["refused"] and "must be a mapping" in errors_of(p)


def test_absent_instance_needs_no_model_or_ports_and_is_not_refused():
    p = sp.plan_instance({"name": "old", "backend": "ollama", "state": "absent"}, None, NV24, None, HOST)
    assert p["errors"] == [] and p["refused"] is False and p["ports"] == []


def test_absent_ollama_instance_names_the_model_purge_would_delete_and_where():
    p = sp.plan_instance({"name": "old", "backend": "ollama", "state": "absent"}, None, NV24, None, HOST)
    assert p["ollama_model"] == "old" and p["env"] == {"OLLAMA_MODELS": sp.DEFAULT_OLLAMA_MODELS_DIR}
    named = {"name": "old", "backend": "ollama", "state": "absent", "ollama_model": "llama:q4"}
    p = sp.plan_instance(dict(named, ollama_models_dir="/srv/ollama"), None, NV24, None, HOST)
    assert p["ollama_model"] == "llama:q4" and p["env"]["OLLAMA_MODELS"] == "/srv/ollama"


def test_missing_model_facts_are_refused():
    p = sp.plan_instance(inst(), None, NV24, None, HOST, model_root=ROOT)
    assert "was not inspected" in errors_of(p)


# ---------------------------------------------------------------- host-level checks


def host(instances, models=None, gpu=NV24, mem=65536, used=()):
    models = models if models is not None else {ROOT + "/m": gguf(), ROOT + "/h": hf()}
    return sp.plan_host(HOST, instances, models, gpu, mem, used, model_root=ROOT)


def test_host_plan_of_good_instances_is_not_refused():
    hp = host([inst(), inst(name="chat", backend="ollama", api_port=None, port=11435)])
    assert hp["refused"] is False and hp["errors"] == []
    assert [p["name"] for p in hp["instances"]] == ["coder", "chat"]


def test_duplicate_instance_names_are_refused():
    hp = host([inst(), inst(port=7862, api_port=5020)])
    assert any("two instances are named coder" in e for e in hp["errors"])


def test_two_instances_on_one_port_are_refused_naming_both():
    hp = host([inst(), inst(name="chat", backend="ollama", api_port=None, port=7861)])
    msg = "ws: port 7861 is used by both ws/coder (port) and ws/chat (port)"
    assert msg in hp["errors"]
    assert msg in hp["instances"][0]["errors"] and msg in hp["instances"][1]["errors"]


def test_api_port_collision_is_refused():
    hp = host([inst(), inst(name="b", port=7862, api_port=5010)])
    assert "ws: port 5010 is used by both ws/coder (api_port) and ws/b (api_port)" in hp["errors"]


def test_internal_llama_server_port_collision_is_refused_naming_both():
    hp = host([inst(), inst(name="chat", backend="ollama", api_port=None, port=5015)])
    assert any(
        "port 5015 is used by both ws/coder (internal llama-server port, api_port+5) and ws/chat (port)" in e
        for e in hp["errors"]
    )


def test_internal_port_is_free_for_the_transformers_loader():
    big = {"vendor": "nvidia", "total_vram_mib": 49152}
    hp = host([inst(model="h"), inst(name="chat", backend="ollama", api_port=None, port=5015)], gpu=big)
    assert hp["errors"] == []


def test_own_ui_port_on_own_internal_port_is_refused():
    hp = host([inst(port=5015)])
    assert any("port 5015 is both its port and its internal llama-server port" in e for e in hp["errors"])


def test_internal_port_past_65535_is_refused():
    hp = host([inst(api_port=65533)])
    assert any("port 65538" in e and "outside 1-65535" in e for e in hp["errors"])


def test_port_used_by_another_service_is_refused():
    hp = host([inst()], used=[22, 7861])
    assert "ws/coder: port 7861 (port) is already used by another service on the host" in hp["errors"]


def test_absent_instances_do_not_hold_ports():
    hp = host(
        [inst(), {"name": "old", "backend": "textgen", "state": "absent", "port": 7861, "api_port": 5010}]
    )
    assert hp["errors"] == []


def test_models_are_looked_up_by_resolved_path_or_as_written():
    assert host([inst(model="x")], models={"x": gguf()})["errors"] == []
    assert host([inst(model="x")], models={ROOT + "/x": gguf()})["errors"] == []


def test_two_ollama_instances_on_one_models_dir_get_noprune():
    hp = host(
        [
            inst(name="a", backend="ollama", api_port=None, port=11435),
            inst(name="b", backend="ollama", api_port=None, port=11436),
        ]
    )
    assert all(p["env"]["OLLAMA_NOPRUNE"] == "1" for p in hp["instances"])


# ---------------------------------------------------------------- the ledger


def two_hf(**second):
    """Two 7B fp16 Transformers instances (about 19.5 GiB of VRAM each) on one host."""
    return [inst(model="h"), inst(name="b", model="h", port=7862, api_port=5020, **second)]


def test_the_second_instance_that_does_not_fit_what_the_first_left_is_refused_with_the_numbers():
    hp = host(two_hf())
    first, second = hp["instances"]
    assert first["errors"] == [] and first["device"] == "gpu"
    (msg,) = second["errors"]
    need = first["estimated_vram_mib"]
    assert msg == (
        f"ws/b: gpu: it needs about {need} MiB of VRAM and the GPU has 24564 MiB; the instances before "
        f"it take coder ({need} MiB); {24564 - need} MiB is left; set partial_offload: true on it to run "
        "with what is left (fewer layers on the GPU, or the CPU), overcommit: true to plan it as if the "
        "GPU were its alone, or move it to another host"
    )
    assert hp["refused"] and msg in hp["errors"]


def test_instances_are_placed_in_inventory_order():
    small = inst(name="small", model="m", port=7870, api_port=5030)
    first = host([inst(model="h"), small])
    assert [p["name"] for p in first["instances"] if p["errors"]] == ["small"]
    second = host([small, inst(model="h")])
    assert [p["name"] for p in second["instances"] if p["errors"]] == ["coder"]
    assert [e["name"] for e in second["ledger"]["gpu"]["instances"]] == ["small"]


def test_partial_offload_runs_a_gguf_instance_with_the_layers_that_fit_what_is_left():
    """A 4.6 GiB GGUF after a 19.5 GiB instance: alone it is all on the GPU; with the ledger
    it gets what is left and fewer layers (llama.cpp's -ngl is a layer count)."""
    alone = host([inst(model="m")])["instances"][0]
    hp = host([inst(model="h"), inst(name="b", model="m", port=7862, api_port=5020, partial_offload=True)])
    first, second = hp["instances"]
    assert hp["errors"] == []
    left = 24564 - first["estimated_vram_mib"]
    assert second["device"] == "split" and second["gpu_layers"] < alone["gpu_layers"]
    assert second["estimated_vram_mib"] <= left < alone["estimated_vram_mib"]
    assert any("planned with what is left (partial_offload)" in w for w in hp["warnings"])


def test_partial_offload_with_4_gib_or_less_left_runs_on_the_cpu():
    models = {ROOT + "/m": gguf(), ROOT + "/h": hf()}
    instances = [inst(model="h"), inst(name="b", model="m", port=7862, api_port=5020, partial_offload=True)]
    hp = sp.plan_host(HOST, instances, models, NV24, 65536, model_root=ROOT, gpu_reserve_mib=2048)
    second = hp["instances"][1]
    assert hp["errors"] == []
    assert second["device"] == "cpu" and second["estimated_vram_mib"] == 0 and second["gpu_layers"] == 0


def test_partial_offload_of_a_model_that_cannot_split_is_refused_with_what_is_left():
    hp = host(two_hf(partial_offload=True))
    (msg,) = hp["instances"][1]["errors"]
    assert (
        "and the GPU has 24564 MiB; the instances before it take coder (19479 MiB); 5085 MiB is left" in msg
    )
    assert "(partial_offload)" in msg


def test_overcommit_plans_the_instance_as_if_alone_and_warns():
    hp = host(two_hf(overcommit=True))
    first, second = hp["instances"]
    assert hp["errors"] == [] and second["device"] == "gpu"
    assert second["estimated_vram_mib"] == first["estimated_vram_mib"]
    assert any("planned as if the GPU were its alone (overcommit)" in w for w in hp["warnings"])
    assert hp["ledger"]["gpu"]["free_mib"] < 0


def test_the_gpu_reserve_is_kept_from_every_instance():
    models = {ROOT + "/m": gguf(), ROOT + "/h": hf()}
    alone = sp.plan_host(HOST, [inst(model="h")], models, NV24, 65536, model_root=ROOT)
    assert alone["errors"] == []
    reserved = sp.plan_host(
        HOST, [inst(model="h")], models, NV24, 65536, model_root=ROOT, gpu_reserve_mib=6144
    )
    (p,) = reserved["instances"]
    # 24564 - 6144 = 18420 MiB for instances: the fp16 model (19479 MiB) no longer fits.
    assert p["refused"] and "the GPU has 18420 MiB" in p["errors"][0]
    assert reserved["ledger"]["gpu"]["reserve_mib"] == 6144


def test_the_reserve_names_itself_when_it_is_why_an_instance_is_refused():
    models = {ROOT + "/m": gguf(), ROOT + "/h": hf()}
    hp = sp.plan_host(
        HOST,
        [inst(model="m"), inst(name="b", model="m", port=7862, api_port=5020)],
        models,
        NV24,
        65536,
        model_root=ROOT,
        gpu_reserve_mib=16384,
    )
    (msg,) = hp["instances"][1]["errors"]
    assert "the GPU has 24564 MiB, 16384 MiB of it reserved (gpu_reserve_mib)" in msg


def test_absent_and_refused_instances_take_no_room():
    gone = {"name": "old", "backend": "textgen", "state": "absent", "port": 7861, "api_port": 5010}
    broken = inst(name="broken", model="h", port=7870, api_port=5030, flags=["--bogus"])
    hp = host([gone, broken, inst(model="h", port=7862, api_port=5020)])
    assert [p["name"] for p in hp["instances"] if p["errors"]] == ["broken"]
    assert [e["name"] for e in hp["ledger"]["gpu"]["instances"]] == ["coder"]


def test_ram_is_a_ledger_too_with_the_system_reserve():
    """Two CPU instances whose RAM together passes what the host has beyond its reserve."""
    models = {ROOT + "/m": gguf()}
    instances = [inst(model="m"), inst(name="b", model="m", port=7862, api_port=5020)]
    one = sp.plan_host(HOST, instances[:1], models, NONE, 16384, model_root=ROOT)["instances"][0]
    mem = 2 * one["estimated_ram_mib"] + 1024 - 1
    hp = sp.plan_host(HOST, instances, models, NONE, mem, model_root=ROOT, host_reserve_mib=1024)
    (msg,) = hp["instances"][1]["errors"]
    assert msg.startswith(
        f"ws/b: it needs about {one['estimated_ram_mib']} MiB of RAM and the host has {mem} MiB"
    )
    assert "1024 MiB kept for the system (host_reserve_mib)" in msg
    ok = sp.plan_host(HOST, instances, models, NONE, mem + 1, model_root=ROOT, host_reserve_mib=1024)
    assert ok["errors"] == []
    over = [inst(model="m"), inst(name="b", model="m", port=7862, api_port=5020, overcommit=True)]
    assert sp.plan_host(HOST, over, models, NONE, mem, model_root=ROOT, host_reserve_mib=1024)["errors"] == []


def test_ledger_options_must_be_booleans():
    hp = host([inst(partial_offload="maybe")])
    assert any("partial_offload: must be true or false" in e for e in hp["errors"])


def test_model_instances_not_a_list_is_refused():
    hp = sp.plan_host(HOST, {"name": "x"}, {}, NV24)
    assert hp["refused"] and "must be a list" in hp["errors"][0]


def test_host_errors_aggregate_every_instance_error_once():
    hp = host([inst(flags=["--bogus"]), inst(name="b", backend="ollama", api_port=None, port=7861)])
    assert len(hp["errors"]) == len(set(hp["errors"]))
    assert any(e.startswith("ws/coder: flags: --bogus") for e in hp["errors"])
    assert any("port 7861 is used by both" in e for e in hp["errors"])


def test_model_paths_lists_present_instances_once_resolved():
    instances = [inst(), inst(name="b"), inst(name="c", model="/abs.gguf"), {"name": "d", "state": "absent"}]
    assert sp.model_paths(instances, ROOT) == [ROOT + "/m", "/abs.gguf"]


def test_plan_table_has_a_header_and_one_row_per_instance():
    hp = host([inst(), inst(name="bad", port=7861, api_port=5020)])
    lines = sp.plan_table(hp)
    assert lines[0].split()[:4] == ["HOST", "INSTANCE", "BACKEND", "LOADER"]
    assert "refused" in lines[2] and "7861/5010" in lines[1]
    # Then the host's ledgers: the GPU's and the RAM's (instances in order, what is left).
    need = hp["instances"][0]["estimated_vram_mib"]
    assert lines[3].startswith(f"ws VRAM ledger (MiB): 24564 total; coder {need}, bad {need}; ")
    assert lines[4].startswith("ws RAM ledger (MiB): 65536 total; coder ")
    assert len(lines) == 5


def test_purge_is_a_known_instance_variable_for_removal():
    from ansible.module_utils.serving_plan import plan_host

    plan = plan_host(
        "h",
        [{"name": "old", "backend": "llamacpp", "state": "absent", "purge": True}],
        {},
        {"vendor": "none"},
    )
    assert plan["errors"] == []


def test_purge_must_be_a_boolean():
    from ansible.module_utils.serving_plan import plan_host

    plan = plan_host(
        "h",
        [{"name": "old", "backend": "llamacpp", "state": "absent", "purge": "maybe"}],
        {},
        {"vendor": "none"},
    )
    assert any("purge" in e for e in plan["errors"])


# ---------------------------------------------------------------- KV cache: head sizes and cache types


def test_kv_cache_uses_the_models_own_key_and_value_head_sizes():
    """Per layer and token llama.cpp keeps kv_heads x key_length keys and kv_heads x
    value_length values (src/llama-hparams.cpp n_embd_k_gqa/n_embd_v_gqa); 3584 / 28 = 128
    here, and a model that says 256 (Gemma's way) gets twice the cache."""
    assert sp.kv_cache_mib(gguf(), 8192) == (28 * 8192 * 4 * (128 * 2 + 128 * 2) // MIB, True)
    wide = gguf(key_length=256, value_length=256)
    assert sp.kv_cache_mib(wide, 8192)[0] == 2 * sp.kv_cache_mib(gguf(), 8192)[0]


def test_quantized_cache_types_are_counted_at_ggml_block_sizes():
    # q8_0: 34 bytes per 32 elements; q4_0: 18 (ggml/src/ggml-common.h).
    assert sp.kv_cache_mib(gguf(), 8192, "q8_0", "q8_0")[0] == int(28 * 8192 * 4 * 256 * 34 / 32) // MIB
    assert (
        sp.kv_cache_mib(gguf(), 8192, "q8_0", "q4_0")[0] == int(28 * 8192 * 4 * 128 * (34 + 18) / 32) // MIB
    )


def llamacpp_inst(**kw):
    return inst(backend="llamacpp", api_port=None, port=8081, **kw)


def test_llama_server_cache_type_flags_shrink_the_plan_and_are_recorded():
    f16 = plan(llamacpp_inst(ctx_size=32768))
    q8 = plan(llamacpp_inst(ctx_size=32768, flags=["-ctk q8_0", "--cache-type-v=q8_0"]))
    assert (q8["cache_type_k"], q8["cache_type_v"]) == ("q8_0", "q8_0")
    assert (f16["cache_type_k"], f16["cache_type_v"]) == ("f16", "f16")
    assert q8["errors"] == [] and q8["estimated_vram_mib"] < f16["estimated_vram_mib"]


def test_a_cache_type_llama_server_does_not_accept_is_refused_naming_the_accepted_ones():
    p = plan(llamacpp_inst(flags=["--cache-type-k q6_0"]))
    assert (
        "flags: --cache-type-k q6_0: llama-server accepts f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl"
        in errors_of(p)
    )


def test_textgen_gguf_cache_type_is_one_its_llama_cpp_loader_passes_on():
    """v4.7.3's llama.cpp loader hands llama-server only fp16, q8_0 and q4_0
    (modules/llama_cpp_server.py, mirrored by the stand-in); another value would run as fp16."""
    ok = plan(inst(flags=["--cache-type q8_0"]))
    assert ok["errors"] == [] and ok["cache_type_k"] == "q8_0"
    bad = plan(inst(flags=["--cache-type q6"]))
    assert (
        "--cache-type q6: text-generation-webui's llama.cpp loader passes only fp16, q8_0, q4_0"
        in errors_of(bad)
    )


def test_textgen_exl3_cache_type_uses_exllamav3_spelling():
    exl3 = hf(name="Qwen2.5-7B-exl3", quantization={"name": "exl3", "bits": 4.0})
    ok = plan(inst(flags=["--cache-type q4_q8"]), exl3)
    assert (ok["cache_type_k"], ok["cache_type_v"]) == ("exl3-q4", "exl3-q8")
    bad = plan(inst(flags=["--cache-type q8_0"]), exl3)
    assert "ExLlamaV3 takes q2..q8 or qK_qV" in errors_of(bad)


def ollama_inst(**env):
    return inst(backend="ollama", api_port=None, port=11435, ctx_size=32768, env=env)


def test_ollama_kv_cache_type_counts_only_with_flash_attention():
    f16 = plan(ollama_inst())
    inert = plan(ollama_inst(OLLAMA_KV_CACHE_TYPE="q8_0"))
    assert inert["cache_type_k"] == "f16" and inert["estimated_vram_mib"] == f16["estimated_vram_mib"]
    assert any("takes effect only with OLLAMA_FLASH_ATTENTION=1" in w for w in inert["warnings"])
    on = plan(ollama_inst(OLLAMA_KV_CACHE_TYPE="q8_0", OLLAMA_FLASH_ATTENTION="1"))
    assert on["cache_type_k"] == "q8_0" and on["estimated_vram_mib"] < f16["estimated_vram_mib"]


def test_ollama_kv_cache_type_it_does_not_know_is_refused():
    p = plan(ollama_inst(OLLAMA_KV_CACHE_TYPE="q5_1", OLLAMA_FLASH_ATTENTION="1"))
    assert "env: OLLAMA_KV_CACHE_TYPE q5_1: Ollama accepts f16, q8_0, q4_0" in errors_of(p)


def test_ollama_parallel_slots_multiply_the_kv_cache():
    one = plan(ollama_inst())
    four = plan(ollama_inst(OLLAMA_NUM_PARALLEL="4"))
    kv = sp.kv_cache_mib(gguf(), 32768)[0]
    assert four["estimated_vram_mib"] - one["estimated_vram_mib"] == 3 * kv
    assert four["env"]["OLLAMA_NUM_PARALLEL"] == "4"
    bad = plan(ollama_inst(OLLAMA_NUM_PARALLEL="many"))
    assert "env: OLLAMA_NUM_PARALLEL must be a whole number of 1 or more" in errors_of(bad)


def test_an_ollama_context_in_env_instead_of_ctx_size_is_refused():
    p = plan(inst(backend="ollama", api_port=None, port=11435, env={"OLLAMA_CONTEXT_LENGTH": "65536"}))
    assert "env: OLLAMA_CONTEXT_LENGTH is set by the planner" in errors_of(p)


# ---------------------------------------------------------------- several GPUs


def two_cards(vram=24564):
    """Two NVIDIA cards as gpu_facts reports them (PCI order, each with its memory)."""
    return {
        "vendor": "nvidia",
        "total_vram_mib": 2 * vram,
        "devices": [
            {"vendor": "nvidia", "pci_slot": "0000:41:00.0", "vram_mib": vram, "driver_loaded": True},
            {"vendor": "nvidia", "pci_slot": "0000:01:00.0", "vram_mib": vram, "driver_loaded": True},
        ],
    }


def test_unpinned_instances_go_to_the_first_gpu_with_room_each_with_its_device_selection():
    hp = host(two_hf(), gpu=two_cards())
    first, second = hp["instances"]
    assert hp["errors"] == []
    assert (first["gpus"], second["gpus"]) == ([0], [1])
    # CUDA numbers devices fastest first unless told PCI order, the order nvidia-smi uses.
    assert first["env"] == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0"}
    assert second["env"] == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}
    per_gpu = hp["ledger"]["gpu"]["gpus"]
    assert [g["slot"] for g in per_gpu] == ["0000:01:00.0", "0000:41:00.0"]  # PCI order
    assert [[e["name"] for e in g["instances"]] for g in per_gpu] == [["coder"], ["b"]]


def test_a_pinned_instance_goes_where_it_is_pinned_and_is_checked_against_that_gpu_only():
    hp = host(
        [inst(model="h", gpus=[1]), inst(name="b", model="h", port=7862, api_port=5020, gpus=[1])],
        gpu=two_cards(),
    )
    first, second = hp["instances"]
    assert first["gpus"] == [1] and first["errors"] == []
    (msg,) = second["errors"]
    assert "ws/b: gpu: it needs about 19479 MiB of VRAM and GPU 1 (0000:41:00.0) has 24564 MiB" in msg
    assert "the instances before it there take coder (19479 MiB); 5085 MiB is left" in msg


def test_a_gpu_is_named_by_index_or_pci_slot_and_one_the_host_lacks_is_refused():
    by_slot = host([inst(model="h", gpus=["0000:41:00.0"])], gpu=two_cards())
    assert by_slot["instances"][0]["gpus"] == [1]
    missing = host([inst(model="h", gpus=[2])], gpu=two_cards())
    assert (
        "ws/coder: gpus: 2 is not a GPU of this host the planner can place on "
        "(0 = 0000:01:00.0, 1 = 0000:41:00.0)" in missing["errors"]
    )
    cpu = host([inst(model="m", gpus=[0])], gpu=NONE)
    assert "ws/coder: gpus: the host has no GPU the planner places on" in cpu["errors"]
    bad = host([inst(model="m", gpus="first")], gpu=two_cards())
    assert any("gpus: must be a list of GPU indices or PCI slots" in e for e in bad["errors"])


def test_an_instance_no_single_gpu_holds_is_split_across_the_gpus_with_room():
    """Two 12 GiB cards and the 19.5 GiB fp16 model: llama.cpp-style split over both."""
    hp = host([inst(model="h")], gpu=two_cards(12288))
    (p,) = hp["instances"]
    assert p["errors"] == [] and p["gpus"] == [0, 1]
    assert p["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    shares = [g["instances"][0]["mib"] for g in hp["ledger"]["gpu"]["gpus"]]
    assert sum(shares) >= p["estimated_vram_mib"] - 1 and abs(shares[0] - shares[1]) <= 1


def test_an_integrated_gpu_is_not_placed_on_but_keeps_its_rocm_index():
    apu = {
        "vendor": "amd",
        "total_vram_mib": 16368,
        "devices": [
            {"vendor": "amd", "pci_slot": "0000:03:00.0", "vram_mib": 16368, "integrated": False},
            {"vendor": "amd", "pci_slot": "0000:0c:00.0", "vram_mib": 512, "integrated": True},
        ],
    }
    assert [g["index"] for g in sp.host_gpus(apu)] == [0]
    hp = host([inst(model="m", backend="ollama", api_port=None, port=11435, gpus=[1])], gpu=apu)
    assert any(
        "gpus: 1 is not a GPU of this host the planner can place on (0 = 0000:03:00.0)" in e
        for e in hp["errors"]
    )


def test_one_gpu_hosts_get_no_device_selection():
    hp = host([inst(model="m", backend="llamacpp", api_port=None, port=8081)])
    (p,) = hp["instances"]
    assert p["gpus"] == [0] and p["env"] == {}


def test_device_selection_in_flags_or_env_is_refused_for_gpus():
    llama = plan(llamacpp_inst(flags=["--device CUDA1"]))
    assert "flags: --device is set by the planner from gpus" in errors_of(llama)
    ollama = plan(inst(backend="ollama", api_port=None, port=11435, env={"CUDA_VISIBLE_DEVICES": "1"}))
    assert (
        "env: CUDA_VISIBLE_DEVICES is set by the planner; choose the GPUs with the instance variable gpus"
        in errors_of(ollama)
    )


def test_the_plan_table_shows_each_gpu_of_a_host_with_several():
    hp = host(two_hf(), gpu=two_cards())
    lines = sp.plan_table(hp)
    assert "  GPU 0 (0000:01:00.0): 24564 total; coder 19479; 5085 left" in lines
    assert "  GPU 1 (0000:41:00.0): 24564 total; b 19479; 5085 left" in lines


def test_a_transformers_model_is_given_as_its_directory_and_its_name():
    """textgen's Transformers loader opens Path(f"{model_dir}/{model}")
    (modules/transformers_loader.py, load_model_HF): an absolute --model is not found there,
    so the plan passes the store directory as --model-dir and the model by name. The textgen
    stand-in does the same (tests/unit/test_standins.py)."""
    p = plan(inst(model="h"), hf())
    assert p["loader"] == "Transformers"
    assert p["flags"][:3] == ["--model-dir /media/data/models", "--model h", "--loader Transformers"]
    gguf_plan = plan(inst())
    assert gguf_plan["flags"][0] == "--model /media/data/models/m"  # resolve_model_path takes it as is


def test_a_higher_priority_is_placed_first_and_the_plans_stay_in_inventory_order():
    hp = host([inst(model="h"), inst(name="b", model="h", port=7862, api_port=5020, priority=10)])
    first, second = hp["instances"]
    assert (first["name"], second["name"]) == ("coder", "b")
    assert second["errors"] == [] and any("gpu: it needs about" in e for e in first["errors"])
    assert [e["name"] for e in hp["ledger"]["gpu"]["instances"]] == ["b"]
    bad = host([inst(priority="high")])
    assert any("priority: must be a whole number" in e for e in bad["errors"])


def test_a_gguf_of_an_architecture_llama_server_does_not_load_is_refused():
    """llama.cpp loads only the architectures of LLM_ARCH_NAMES (src/llama-arch.cpp, in
    tools/data/llama-archs-0c1e570.txt); a Flux image model's GGUF is not one."""
    flux = gguf(architecture="flux", name="flux1-dev")
    p = plan(llamacpp_inst(), flux)
    assert (
        "model: /media/data/models/m is a GGUF of architecture 'flux', which llama-server 0c1e570 does not load"
        in errors_of(p)
    )
    assert plan(llamacpp_inst())["errors"] == []  # qwen2 is one it loads
    assert "qwen2" in llama_server_options.ARCHITECTURES and "clip" not in llama_server_options.ARCHITECTURES


# ---------------------------------------------------------------- textgen's llama-server prompt cache
# textgen v4.7.3's llama.cpp loader (modules/llama_cpp_server.py) starts llama-server without
# --cache-ram, whose default (common/common.h cache_ram_mib) is 8192 MiB of host RAM.


def test_textgen_gguf_caps_its_llama_servers_prompt_cache_and_counts_it():
    p = plan(inst(model="m.gguf", ctx_size=4096), gpu=NONE)
    kv = sp.kv_cache_mib(gguf(), 4096)[0]
    assert p["cache_ram_mib"] == kv
    assert f"--extra-flags '--cache-ram {kv}'" in p["flags"]
    assert f"--extra-flags '--cache-ram {kv}'" in p["cmd_flags"]
    # Counted in RAM beside the weights, the KV cache and the server process.
    assert p["estimated_ram_mib"] >= 4683 + kv + sp.LLAMA_PROCESS_RAM_MIB + kv


def test_a_users_extra_flags_stay_as_written_and_their_cache_is_counted():
    own = plan(inst(model="m.gguf", flags=["--extra-flags '--jinja --cache-ram 300'"]), gpu=NONE)
    assert own["cache_ram_mib"] == 300 and sum("--extra-flags" in f for f in own["flags"]) == 1
    legacy = plan(inst(model="m.gguf", flags=["--extra-flags cache-ram=200,jinja"]), gpu=NONE)
    assert legacy["cache_ram_mib"] == 200
    none = plan(inst(model="m.gguf", flags=["--extra-flags jinja"]), gpu=NONE)  # legacy form: --jinja
    assert none["cache_ram_mib"] == 8192  # upstream's default: nothing caps it
    assert any("--extra-flags has no --cache-ram" in r for r in none["reasons"])
    bad = plan(inst(model="m.gguf", flags=["--extra-flags '--cache-ram -1'"]), gpu=NONE)
    assert "ws/coder: flags: --extra-flags: --cache-ram -1" in errors_of(bad)


def test_textgen_transformers_models_get_no_llama_server_cache():
    p = plan(inst(model="org/m"), model=hf(), gpu=NV24)
    assert p["cache_ram_mib"] is None and not any("--extra-flags" in f for f in p["flags"])
