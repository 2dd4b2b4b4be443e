"""Sliding-window attention: the KV cache llama.cpp really allocates for SWA layers.

Upstream (the pinned llama.cpp build, the source the lab's llama-server is built from):
- src/models/gemma3.cpp (gemma2, cohere2, openai-moe, olmo2 alike): the window from
  <arch>.attention.sliding_window, the pattern from load_swa_pattern(ml, n);
- src/llama-model.cpp load_swa_pattern: a per-layer bool array under
  <arch>.attention.sliding_window_pattern wins, else a number there, else the default n;
- src/llama-hparams.cpp set_swa_pattern: layer il is SWA when il % n < n - 1;
- src/llama-kv-cache-iswa.cpp: size_swa = GGML_PAD(min(size_base, n_swa x (unified ?
  n_seq_max : 1) + n_ubatch), 256), full size with --swa-full;
- tools/server/server.cpp: --parallel auto is 4 slots with kv_unified; common/common.h:
  n_ubatch 512; textgen v4.7.3 modules/llama_cpp_server.py: --parallel 1, --ubatch-size 1024;
- src/llama-context.cpp / src/llama-kv-cache.cpp: a cache that is not unified holds a stream of
  GGML_PAD(n_ctx / n_seq_max, 256) cells per sequence;
- Ollama v0.32 llm/server.go, llm/llama_server.go: every GGUF through llama-server with
  -c NumCtx x slots, -np slots, -b/-ub 512.
"""

from ansible.module_utils import model_inspect as mi
from ansible.module_utils import serving_plan as sp
from fixtures_models import write_gguf
from test_serving_plan import NV24, gguf, inst, plan

MIB = 1024 * 1024


def swa_file(tmp_path, arch, layers, extra):
    path = write_gguf(tmp_path / f"{arch}.gguf", arch=arch, block_count=layers, extra=extra)[0]
    return mi.inspect_path(path)


def test_gemma3_layers_follow_its_default_pattern_of_six(tmp_path):
    facts = swa_file(tmp_path, "gemma3", 12, {"gemma3.attention.sliding_window": (1024, "add_uint32")})
    # il % 6 < 5: layers 0-4 and 6-10 slide, 5 and 11 see everything.
    assert (facts["sliding_window"], facts["swa_layers"]) == (1024, 10)


def test_a_pattern_in_the_file_wins_as_a_number_or_per_layer(tmp_path):
    number = swa_file(
        tmp_path,
        "gemma3",
        12,
        {
            "gemma3.attention.sliding_window": (512, "add_uint32"),
            "gemma3.attention.sliding_window_pattern": (4, "add_uint32"),
        },
    )
    assert (number["sliding_window"], number["swa_layers"]) == (512, 9)
    per_layer = swa_file(
        tmp_path,
        "cohere2",
        4,
        {
            "cohere2.attention.sliding_window": (4096, "add_uint32"),
            "cohere2.attention.sliding_window_pattern": ([True, False, True, False], "add_array"),
        },
    )
    assert (per_layer["sliding_window"], per_layer["swa_layers"]) == (4096, 2)


def test_gemma2_takes_upstreams_window_and_a_model_without_one_has_none(tmp_path):
    gemma2 = swa_file(tmp_path, "gemma2", 8, {})  # n_swa = 4096, "default value of gemma 2"
    assert (gemma2["sliding_window"], gemma2["swa_layers"]) == (4096, 4)
    olmo2 = swa_file(tmp_path, "olmo2", 8, {})  # olmo2: SWA only with the key
    assert (olmo2["sliding_window"], olmo2["swa_layers"]) == (None, None)
    llama = swa_file(tmp_path, "llama", 8, {"llama.attention.sliding_window": (4096, "add_uint32")})
    assert (llama["sliding_window"], llama["swa_layers"]) == (None, None)  # not an SWA architecture here


# A Gemma-3-27B-like GGUF: 62 layers (52 sliding, window 1024), 16 KV heads of 128.
GEMMA3 = gguf(
    architecture="gemma3",
    layers=62,
    heads=32,
    kv_heads=16,
    key_length=128,
    value_length=128,
    embedding_length=5376,
    context_length=131072,
    sliding_window=1024,
    swa_layers=52,
    size_bytes=16000 * MIB,
    name_tags={"purpose": ["instruct"]},
)
PER_CELL = 16 * (128 * 2 + 128 * 2)  # one token of one layer, f16 keys and values


def kv(full_cells, swa_cells):
    return -(-(10 * full_cells + 52 * swa_cells) * PER_CELL // MIB)


def llamacpp(**kw):
    return inst(name="g", backend="llamacpp", model="g.gguf", port=8081, api_port=None, ctx_size=32768, **kw)


def test_llama_server_gives_sliding_layers_four_slots_of_window_plus_a_batch():
    p = plan(llamacpp(), model=GEMMA3, gpu=NV24)
    assert sp.swa_kv_cells("llamacpp", GEMMA3, 32768, []) == 4608  # 1024 x 4 + 512
    assert sp.kv_cache_mib(GEMMA3, 32768, "f16", "f16", 4608) == (kv(32768, 4608), True)
    assert any("52 of the model's 62 layers keep 4608 tokens" in r for r in p["reasons"])
    assert p["estimated_vram_mib"] < plan(llamacpp(flags=["--swa-full"]), model=GEMMA3)["estimated_vram_mib"]


def test_the_flags_that_change_the_window_cache_are_followed():
    cells = sp.swa_kv_cells
    assert cells("llamacpp", GEMMA3, 32768, ["--swa-full"]) is None
    # Not unified: a stream per slot, each of PAD(32768 / 2, 256) cells and a window of its own
    # (src/llama-context.cpp n_ctx_seq; src/llama-kv-cache.cpp tensors of kv_size x n_stream).
    assert cells("llamacpp", GEMMA3, 32768, ["--parallel 2"]) == 2 * 1536
    assert cells("llamacpp", GEMMA3, 2048, ["--parallel 4"]) == 4 * 512  # each stream's 512 cells
    assert cells("llamacpp", GEMMA3, 32768, ["-np 2", "-kvu"]) == 2560
    assert cells("llamacpp", GEMMA3, 32768, ["--ubatch-size 100"]) == 4352  # 4196 padded to 256
    assert cells("llamacpp", GEMMA3, 2048, []) == 2048  # never more than the context


def test_textgen_starts_llama_server_with_one_slot_and_a_larger_batch():
    assert sp.swa_kv_cells("textgen", GEMMA3, 32768, []) == 2048  # 1024 x 1 + 1024
    assert sp.swa_kv_cells("textgen", GEMMA3, 32768, ["--streaming-llm"]) is None
    p = plan(inst(model="g.gguf", ctx_size=32768), model=GEMMA3)
    assert any("keep 2048 tokens" in r for r in p["reasons"]), p["reasons"]


def test_ollama_runs_llama_server_with_a_stream_per_slot_and_a_batch_of_512():
    """Ollama v0.32 llm/server.go: "All GGML models are served via the upstream llama-server
    subprocess"; llm/llama_server.go startLlamaServer passes -c NumCtx x slots and -np slots
    (no -kvu, no --swa-full) and appendBatchArgs -b/-ub NumBatch (512 by default)."""
    assert sp.swa_kv_cells("ollama", GEMMA3, 32768, []) == 1536  # one slot: 1024 + 512
    one = plan(
        inst(name="g", backend="ollama", model="g.gguf", port=11434, api_port=None, ctx_size=32768), GEMMA3
    )
    two = plan(
        inst(
            name="g",
            backend="ollama",
            model="g.gguf",
            port=11434,
            api_port=None,
            ctx_size=32768,
            env={"OLLAMA_NUM_PARALLEL": "2"},
        ),
        GEMMA3,
    )
    assert any("keep 1536 tokens" in r for r in one["reasons"]), one["reasons"]
    assert two["estimated_vram_mib"] - one["estimated_vram_mib"] == kv(32768, 1536)


def test_models_without_a_window_keep_the_full_context():
    assert sp.swa_kv_cells("llamacpp", gguf(), 32768, []) is None
    assert sp.swa_kv_cells("ollama", gguf(), 32768, []) is None
    assert sp.kv_cache_mib(GEMMA3, 32768)[0] == kv(32768, 32768)
