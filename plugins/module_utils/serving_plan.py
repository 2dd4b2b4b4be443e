"""Plan model instances: backend, loader, flags, environment and memory fit.

Pure functions, no I/O, standard library only. The inputs are an instance definition
(inventory ``model_instances`` item), the model's facts (``model_facts``), the host's
GPU facts (``gpu_facts``) and its memory; the output is a plan dict the roles render
and ``playbooks/plan.yml`` prints and writes.

Instance variables (defaults in ``INSTANCE_DEFAULTS``):
  name (required)       ^[a-z0-9][a-z0-9_-]{0,39}$: used in file, directory and unit names
  backend (auto)        textgen | ollama | llamacpp | auto (GGUF -> llamacpp, other formats -> textgen)
  model (required)      a path relative to the model store mount, or absolute
  port (required)       the UI port (textgen) or the server port (ollama, llamacpp)
  api_port              required for textgen (its OpenAI API); not allowed elsewhere
  flags ([])            textgen: extra flags checked against the pinned flag table;
                        llamacpp: extra llama-server flags; ollama: none (use env)
  env ({})              ollama only: extra OLLAMA_* variables (not the ones the planner sets)
  ctx_size              context length; default min(model context, 8192), Ollama 4096
  load_in_4bit (false)  allow bitsandbytes 4-bit (NVIDIA) when fp16 weights do not fit
  trust_remote_code (false)  pass --trust-remote-code; a model that needs it is refused without
  allow_non_chat (false)     allow an embedding/rerank/guard/tts/stt model on textgen
  ollama_model          the name the model gets in Ollama (default: the instance name)
  ollama_models_dir     OLLAMA_MODELS (default: the planner's ``ollama_models_dir``)
  api_key               textgen --api-key, llama-server --api-key-file (Ollama has none: refused);
                        kept out of the plan (``api_key_set`` says if set)
  ui_auth               textgen only: the web UI's users, "user:password" or a list of them (from
                        vault_* variables); required when the UI listens beyond loopback. The
                        role writes them to a 0600 file passed as --gradio-auth-path; kept out
                        of the plan (``ui_auth_set`` says if set)
  bind                  the address to listen on (default: the planner's ``bind``)
  ready_timeout (600)   seconds the role waits for the API to list the model
  state (present)       present | absent
  partial_offload (false)  when the instances before it leave too little VRAM, run with what is
                        left (fewer layers on the GPU, or the CPU) instead of being refused
  overcommit (false)    plan it as if the GPU and RAM were its alone (the backend may then fail
                        to load it); the plan warns
  priority (0)          the ledger places higher priorities first, then in inventory order
  stage (the planner's ``stage``, "none")  local: the model (a file or a directory in the store)
                        is copied to the host's staging directory (``stage_dir``) and loaded
                        from there, not over NFS; ``staged_from`` keeps the store path. Not for
                        Ollama, which copies the model into its own models directory. The
                        staged models of a host must fit ``stage_max_mib`` (0: no limit).
  gpus                  the GPUs it may use, by index (PCI order, as nvidia-smi numbers them) or
                        PCI slot; unset: the first GPU with room for all of it, else every GPU
                        with room (the backend splits it)

Decision rules (design.md, reference/serving-facts.md):
- textgen loaders agree with upstream ``infer_loader`` where the host can run them:
  GGUF -> llama.cpp; EXL3 (format, or "exl3" in the name) -> ExLlamav3, NVIDIA only;
  EXL2 -> refused (no loader since textgen 4.0); everything else -> Transformers.
- bitsandbytes (a bitsandbytes model, --load-in-4bit/8bit) needs NVIDIA.
- An NVIDIA or AMD GPU whose memory is unknown (driver not loaded yet, and no
  ``gpu_vram_mib``) is refused, never planned for the CPU; ``unknown_vram`` says why.
- A GPU with <= 4 GiB VRAM counts as no GPU (the rule LocalAI uses); Intel GPUs count as
  no GPU (the textgen, Ollama and llama-cpp-python builds the roles install have no
  Intel backend).
- The ledger (``plan_host``): a host's instances are placed in inventory order. The GPU
  offers its VRAM less ``gpu_reserve_mib`` (a display server, other CUDA users); each
  instance is planned against what the instances before it left. One that needs more
  than is left is refused, naming the instances before it and the numbers, unless it
  sets ``partial_offload`` (then it gets what is left: fewer layers on the GPU, or the
  CPU) or ``overcommit`` (planned against the whole GPU, with a warning). RAM is a ledger
  too: the instances' host-side memory plus ``host_reserve_mib`` (the OS) must fit the
  host's memory, else the instance that crosses it is refused (unless ``overcommit``).
- Memory (MiB):
  GGUF: weights = file size; VRAM = weights + KV cache + 512 compute buffer. All layers
  on the GPU is gpu_layers = layers + 1 (llama.cpp counts the output layer as one more;
  999 when the layer count is unknown, which llama.cpp clamps). When it does not fit,
  offload N = floor((VRAM - 512) / ((weights + KV) / layers)) layers and run the rest on
  the CPU. CPU only: gpu_layers 0, RAM = weights + KV + 512.
  Other formats (Transformers, ExLlamav3): VRAM = max(weights x 1.2 + 2048, weights + KV
  + 2048): GPUStack's rule, raised for long contexts. Unquantized weights are loaded as
  16-bit (params x 2 bytes); 4-bit bitsandbytes is params x 0.5, 8-bit params x 1. On the
  CPU textgen loads Transformers weights as float32 (params x 4) unless --bf16.
  KV cache bytes = layers x ctx x kv_heads x (key_length x bytes_k + value_length x
  bytes_v); key/value_length from the model, else embedding_length / heads; bytes per
  element from the cache type (``KV_CACHE_BYTES``; f16 unless the instance sets one).
  RAM besides weights: 1024 for llama.cpp servers and Ollama, 2048 for Transformers;
  llama-server (llamacpp backend) adds its prompt cache, --cache-ram: one context's KV
  cache (at most upstream's 8192) unless flags give it.
"""

import difflib
import math
import os
import posixpath
import re
import shlex

try:
    from ansible.module_utils import llama_server_options, textgen_flags
except ImportError:  # loaded by file path from the filter plugin (controller side)
    import importlib.util

    def _load(name):
        spec = importlib.util.spec_from_file_location(
            "lab_" + name, os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    textgen_flags = _load("textgen_flags")
    llama_server_options = _load("llama_server_options")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
BACKENDS = ("textgen", "ollama", "llamacpp")
STATES = ("present", "absent")
MIB = 1024 * 1024
MIN_GPU_VRAM_MIB = 4096
GGUF_COMPUTE_BUFFER_MIB = 512
HF_OVERHEAD_FACTOR = 1.2
HF_OVERHEAD_MIB = 2048
LLAMA_PROCESS_RAM_MIB = 1024
# llama-server's prompt cache in host RAM: common/common.h cache_ram_mib = 8192 (-1 no
# limit, 0 off); tools/server/server-task.cpp evicts saved prompts while the cache would
# exceed it, so it can grow to that limit. The planner caps it at one full context's KV
# cache (--cache-ram) and counts it in the host's RAM.
LLAMA_CACHE_RAM_DEFAULT_MIB = 8192
CACHE_RAM_FLAGS = ("--cache-ram", "-cram")
TORCH_PROCESS_RAM_MIB = 2048
DEFAULT_CTX = 8192
OLLAMA_DEFAULT_CTX = 4096
ALL_LAYERS_UNKNOWN = 999
TEXTGEN_LLAMA_SERVER_OFFSET = 5
DEFAULT_BIND = "127.0.0.1"
DEFAULT_OLLAMA_MODELS_DIR = "/usr/share/ollama/.ollama/models"
NON_CHAT_PURPOSES = ("embedding", "rerank", "guard", "tts", "stt")
HF_FORMATS = (
    "safetensors",
    "pytorch",
    "gptq",
    "awq",
    "bitsandbytes",
    "fp8",
    "compressed-tensors",
    "exl3",
    "exl2",
)
UNQUANTIZED_FORMATS = ("safetensors", "pytorch")
NOT_SERVABLE = {
    "diffusers": "a diffusers pipeline is an image model, not a text-generation model",
    "sentence-transformers": "a sentence-transformers model computes embeddings; it does not generate text",
    "vocab-only": "a vocab-only GGUF holds a tokenizer and no weights",
    "unknown": "the model format is not recognised",
}
# The variables that select GPUs, for CUDA and ROCm (set from the ledger's placement).
DEVICE_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
)
OLLAMA_OWNED_ENV = ("OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_KEEP_ALIVE")
# llama-server options the planner sets, with the instance variable that sets each.
LLAMACPP_OWNED_FLAGS = {
    "--model": "model",
    "--host": "bind",
    "--port": "port",
    "--ctx-size": "ctx_size",
    "--n-gpu-layers": "the planner's GPU offload (from the GPU's memory)",
    "--embedding": "the model's purpose (embedding models get it)",
    "--alias": "the instance's model name",
    # Device selection is the ledger's: the unit's CUDA/ROCR_VISIBLE_DEVICES.
    "--device": "gpus (the GPUs the instance may use, by index or PCI slot)",
    "--main-gpu": "gpus (the GPUs the instance may use, by index or PCI slot)",
    # The role writes api_key to a 0600 file beside the instance and passes --api-key-file.
    "--api-key": "api_key (written to a 0600 file the unit passes as --api-key-file)",
    "--api-key-file": "api_key (written to a 0600 file the unit passes as --api-key-file)",
}
# An API key travels as an HTTP header (Authorization: Bearer <key>), one line of
# llama-server's --api-key-file (common/arg.cpp: one key per line, a line starting with
# '#' is a comment) and a shell-quoted word of textgen's CMD_FLAGS.txt: printable ASCII
# without spaces carries through all three unchanged.
API_KEY_RE = re.compile(r"[!-~]{1,512}")
# textgen's web UI users (ui_auth). Upstream v4.7.3 server.py create_interface() reads
# --gradio-auth-path as: every line split at ',', each piece stripped, empty ones
# skipped, then ``tuple(cred.split(':'))`` is handed to Gradio's launch(auth=...). So
# one entry is exactly one user and one password around a single ':', neither holding
# ',' or whitespace (printable ASCII 0x21-0x7e less ',' and ':'), 1-256 characters.
UI_AUTH_RE = re.compile(r"[!-+\--9;-~]+:[!-+\--9;-~]+")
UI_AUTH_MAX = 256
# Where an address keeps textgen on the host itself (the firewall tasks use the same list).
LOOPBACK_BINDS = ("127.0.0.1", "::1", "localhost")
# textgen flags the planner refuses in favour of ui_auth: a password on the command line
# (--gradio-auth) shows in ps, and the file (--gradio-auth-path) is the role's to write.
TEXTGEN_UI_AUTH_FLAGS = {
    "--gradio-auth": "set the instance variable ui_auth from a vault variable (kept out of the plan "
    "and off the command line)",
    "--gradio-auth-path": "set the instance variable ui_auth from a vault variable; the role writes it "
    "to a 0600 file and passes that file as --gradio-auth-path",
}
# Options of llama-cpp-python's server (the llamacpp backend before llama-server) and
# what llama-server calls them (llama_cpp/server/settings.py against common/arg.cpp).
LLAMACPP_PYTHON_RENAMED = {
    "--n_ctx": "ctx_size (the instance variable)",
    "--n_gpu_layers": "nothing: the planner sets --n-gpu-layers",
    "--n_threads": "--threads",
    "--n_threads_batch": "--threads-batch",
    "--n_batch": "--batch-size",
    "--n_ubatch": "--ubatch-size",
    "--chat_format": "--chat-template",
    "--flash_attn": "--flash-attn on",
    "--model_alias": "nothing: the alias is the instance's model name",
    "--rope_freq_base": "--rope-freq-base",
    "--rope_freq_scale": "--rope-freq-scale",
    "--main_gpu": "--main-gpu",
    "--tensor_split": "--tensor-split",
    "--split_mode": "--split-mode",
    "--type_k": "--cache-type-k",
    "--type_v": "--cache-type-v",
    "--seed": "--seed",
    "--api_key": "an api_key on the instance",
    "--verbose": "--verbose",
}
INSTANCE_DEFAULTS = {
    "name": None,
    "backend": "auto",
    "model": None,
    "port": None,
    "api_port": None,
    "flags": [],
    "env": {},
    "ctx_size": None,
    "load_in_4bit": False,
    "trust_remote_code": False,
    "allow_non_chat": False,
    "ollama_model": None,
    "ollama_models_dir": None,
    "api_key": None,
    "ui_auth": None,
    "bind": None,
    "ready_timeout": 600,
    "state": "present",
    "purge": False,
    "partial_offload": False,
    "overcommit": False,
    "gpus": None,
    "priority": 0,
    "stage": None,
}
STAGES = ("none", "local")
DEFAULT_STAGE_DIR = "/var/lib/ailab/stage"


def store_root(model_store, host):
    """Where ``host`` reads the model store: ``model_store.path`` on the store server
    itself (it mounts nothing), else the clients' ``mount_path``; None when neither is set."""
    model_store = model_store if isinstance(model_store, dict) else {}
    if model_store.get("server") == host and model_store.get("path"):
        return model_store["path"]
    return model_store.get("mount_path") or None


def resolve_model_path(model, model_root=None):
    """An instance's ``model`` as an absolute path (relative ones under ``model_root``)."""
    if not isinstance(model, str) or not model:
        return None
    if posixpath.isabs(model) or not model_root:
        return posixpath.normpath(model)
    return posixpath.normpath(posixpath.join(model_root, model))


def model_paths(instances, model_root=None):
    """Unique resolved model paths of the present instances, in order (for model_facts)."""
    paths = []
    for inst in instances or []:
        if not isinstance(inst, dict) or inst.get("state", "present") == "absent":
            continue
        path = resolve_model_path(inst.get("model"), model_root)
        if path and path not in paths:
            paths.append(path)
    return paths


def _mib(num_bytes):
    return int((num_bytes + MIB - 1) // MIB)


def _as_int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^\s*\d+\s*$", value):
        return int(value)
    return None


def _as_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    return None


def effective_gpu(gpu):
    """``(vendor, vram_mib, reason)``: the GPU the planner uses, or ("none", 0, why)."""
    gpu = gpu or {}
    vendor = gpu.get("vendor") or "none"
    vram = _as_int(gpu.get("total_vram_mib")) or 0
    if vendor == "none":
        return "none", 0, "The host has no GPU: everything runs on the CPU."
    if vendor == "intel":
        return (
            "none",
            0,
            "Intel GPUs have no backend in the builds the roles install: everything runs on the CPU.",
        )
    if vendor not in ("nvidia", "amd"):
        return "none", 0, f"Unknown GPU vendor {vendor!r}: everything runs on the CPU."
    if vram <= MIN_GPU_VRAM_MIB:
        return (
            "none",
            0,
            "The {} GPU has {} MiB of VRAM; a GPU with 4 GiB or less counts as no GPU, so everything "
            "runs on the CPU.".format(vendor.upper() if vendor == "amd" else "NVIDIA", vram),
        )
    return vendor, vram, None


def unknown_vram(gpu):
    """Why the host's NVIDIA or AMD GPU cannot be planned yet (one sentence), or None.

    Before its driver is loaded (a fresh install, the reboot still pending) a card's
    memory cannot be read: nvidia-smi needs the nvidia module, and amdgpu publishes
    ``mem_info_vram_total`` only once bound. Planning such a host as if it had no GPU
    would build and run everything for the CPU without a word, so the plan is refused
    and asks for ``gpu_vram_mib`` (or ``gpu_vendor: none``, the way to say "CPU") instead.
    """
    gpu = gpu or {}
    vendor = gpu.get("vendor") or "none"
    if vendor not in ("nvidia", "amd") or (_as_int(gpu.get("total_vram_mib")) or 0) > 0:
        return None
    cards = [d for d in gpu.get("devices") or [] if isinstance(d, dict) and d.get("vendor") == vendor]
    name = "NVIDIA" if vendor == "nvidia" else "AMD"
    if not cards:
        where = f"gpu_vendor is {vendor} but no {name} GPU was found on the host"
    else:
        described = ", ".join(
            "{} at {} (driver: {})".format(
                d.get("name") or "a card", d.get("pci_slot") or "?", d.get("driver") or "none"
            )
            for d in cards
        )
        if all(d.get("driver_loaded") for d in cards):
            tool = "nvidia-smi" if vendor == "nvidia" else "rocm-smi and sysfs"
            where = f"the {name} GPU ({described}) reports no memory size ({tool} gave none; see the gpu facts' warnings)"
        else:
            where = (
                f"the {name} GPU ({described}) has no memory size yet: it is read from its driver, "
                "which is not loaded (a fresh install, or its reboot is pending)"
            )
    return (
        f"{where}; set gpu_vram_mib for this host (the card's memory in MiB, e.g. 24576) to plan for "
        "the GPU now, or gpu_vendor: none to plan everything for the CPU"
    )


# Bytes per KV cache element, per cache type: the types llama-server accepts for
# --cache-type-k/-v (common/arg.cpp, kv_cache_types: f32 f16 bf16 q8_0 q4_0 q4_1 iq4_nl
# q5_0 q5_1), sized as ggml stores them (ggml/src/ggml-common.h: a block of 32 elements
# is a 2-byte scale plus the quants, q4_1/q5_1 a scale and a minimum, q5 4 more bytes
# of fifth bits).
KV_CACHE_BYTES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "iq4_nl": 18 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}


def kv_cache_mib(model, ctx, type_k="f16", type_v="f16", swa_cells=None):
    """``(MiB, exact)`` of the KV cache for ``ctx`` tokens; exact is False when guessed.

    Per layer llama.cpp keeps n_head_kv x n_embd_head_k keys and n_head_kv x
    n_embd_head_v values per token (src/llama-hparams.cpp ``n_embd_k_gqa``/``n_embd_v_gqa``),
    the head sizes being the model's key_length/value_length, else embedding / heads.
    ``swa_cells``: the cells each of the model's ``swa_layers`` sliding-window layers keeps
    (``swa_kv_cells``), when the backend gives them their own smaller cache; None: every
    layer holds ``ctx``.
    """
    layers = _as_int(model.get("layers"))
    emb = _as_int(model.get("embedding_length"))
    heads = _as_int(model.get("heads"))
    kv_heads = _as_int(model.get("kv_heads"))
    bytes_k = _kv_bytes(type_k)
    bytes_v = _kv_bytes(type_v)
    if not layers or not ctx or not (emb or model.get("key_length")):
        return 0, False
    if heads and kv_heads:
        default_head = emb / heads if emb else 0
        head_k = _as_int(model.get("key_length")) or default_head
        head_v = _as_int(model.get("value_length")) or default_head
        swa = min(_as_int(model.get("swa_layers")) or 0, layers) if swa_cells else 0
        cells = (layers - swa) * ctx + swa * min(ctx, swa_cells or ctx)
        return _mib(cells * kv_heads * (head_k * bytes_k + head_v * bytes_v)), True
    return _mib(layers * ctx * emb * (bytes_k + bytes_v)), False  # no GQA information: full attention


def swa_kv_cells(backend, model, ctx, user_lines):
    """The KV cells llama.cpp gives each sliding-window layer, or None (full context).

    src/llama-kv-cache-iswa.cpp: size_swa = GGML_PAD(min(size_base, n_swa x (kv_unified ?
    n_seq_max : 1) + n_ubatch), 256), unless --swa-full; size_base is n_ctx_seq, which is n_ctx
    when unified, else GGML_PAD(n_ctx / n_seq_max, 256) (src/llama-context.cpp), and a cache
    that is not unified holds one stream of that size per sequence (src/llama-kv-cache.cpp: K
    and V tensors of kv_size x n_stream). The result is the cells of all streams together.
    llama-server (tools/server/server.cpp) turns --parallel auto (its default) into 4 slots
    with kv_unified; n_ubatch defaults to 512 (common/common.h). textgen v4.7.3's llama.cpp
    loader (modules/llama_cpp_server.py) starts llama-server with --parallel 1 and
    --ubatch-size 1024, and --swa-full with --streaming-llm. Ollama v0.32 serves every GGUF
    with llama-server (llm/server.go NewLlamaServer): -c NumCtx x slots, -np slots (not
    unified: one stream of NumCtx per slot), -b/-ub NumBatch (512, api/types.go
    DefaultOptions), never --swa-full (llm/llama_server.go startLlamaServer,
    appendBatchArgs); for Ollama ``ctx`` is one slot's and the result one slot's cells (the
    caller multiplies by OLLAMA_NUM_PARALLEL)."""
    window = _as_int(model.get("sliding_window"))
    if not window or not _as_int(model.get("swa_layers")) or model.get("format") != "gguf":
        return None

    def value(*names):
        found = _flag_values(user_lines, names)
        return _as_int(found[-1]) if found else None

    def given(*names):
        return any(word.partition("=")[0] in names for line in user_lines for word in line.split())

    if backend == "llamacpp":
        if given("--swa-full"):
            return None
        seqs = value("--parallel", "-np")
        unified = seqs is None or seqs < 0 or given("--kv-unified", "-kvu")
        seqs = 4 if seqs is None or seqs < 0 else seqs
        ubatch = value("--ubatch-size", "-ub") or 512
    elif backend == "textgen":
        if given("--streaming-llm"):
            return None
        seqs, unified = 1, False
        ubatch = value("--ubatch-size") or 1024
    elif backend == "ollama":
        seqs, unified, ubatch = 1, False, 512
    else:
        return None

    def pad(cells):
        return -(-cells // 256) * 256

    if unified:
        return pad(min(ctx, window * seqs + ubatch))
    per_seq = pad(ctx // seqs)
    return seqs * pad(min(per_seq, window + ubatch))


# text-generation-webui v4.7.3's llama.cpp loader passes --cache-type on to llama-server
# only for these (modules/llama_cpp_server.py; any other value silently stays fp16);
# ExLlamaV3 spells its own (q8, q6, q4 or qK_qV) and fails on q8_0.
TEXTGEN_LLAMACPP_CACHE_TYPES = {"fp16": "f16", "q8_0": "q8_0", "q4_0": "q4_0"}
EXL3_CACHE_RE = re.compile(r"^q([2-8])(?:_q([2-8]))?$")
# Ollama's OLLAMA_KV_CACHE_TYPE: f16 (the default), q8_0 or q4_0 (llama/llama.go,
# kvCacheTypeFromStr); it takes effect only with flash attention on.
OLLAMA_CACHE_TYPES = ("f16", "q8_0", "q4_0")


def _ollama_parallel(inst, err):
    raw = (inst.get("env") or {}).get("OLLAMA_NUM_PARALLEL")
    if raw is None:
        return 1
    value = _as_int(raw)
    if not value or value < 1:
        err("env", f"OLLAMA_NUM_PARALLEL must be a whole number of 1 or more, got {raw!r}")
        return 1
    return value


def _flag_values(lines, names):
    """The values given to any of ``names`` in llama-server flag lines (``-x v`` or ``-x=v``)."""
    values = []
    for line in lines:
        words = line.split()
        for i, word in enumerate(words):
            name, eq, inline = word.partition("=")
            if name in names:
                if eq:
                    values.append(inline)
                elif i + 1 < len(words):
                    values.append(words[i + 1])
    return values


def _kv_bytes(kind):
    """Bytes per KV element of a cache type: llama.cpp's, or ExLlamaV3's ``exl3-qN`` (N bits)."""
    if kind in KV_CACHE_BYTES:
        return KV_CACHE_BYTES[kind]
    if str(kind).startswith("exl3-q"):
        return int(str(kind)[len("exl3-q") :]) / 8
    return 2.0


def _cache_types(backend, fmt, inst, user_flags, user_lines, err, warn, model=None):
    """``(type_k, type_v)`` of the KV cache the backend will allocate, checked in the
    spelling that backend accepts."""
    if backend == "llamacpp":
        types = []
        for names in (("-ctk", "--cache-type-k"), ("-ctv", "--cache-type-v")):
            values = _flag_values(user_lines, names)
            value = values[-1] if values else "f16"
            if value not in KV_CACHE_BYTES:
                err(
                    "flags",
                    "{} {}: llama-server accepts {} (common/arg.cpp)".format(
                        names[1], value, ", ".join(KV_CACHE_BYTES)
                    ),
                )
                value = "f16"
            types.append(value)
        return types[0], types[1]
    if backend == "textgen" and "--cache-type" in user_flags:
        value = str(user_flags["--cache-type"][0])
        if fmt == "gguf":
            if value not in TEXTGEN_LLAMACPP_CACHE_TYPES:
                err(
                    "flags",
                    "--cache-type {}: text-generation-webui's llama.cpp loader passes only {} to "
                    "llama-server and would run {} as fp16".format(
                        value, ", ".join(TEXTGEN_LLAMACPP_CACHE_TYPES), value
                    ),
                )
                return "f16", "f16"
            kind = TEXTGEN_LLAMACPP_CACHE_TYPES[value]
            return kind, kind
        match = EXL3_CACHE_RE.match(value)
        exl3 = _is_exl3(model or {})
        if exl3 and match:
            bits_k = int(match.group(1))
            return f"exl3-q{bits_k}", f"exl3-q{int(match.group(2) or bits_k)}"
        if exl3:
            err("flags", f"--cache-type {value}: ExLlamaV3 takes q2..q8 or qK_qV (e.g. q8, q4_q8)")
        else:
            warn(f"--cache-type {value} has no effect with the Transformers loader; the plan counts fp16.")
        return "f16", "f16"
    if backend == "ollama":
        env = inst.get("env") or {}
        value = str(env.get("OLLAMA_KV_CACHE_TYPE") or "f16").lower()
        if value not in OLLAMA_CACHE_TYPES:
            err(
                "env",
                "OLLAMA_KV_CACHE_TYPE {}: Ollama accepts {}".format(value, ", ".join(OLLAMA_CACHE_TYPES)),
            )
            return "f16", "f16"
        flash = str(env.get("OLLAMA_FLASH_ATTENTION", "")).lower() in ("1", "true", "yes", "on")
        if value != "f16" and not flash:
            warn(
                f"OLLAMA_KV_CACHE_TYPE {value} takes effect only with OLLAMA_FLASH_ATTENTION=1; without it "
                "Ollama keeps an f16 cache, and the plan counts that."
            )
            return "f16", "f16"
        return value, value
    return "f16", "f16"


def _params(model):
    return _as_int(model.get("params")) or 0


def _quant_name(model):
    quant = model.get("quantization") or {}
    return (quant.get("name") or "").lower() if isinstance(quant, dict) else ""


def _is_exl3(model):
    name = (model.get("name") or model.get("path") or "").lower()
    return model.get("format") == "exl3" or _quant_name(model) == "exl3" or "exl3" in name


def _is_bitsandbytes(model):
    return model.get("format") == "bitsandbytes" or _quant_name(model).startswith("bitsandbytes")


def _hf_vram(weights_mib, kv_mib):
    return int(
        max(weights_mib * HF_OVERHEAD_FACTOR + HF_OVERHEAD_MIB, weights_mib + kv_mib + HF_OVERHEAD_MIB)
    )


def _new_plan(host, inst):
    return {
        "host": host,
        "name": inst.get("name"),
        "state": inst.get("state") or "present",
        "backend": inst.get("backend"),
        "loader": None,
        "model": None,
        "model_format": None,
        "flags": [],
        "cmd_flags": "",
        "args": [],
        "env": {},
        "bind": None,
        "port": _as_int(inst.get("port")),
        "api_port": _as_int(inst.get("api_port")),
        "ports": [],
        "ctx_size": None,
        "cache_type_k": None,
        "cache_type_v": None,
        "gpus": [],
        "gpu_layers": None,
        "layers": None,
        "device": None,
        "estimated_vram_mib": 0,
        "estimated_ram_mib": 0,
        # llama-server's prompt cache limit in MiB (llamacpp backend), counted in the RAM.
        "cache_ram_mib": None,
        "fits": False,
        "ready_timeout": inst.get("ready_timeout", 600),
        "api_key_set": bool(inst.get("api_key")),
        # stage: local: the store path the model is copied from, its size (plan["model"] is the copy).
        "stage": "none",
        "staged_from": None,
        "stage_bytes": 0,
        "ui_auth_set": bool(inst.get("ui_auth")),
        "ollama_model": None,
        "reasons": [],
        "warnings": [],
        "errors": [],
        "refused": True,
    }


def check_instance(inst, host, bind=DEFAULT_BIND):
    """Validate the instance's own fields; returns ``(normalised instance, errors)``."""
    errors = []
    if not isinstance(inst, dict):
        return None, [f"{host}: a model_instances item must be a mapping, got {inst!r}"]
    name = inst.get("name")
    label = "{}/{}".format(host, name if isinstance(name, str) and name else "?")

    def err(var, msg):
        errors.append(f"{label}: {var}: {msg}" if var else f"{label}: {msg}")

    unknown = sorted(k for k in inst if k not in INSTANCE_DEFAULTS)
    for key in unknown:
        err(key, "unknown instance variable; known: {}".format(", ".join(INSTANCE_DEFAULTS)))
    out = dict(INSTANCE_DEFAULTS)
    out.update({k: v for k, v in inst.items() if k in INSTANCE_DEFAULTS and v is not None})
    if not isinstance(name, str) or not NAME_RE.match(name):
        err(
            "name",
            f"{name!r} is not a valid instance name: use 1-40 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit (it names files and systemd units)",
        )
    if out["state"] not in STATES:
        err("state", "must be present or absent, got {!r}".format(out["state"]))
    if out["backend"] not in BACKENDS + ("auto",):
        err("backend", "unknown backend {!r}; use textgen, ollama, llamacpp or auto".format(out["backend"]))
    present = out["state"] != "absent"  # removing an instance needs only its name and backend
    if present and (not isinstance(out["model"], str) or not out["model"]):
        err("model", "is required: a model path relative to the model store, or absolute")
    for key in (
        "load_in_4bit",
        "trust_remote_code",
        "allow_non_chat",
        "purge",
        "partial_offload",
        "overcommit",
    ):
        value = _as_bool(out[key])
        if value is None:
            err(key, f"must be true or false, got {out[key]!r}")
        out[key] = bool(value)
    for key in ("port", "api_port"):
        raw = out[key]
        if raw is None:
            continue
        value = _as_int(raw)
        if value is None or not 1 <= value <= 65535:
            err(key, f"{raw!r} is not a port number (1-65535)")
            out[key] = None
        else:
            out[key] = value
    if present and inst.get("port") is None:
        err("port", "is required")
    if out["backend"] == "textgen":
        if present and inst.get("api_port") is None:
            err("api_port", "is required for textgen (the port of its OpenAI-compatible API)")
        elif out["api_port"] is not None and out["api_port"] == out["port"]:
            err("api_port", "must differ from port ({})".format(out["port"]))
    elif inst.get("api_port") is not None and out["backend"] in BACKENDS:
        err(
            "api_port",
            "only textgen has a separate API port; {} serves its API on port".format(out["backend"]),
        )
    if _as_int(out["priority"]) is None or isinstance(out["priority"], bool):
        err("priority", "must be a whole number (higher is placed first), got {!r}".format(out["priority"]))
    else:
        out["priority"] = _as_int(out["priority"])
    for key in ("ctx_size", "ready_timeout"):
        raw = out[key]
        if raw is not None:
            value = _as_int(raw)
            if not value or value < 1:
                err(key, f"must be a positive whole number, got {raw!r}")
            out[key] = value
    if out["gpus"] is not None and (
        not isinstance(out["gpus"], (list, tuple))
        or not out["gpus"]
        or any(_gpu_ref(g) is None for g in out["gpus"])
    ):
        err("gpus", "must be a list of GPU indices or PCI slots, e.g. [1] or ['0000:41:00.0']")
    if not isinstance(out["flags"], list) or not all(isinstance(f, str) for f in out["flags"]):
        err("flags", "must be a list of strings, e.g. ['--ctx-size 16384']")
        out["flags"] = []
    if not isinstance(out["env"], dict):
        err("env", "must be a mapping of environment variables")
        out["env"] = {}
    if out["env"] and out["backend"] != "ollama":
        err("env", "only applies to the ollama backend")
    key = out["api_key"]
    if key is not None and key != "":
        # Never echo the key itself: it is a secret.
        if not isinstance(key, str) or not API_KEY_RE.fullmatch(key):
            err(
                "api_key",
                "must be 1-512 printable ASCII characters without spaces (it is sent as an HTTP "
                "header and written as one line of a key file); the value is not shown",
            )
        elif out["backend"] == "llamacpp" and key.startswith("#"):
            err(
                "api_key",
                "must not start with '#': llama-server's --api-key-file reads such a line as a comment",
            )
        if out["backend"] == "ollama":
            err(
                "api_key",
                "Ollama's server has no API key check (its maintainers point to a proxy in front); "
                "remove api_key from this instance or serve the model with llamacpp or textgen",
            )
    out["ui_auth"] = _check_ui_auth(out["ui_auth"], err)
    if out["stage"] is not None and out["stage"] not in STAGES:
        err(
            "stage",
            "must be local (copy the model to the host before it starts) or none, got {!r}".format(
                out["stage"]
            ),
        )
    if out["bind"] is None:
        out["bind"] = bind
    if not isinstance(out["bind"], str) or not out["bind"] or any(c in out["bind"] for c in " #/\n"):
        err("bind", "{!r} is not an address to listen on".format(out["bind"]))
    return out, errors


def _check_ui_auth(value, err):
    """The ui_auth entries as a list (None when unset); never shows the value in errors."""
    if value is None or value == "":
        return None
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)) or not entries:
        err(
            "ui_auth",
            "must be a string 'user:password' or a list of them, from vault variables; the value is not shown",
        )
        return None
    for number, entry in enumerate(entries, 1):
        where = "" if isinstance(value, str) else f"entry {number} "
        if (
            not isinstance(entry, str)
            or not 1 <= len(entry) <= UI_AUTH_MAX
            or not UI_AUTH_RE.fullmatch(entry)
        ):
            err(
                "ui_auth",
                f"{where}must be 'user:password': one ':' between a user and a password, 1-{UI_AUTH_MAX} "
                "printable ASCII characters without spaces, commas or another ':' (text-generation-webui "
                "splits its --gradio-auth-path file at ',' and ':'); the value is not shown",
            )
            return None
    return list(entries)


def _ui_auth_rule(plan, inst, backend, user_flags, err):
    """textgen's web UI beyond loopback needs ui_auth; other backends have no such UI.

    Upstream v4.7.3: the UI and the API share --listen/--listen-host (server.py
    create_interface: server_name = listen_host or 0.0.0.0 with --listen;
    modules/api/script.py run_server: the same address), so the UI cannot stay on loopback
    while the API listens beyond it; --nowebui starts no UI at all, and --share publishes
    the UI through Gradio's tunnel. modules/shared.py do_cmd_flags_warnings() warns on
    (--listen or --share) without --gradio-auth(-path) unless --nowebui: the same rule,
    enforced here instead of logged.
    """
    if backend != "textgen":
        if inst["ui_auth"]:
            err(
                "ui_auth",
                f"only text-generation-webui (backend textgen) has a web UI to protect; {backend} has none: "
                "remove ui_auth from this instance",
            )
        return
    if "--nowebui" in user_flags:
        return
    exposed = inst["bind"] not in LOOPBACK_BINDS
    if (exposed or "--share" in user_flags) and not inst["ui_auth"]:
        where = (
            "listens on {} (beyond loopback)".format(inst["bind"]) if exposed else "is published by --share"
        )
        err(
            "ui_auth",
            f"the text-generation-webui web UI (port {inst['port']}) {where} and would take anyone "
            "without a password: set ui_auth ('user:password', or a list) from a vault variable, or bind "
            "the instance to loopback (127.0.0.1)",
        )
    if inst["ui_auth"]:
        plan["reasons"].append(
            "Web UI password (ui_auth): written to gradio-auth.txt (mode 0600) in the instance's user-data "
            "directory and passed as --gradio-auth-path; never on the command line or in the plan."
        )


def model_problem(model, path):
    """Why a model cannot be served at all (one sentence), or None."""
    if model is None:
        return f"{path} was not inspected (no model facts for it)"
    if model.get("error"):
        return "{}: {}".format(path, model["error"])
    if model.get("complete") is False:
        why = "; ".join(model.get("reasons") or []) or "parts of it are missing or truncated"
        return f"{path} is incomplete ({why}): an interrupted download must not be served"
    if model.get("is_projector") or (model.get("architecture") or "").lower() == "clip":
        return f"{path} is a vision projector (mmproj), not a model; serve the language model it belongs to"
    if model.get("format") in NOT_SERVABLE:
        return "{}: {}".format(path, NOT_SERVABLE[model["format"]])
    if model.get("servable") is False:
        why = "; ".join(model.get("reasons") or []) or "model_facts marks it not servable"
        return f"{path} cannot be served: {why}"
    return None


def _listen_flags(bind):
    if bind in ("127.0.0.1", "localhost"):
        return []
    if bind == "0.0.0.0":
        return ["--listen"]
    return ["--listen", textgen_flags.flag_text("--listen-host", [bind])]


def _host_port(bind, port):
    return f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"


def _gguf_memory(plan, model, vendor, vram, kv_mib, kv_exact, forced_layers, process_ram):
    """Fill gpu_layers, device and the estimates for a GGUF model."""
    weights = _mib(_as_int(model.get("size_bytes")) or 0)
    layers = _as_int(model.get("layers"))
    reasons = plan["reasons"]
    plan["layers"] = layers
    full = weights + kv_mib + GGUF_COMPUTE_BUFFER_MIB
    all_layers = layers + 1 if layers else ALL_LAYERS_UNKNOWN
    kv_note = "" if kv_exact else " (the KV cache is a rough guess: the model facts lack the head counts)"
    if vendor == "none":
        n = 0
    elif forced_layers is not None:
        n = min(forced_layers, all_layers)
    elif full <= vram:
        n = all_layers
    elif layers:
        per_layer = (weights + kv_mib) / float(layers)
        n = max(0, min(layers, int((vram - GGUF_COMPUTE_BUFFER_MIB) // per_layer)))
    else:
        n = 0
    plan["gpu_layers"] = n
    if n == 0:
        plan["device"] = "cpu"
        plan["estimated_vram_mib"] = 0
        plan["estimated_ram_mib"] = full + process_ram
        if vendor == "none":
            reasons.append(
                "Runs on the CPU (gpu layers 0): about {} MiB of RAM (weights {} + KV cache {} + buffer {} + "
                "process {}); generation is slower than on a GPU{}.".format(
                    plan["estimated_ram_mib"], weights, kv_mib, GGUF_COMPUTE_BUFFER_MIB, process_ram, kv_note
                )
            )
        elif forced_layers is None:
            reasons.append(
                "Runs on the CPU (gpu layers 0): the model needs about {} MiB of VRAM (weights {} + "
                "KV cache {} + buffer {}) and {} in {} MiB.".format(
                    full,
                    weights,
                    kv_mib,
                    GGUF_COMPUTE_BUFFER_MIB,
                    "not even one layer fits"
                    if layers
                    else "the layer count is unknown, so it cannot be split",
                    vram,
                )
            )
    elif layers and n < layers:
        share = n / float(layers)
        plan["device"] = "split"
        plan["estimated_vram_mib"] = int((weights + kv_mib) * share) + GGUF_COMPUTE_BUFFER_MIB
        plan["estimated_ram_mib"] = int((weights + kv_mib) * (1 - share)) + process_ram
        if forced_layers is None:
            reasons.append(
                f"Offloads {n} of {layers} layers to the GPU: all of them need about {full} MiB of VRAM "
                f"(weights {weights} + KV cache {kv_mib} + buffer {GGUF_COMPUTE_BUFFER_MIB}) and the GPU has "
                f"{vram} MiB; the other layers run on the CPU, slower{kv_note}."
            )
    else:
        plan["device"] = "gpu"
        plan["estimated_vram_mib"] = full
        plan["estimated_ram_mib"] = process_ram
        if forced_layers is None:
            reasons.append(
                "All layers on the GPU (gpu layers {}{}): about {} MiB of VRAM (weights {} + KV cache {} + "
                "buffer {}) of {} MiB{}.".format(
                    n,
                    f" = {layers} layers + output" if layers else ", layer count unknown",
                    full,
                    weights,
                    kv_mib,
                    GGUF_COMPUTE_BUFFER_MIB,
                    vram,
                    kv_note,
                )
            )
    if forced_layers is not None and vendor != "none":
        reasons.append(
            "GPU layers {} as set in flags: about {} MiB of VRAM of {} MiB.".format(
                forced_layers, plan["estimated_vram_mib"], vram
            )
        )


def _check_ram(plan, host_mem_mib, err, what="the instance"):
    need = plan["estimated_ram_mib"]
    if host_mem_mib is None:
        plan["reasons"].append(f"Host memory unknown: the RAM estimate ({need} MiB) was not checked.")
        return True
    if need > host_mem_mib:
        err(
            "model",
            f"{what} cannot fit in RAM: it needs about {need} MiB and the host has {host_mem_mib} MiB",
        )
        return False
    return True


def plan_instance(
    instance,
    model,
    gpu,
    host_mem_mib,
    host,
    bind=DEFAULT_BIND,
    model_root=None,
    ollama_models_dir=DEFAULT_OLLAMA_MODELS_DIR,
    ollama_shared=False,
    stage="none",
    stage_dir=DEFAULT_STAGE_DIR,
):
    """Plan one instance. See the module docstring for the rules and ``plan_host`` for ports.

    ``model``: the model's facts (None when it was not inspected). ``gpu``: gpu facts.
    ``host_mem_mib``: RAM in MiB or None. Returns the plan dict; ``refused`` is true when
    ``errors`` is non-empty or ``fits`` is false.

    The steps, in order: the instance's own fields (``check_instance``), the model and the
    backend that serves it (``_check_model``, ``_choose_backend``, ``_check_model_for_backend``),
    the GPU, the user's flags (``_user_flags``), the context and its KV cache
    (``_context_and_cache``), the memory fit (``_plan_gguf``, ``_plan_hf``), staging, and the
    backend's command line or environment (``_render_*``).
    """
    inst, errors = check_instance(instance, host, bind)
    if inst is None:
        plan = _new_plan(host, {})
        plan["errors"] = errors
        return plan
    plan = _new_plan(host, inst)
    plan["errors"] = errors
    err, warn = _reporters(plan, "{}/{}".format(host, inst["name"]))
    plan["bind"] = inst["bind"]
    plan["ready_timeout"] = inst["ready_timeout"]
    plan["model"] = resolve_model_path(inst["model"], model_root)
    if inst["state"] == "absent":
        return _plan_absent(plan, inst, ollama_models_dir)

    model = _check_model(plan, model, err)
    fmt = plan["model_format"]
    backend = _choose_backend(plan, inst, model, err)
    _check_model_for_backend(plan, inst, model, backend, err, warn)

    vendor, vram, gpu_reason = effective_gpu(gpu)
    vram_problem = unknown_vram(gpu)
    if vram_problem:
        err("gpu_vram_mib", vram_problem)
    elif gpu_reason:
        plan["reasons"].append(gpu_reason)

    user = _user_flags(plan, inst, backend, vendor, err, warn)
    if user["cpu"]:
        vendor, vram = "none", 0
    kv_mib, kv_exact = _context_and_cache(plan, inst, model, backend, user, err, warn)

    fits = False
    if model:
        if fmt == "gguf":
            fits = _plan_gguf(
                plan, model, backend, vendor, vram, kv_mib, kv_exact, user["layers"], host_mem_mib, err
            )
        elif fmt in HF_FORMATS and backend == "textgen":
            fits = _plan_hf(plan, inst, model, vendor, vram, kv_mib, user["flags"], host_mem_mib, err, warn)

    # The host's default stages what can be staged; an Ollama instance is refused only when it asks.
    if (inst["stage"] or (stage if backend != "ollama" else None) or "none") == "local":
        _stage_model(plan, backend, model, model_root, stage_dir, err)

    if backend == "textgen":
        _render_textgen(plan, inst, user["lines"], host)
    elif backend == "llamacpp" and plan["model"]:
        _render_llamacpp(plan, inst, user["lines"], (model.get("name_tags") or {}).get("purpose") or [])
    elif backend == "ollama":
        _render_ollama(plan, inst, gpu, vendor, ollama_models_dir, ollama_shared, err)
    plan["fits"] = bool(fits)
    plan["refused"] = bool(errors) or not plan["fits"]
    return plan


def _reporters(plan, label):
    """``err(var, msg)`` and ``warn(msg)`` for one instance's plan: an error names the
    instance (``label``, host/name) and the variable; a warning is also a reason."""

    def err(var, msg):
        plan["errors"].append(f"{label}: {var}: {msg}" if var else f"{label}: {msg}")

    def warn(msg):
        plan["warnings"].append(msg)
        plan["reasons"].append("Warning: " + msg)

    return err, warn


def _plan_absent(plan, inst, ollama_models_dir):
    """state: absent: what removal needs (and purge deletes), nothing else."""
    plan["backend"] = inst["backend"]
    if inst["backend"] == "ollama":
        # What purge deletes: the model Ollama imported for it, in its models directory.
        plan["ollama_model"] = inst["ollama_model"] or inst["name"]
        plan["env"] = {"OLLAMA_MODELS": inst["ollama_models_dir"] or ollama_models_dir}
    plan["fits"] = True
    plan["refused"] = bool(plan["errors"])
    plan["reasons"].append("State absent: the instance is stopped and removed.")
    return plan


def _check_model(plan, model, err):
    """The model's facts as found (``{}`` when not inspected); sets ``model_format``."""
    problem = model_problem(model, plan["model"])
    if problem:
        err("model", problem)
    model = model or {}
    plan["model_format"] = model.get("format")
    if plan["model"] and "#" in plan["model"]:
        err(
            "model",
            "the path {} holds '#', which CMD_FLAGS.txt and unit files cannot carry safely".format(
                plan["model"]
            ),
        )
    return model


def _choose_backend(plan, inst, model, err):
    """The instance's backend; ``auto`` picks one from the model's format."""
    fmt = plan["model_format"]
    backend = inst["backend"]
    if backend == "auto":
        if fmt == "gguf":
            backend = "llamacpp"
            plan["reasons"].append("backend auto: a GGUF model is served by the llama.cpp server (llamacpp).")
        elif fmt in HF_FORMATS:
            backend = "textgen"
            plan["reasons"].append(
                f"backend auto: a {fmt} model is served by text-generation-webui (textgen)."
            )
        elif model:
            err("backend", f"auto cannot pick a backend for format {fmt!r}")
    plan["backend"] = backend
    if backend in ("ollama", "llamacpp") and fmt and fmt != "gguf" and fmt not in NOT_SERVABLE:
        err(
            "backend",
            "{} serves GGUF files only and {} is {}; use backend textgen, or a GGUF of the model".format(
                backend, plan["model"], fmt
            ),
        )
    return backend


def _check_model_for_backend(plan, inst, model, backend, err, warn):
    """What the backend cannot load (an architecture llama-server does not know), what the
    model's name says it is for, and the remote code it needs."""
    fmt = plan["model_format"]
    arch = str(model.get("architecture") or "")
    if (
        backend == "llamacpp"
        and fmt == "gguf"
        and arch
        and arch != "clip"
        and arch not in llama_server_options.ARCHITECTURES
    ):
        # llama.cpp loads only the architectures it names (src/llama-arch.cpp); any other
        # fails with "unknown model architecture" (an image model's GGUF, for one).
        err(
            "model",
            "{} is a GGUF of architecture {!r}, which llama-server {} does not load (it is not a text "
            "model llama.cpp knows); serve it with a program made for it".format(
                plan["model"], arch, llama_server_options.LLAMA_SERVER_TAG
            ),
        )

    tags = model.get("name_tags") or {}
    purposes = [p for p in (tags.get("purpose") or []) if p in NON_CHAT_PURPOSES]
    if purposes and fmt not in NOT_SERVABLE:
        what = "/".join(purposes)
        if backend == "textgen" and not inst["allow_non_chat"]:
            err(
                "model",
                "{} is named as a {} model, not a chat model; set allow_non_chat: true on the instance "
                "if that is intended".format(plan["model"], what),
            )
        elif backend == "textgen":
            warn(f"the model is named as a {what} model; serving it for chat as allowed by allow_non_chat.")
        else:
            plan["reasons"].append(
                f"The model is named as a {what} model: clients use its matching endpoint."
            )
    if "base" in (tags.get("purpose") or []):
        warn(
            "%s is a base model (no instruction tuning): chat answers will be poor."
            % (model.get("name") or "the model")
        )

    if model.get("trust_remote_code_required") and not inst["trust_remote_code"]:
        err(
            "trust_remote_code",
            "{} ships its own Python code (config.json auto_map) and needs --trust-remote-code; read that "
            "code, then set trust_remote_code: true on the instance".format(plan["model"]),
        )


def _user_flags(plan, inst, backend, vendor, err, warn):
    """The instance's ``flags``, checked for its backend: ``{"lines"`` (as written),
    ``"flags"`` (textgen: flag -> values), ``"layers"`` (a --gpu-layers the user forces),
    ``"ctx"`` (a --ctx-size in flags), ``"cpu"`` (--cpu on a host with a GPU)``}``."""
    user = {"lines": [], "flags": {}, "layers": None, "ctx": None, "cpu": False}
    if backend == "textgen":
        parsed = textgen_flags.parse_flags(
            inst["flags"], dict(textgen_flags.OWNED_FLAGS, **TEXTGEN_UI_AUTH_FLAGS)
        )
        for msg in parsed["errors"]:
            err("flags", msg)
        for msg in parsed["warnings"]:
            warn("flags: " + msg)
        for item in parsed["flags"]:
            user["flags"][item["flag"]] = item["values"]
            user["lines"].append(item["text"])
        flags = user["flags"]
        if "--gpu-layers" in flags:
            user["layers"] = int(flags["--gpu-layers"][0])
            if user["layers"] < 0:  # -1: llama-server fits the layers itself
                user["layers"] = None
                plan["reasons"].append(
                    "--gpu-layers {} in flags: llama.cpp fits the layers itself; the estimate below "
                    "is the planner's.".format(flags["--gpu-layers"][0])
                )
        if "--cpu" in flags and vendor != "none":
            user["cpu"] = True
            plan["reasons"].append("--cpu in flags: everything runs on the CPU.")
        if "--ctx-size" in flags:
            user["ctx"] = int(flags["--ctx-size"][0])
    elif backend == "ollama" and inst["flags"]:
        err("flags", "ollama takes no command-line flags; set OLLAMA_* variables in env")
    elif backend == "llamacpp":
        user["lines"] = _llamacpp_user_flags(inst["flags"], err)
    _ui_auth_rule(plan, inst, backend, user["flags"], err)
    if user["ctx"] and inst["ctx_size"] and user["ctx"] != inst["ctx_size"]:
        err(
            "flags",
            "--ctx-size {} disagrees with ctx_size {}; set only ctx_size".format(
                user["ctx"], inst["ctx_size"]
            ),
        )
    return user


def _context_and_cache(plan, inst, model, backend, user, err, warn):
    """The context the backend allocates, its cache types and the KV cache in MiB (times
    Ollama's parallel slots); llama-server's prompt cache. Returns ``(kv_mib, kv_exact)``."""
    fmt = plan["model_format"]
    model_ctx = _as_int(model.get("context_length"))
    default_ctx = OLLAMA_DEFAULT_CTX if backend == "ollama" else DEFAULT_CTX
    ctx = inst["ctx_size"] or user["ctx"] or (min(model_ctx, default_ctx) if model_ctx else default_ctx)
    if model_ctx and ctx > model_ctx:
        warn(f"context {ctx} is longer than the model's trained context {model_ctx}.")
    plan["ctx_size"] = ctx
    type_k, type_v = _cache_types(backend, fmt, inst, user["flags"], user["lines"], err, warn, model)
    plan["cache_type_k"], plan["cache_type_v"] = type_k, type_v
    swa_cells = swa_kv_cells(backend, model, ctx, user["lines"])
    kv_mib, kv_exact = kv_cache_mib(model, ctx, type_k, type_v, swa_cells)
    if swa_cells and swa_cells < ctx:
        plan["reasons"].append(
            "Sliding-window attention: {} of the model's {} layers keep {} tokens of KV cache, not {} "
            "(window {}), as llama.cpp allocates them.".format(
                model.get("swa_layers"), model.get("layers"), swa_cells, ctx, model.get("sliding_window")
            )
        )
    slots = _ollama_parallel(inst, err) if backend == "ollama" else 1
    if slots > 1:
        # Ollama's runner gets NumCtx x OLLAMA_NUM_PARALLEL tokens of cache (llm/server.go).
        kv_mib *= slots
        plan["reasons"].append(f"OLLAMA_NUM_PARALLEL {slots}: the KV cache holds {slots} x {ctx} tokens.")
    if backend == "llamacpp" and fmt == "gguf":
        _llamacpp_cache_ram(plan, user["lines"], kv_mib, err)
    elif backend == "textgen" and fmt == "gguf":
        _textgen_cache_ram(plan, user["flags"], kv_mib, err)
    return kv_mib, kv_exact


def _stage_model(plan, backend, model, model_root, stage_dir, err):
    """stage: local. The backend loads the copy in ``stage_dir`` (same path below it as in
    the store); the role copies and verifies it before the instance starts."""
    if backend == "ollama":
        err(
            "stage",
            "Ollama copies the model into its own models directory when it imports it; give the "
            "instance a local ollama_models_dir instead of stage: local",
        )
        return
    src = plan["model"]
    root = posixpath.normpath(model_root) if model_root else None
    if not src or not root or not src.startswith(root.rstrip("/") + "/"):
        err("stage", f"only a model in the model store ({root}) can be staged; {src} is not in it")
        return
    if (
        not isinstance(stage_dir, str)
        or not posixpath.isabs(stage_dir)
        or any(c in stage_dir for c in " #\n")
    ):
        err(
            "stage",
            f"the staging directory (model_instances_stage_dir) {stage_dir!r} must be an absolute path",
        )
        return
    stage_dir = posixpath.normpath(stage_dir)
    if (stage_dir + "/").startswith(root.rstrip("/") + "/") or (root + "/").startswith(stage_dir + "/"):
        err(
            "stage",
            f"the staging directory {stage_dir} (model_instances_stage_dir) and the model store {root} "
            "must not contain each other",
        )
        return
    plan["stage"] = "local"
    plan["staged_from"] = src
    plan["model"] = posixpath.join(stage_dir, posixpath.relpath(src, root))
    plan["stage_bytes"] = _as_int((model or {}).get("size_bytes")) or 0
    plan["reasons"].append(
        f"Staged: {src} is copied to {plan['model']} on this host, checked against the store's "
        "digest, and loaded from there."
    )


def _llamacpp_cache_ram(plan, user_lines, kv_mib, err):
    """llama-server's prompt cache limit: the user's --cache-ram, else one context's KV
    cache (at most upstream's 8192 MiB); sets ``cache_ram_mib`` and ``cache_ram_flag``."""
    given = _flag_values(user_lines, ("--cache-ram", "-cram"))
    plan["cache_ram_flag"] = not given
    if given:
        value = _as_int(given[-1])
        if value is None or value < 0:
            err(
                "flags",
                f"--cache-ram {given[-1]}: give the prompt cache's limit in MiB (0 turns it off); "
                "without a limit it can take any amount of the host's RAM, which cannot be planned",
            )
            value = 0
        plan["cache_ram_mib"] = value
    else:
        plan["cache_ram_mib"] = min(LLAMA_CACHE_RAM_DEFAULT_MIB, max(1, int(math.ceil(kv_mib))))
    if plan["cache_ram_mib"]:
        plan["reasons"].append(
            "Prompt cache: up to {} MiB of RAM ({}).".format(
                plan["cache_ram_mib"],
                "--cache-ram in flags"
                if given
                else "--cache-ram, one context's KV cache; upstream's default is 8192",
            )
        )


def textgen_extra_flag_words(value):
    """textgen's --extra-flags as its llama.cpp loader hands them to llama-server (v4.7.3
    modules/llama_cpp_server.py): the literal form ("--jinja --rpc h:p") split like a shell,
    or the legacy "flag1=value1,flag2" form, where names of three characters or less get
    one dash unless they are long-only (rpc, fit, pos, ppl)."""
    text = str(value).strip()
    for quote in ('"', "'"):
        if len(text) >= 2 and text.startswith(quote) and text.endswith(quote):
            text = text[1:-1].strip()
            break
    if text.startswith("-"):
        try:
            return shlex.split(text)
        except ValueError:
            return text.split()
    words = []
    for item in text.split(","):
        flag, sep, val = item.strip().partition("=")
        flag = flag.strip()
        dash = "-" if len(flag) <= 3 and flag not in ("rpc", "fit", "pos", "ppl") else "--"
        words += [dash + flag, val.strip()] if sep else [dash + flag]
    return words


def _textgen_cache_ram(plan, user_flags, kv_mib, err):
    """textgen's llama.cpp loader starts llama-server without --cache-ram, so its prompt
    cache may take upstream's 8192 MiB of RAM. The plan caps it as for the llamacpp
    backend, one context's KV cache, through --extra-flags; a user's own --extra-flags are
    left as written, and their --cache-ram (or upstream's default) is what is counted."""
    extra = user_flags.get("--extra-flags")
    if not extra:
        plan["cache_ram_mib"] = min(LLAMA_CACHE_RAM_DEFAULT_MIB, max(1, int(math.ceil(kv_mib))))
        plan["textgen_cache_ram_flag"] = True
        plan["reasons"].append(
            "Prompt cache of textgen's llama-server: up to {} MiB of RAM (--extra-flags '--cache-ram {}', "
            "one context's KV cache; upstream's default is 8192).".format(
                plan["cache_ram_mib"], plan["cache_ram_mib"]
            )
        )
        return
    given = _flag_values([" ".join(textgen_extra_flag_words(extra[-1]))], CACHE_RAM_FLAGS)
    value = _as_int(given[-1]) if given else LLAMA_CACHE_RAM_DEFAULT_MIB
    if value is None or value < 0:
        err(
            "flags",
            f"--extra-flags: --cache-ram {given[-1]}: give the prompt cache's limit in MiB (0 turns it off); "
            "without a limit it can take any amount of the host's RAM, which cannot be planned",
        )
        value = 0
    plan["cache_ram_mib"] = value
    if value:
        plan["reasons"].append(
            "Prompt cache of textgen's llama-server: up to {} MiB of RAM ({}).".format(
                value,
                "--cache-ram in --extra-flags"
                if given
                else "upstream's default: --extra-flags has no --cache-ram to cap it",
            )
        )


def _plan_gguf(plan, model, backend, vendor, vram, kv_mib, kv_exact, forced, host_mem_mib, err):
    if backend == "textgen":
        plan["loader"] = "llama.cpp"
        plan["reasons"].insert(0, "Loader llama.cpp: the model is a GGUF file (what textgen would pick too).")
    elif backend == "llamacpp":
        plan["loader"] = "llama-server"
    else:
        plan["loader"] = "ollama"
    process_ram = LLAMA_PROCESS_RAM_MIB + (plan.get("cache_ram_mib") or 0)
    _gguf_memory(plan, model, vendor, vram, kv_mib, kv_exact, forced, process_ram)
    if backend == "ollama":
        plan["reasons"].append(
            "Ollama chooses the GPU layer split itself; the estimate above is what should fit."
        )
    if forced is not None and vendor != "none" and plan["estimated_vram_mib"] > vram:
        err(
            "flags",
            "--gpu-layers {} needs about {} MiB of VRAM and the GPU has {} MiB".format(
                forced, plan["estimated_vram_mib"], vram
            ),
        )
        return False
    return _check_ram(plan, host_mem_mib, err, plan["model"])


def _plan_hf(plan, inst, model, vendor, vram, kv_mib, user_flags, host_mem_mib, err, warn):
    fmt = model.get("format")
    path = plan["model"]
    bnb_flags = [f for f in textgen_flags.BITSANDBYTES_FLAGS if f in user_flags]
    if fmt == "exl2":
        err(
            "model",
            f"{path} is EXL2, and text-generation-webui has had no ExLlamaV2 loader since 4.0; convert it to "
            "EXL3 or GGUF, or pin a textgen older than 4.0",
        )
        return False
    if _is_exl3(model):
        plan["loader"] = "ExLlamav3"
        if vendor != "nvidia":
            err(
                "model",
                "{} is EXL3, and ExLlamaV3 only runs on NVIDIA GPUs (textgen installs it with the NVIDIA "
                "requirements only); this host {}; use a GGUF of the model".format(
                    path, "has no usable GPU" if vendor == "none" else f"has an {vendor.upper()} GPU"
                ),
            )
            return False
        plan["reasons"].insert(0, "Loader ExLlamav3: the model is EXL3 (what textgen would pick too).")
    else:
        plan["loader"] = "Transformers"
        plan["reasons"].insert(
            0,
            f"Loader Transformers: the model is {fmt} Hugging Face weights (what textgen would pick too).",
        )
        if "tokenizer" in model and not model["tokenizer"]:
            # modules/models.py load_model (v4.7.3) loads the tokenizer after the model with
            # AutoTokenizer.from_pretrained on the same directory, uncaught: without one the
            # program stops at startup (transformers 5.6: "Couldn't instantiate the backend
            # tokenizer").
            err(
                "model",
                f"{path} has no tokenizer (tokenizer.json, or tokenizer.model to convert): textgen's "
                "Transformers loader reads it from the model's directory and stops without one; "
                "download the repository's tokenizer files too",
            )
            return False
    if _is_bitsandbytes(model) and vendor != "nvidia":
        err("model", f"{path} is quantized with bitsandbytes, which textgen installs for NVIDIA only")
        return False
    if bnb_flags and vendor != "nvidia":
        err(
            "flags",
            "{} needs bitsandbytes, which textgen installs for NVIDIA only".format(", ".join(bnb_flags)),
        )
        return False

    params = _params(model)
    size = _mib(_as_int(model.get("size_bytes")) or 0)
    unquantized = fmt in UNQUANTIZED_FORMATS and not _quant_name(model).startswith(("int", "q", "nf4", "fp8"))
    plan["layers"] = _as_int(model.get("layers"))

    def weights_for(bytes_per_param):
        if unquantized and params:
            return _mib(params * bytes_per_param)
        return size

    if vendor == "none":
        if plan["loader"] != "Transformers":
            return False
        plan["extra_flags"] = [] if "--cpu" in user_flags else ["--cpu"]
        plan["device"] = "cpu"
        bytes_pp = 2 if "--bf16" in user_flags else 4
        weights = weights_for(bytes_pp)
        plan["estimated_vram_mib"] = 0
        plan["estimated_ram_mib"] = _hf_vram(weights, kv_mib) + TORCH_PROCESS_RAM_MIB - HF_OVERHEAD_MIB
        warn(
            "Transformers on the CPU (--cpu) is slow: expect seconds per token; a GGUF of the model with "
            "llama.cpp is much faster."
        )
        if not unquantized:
            warn(f"{fmt.upper()} weights usually need GPU kernels; loading them on the CPU may fail.")
        plan["reasons"].append(
            "Estimated RAM {} MiB (weights as {}, {} MiB, x1.2, plus KV cache and the process).".format(
                plan["estimated_ram_mib"], "bfloat16" if bytes_pp == 2 else "float32", weights
            )
        )
        return _check_ram(plan, host_mem_mib, err, f"{path} on the CPU")

    bytes_pp = 0.5 if "--load-in-4bit" in user_flags else 1 if "--load-in-8bit" in user_flags else 2
    weights = weights_for(bytes_pp)
    need = _hf_vram(weights, kv_mib)
    plan["device"] = "gpu"
    plan["extra_flags"] = []
    if need > vram and unquantized and not bnb_flags:
        if inst["load_in_4bit"] and vendor == "nvidia":
            weights4 = weights_for(0.5)
            need4 = _hf_vram(weights4, kv_mib)
            plan["reasons"].append(
                f"16-bit weights need about {need} MiB of VRAM and the GPU has {vram} MiB: loading in 4-bit "
                f"(--load-in-4bit, bitsandbytes) as load_in_4bit allows, about {need4} MiB."
            )
            plan["extra_flags"] = ["--load-in-4bit"]
            weights, need = weights4, need4
        else:
            hint = (
                "set load_in_4bit: true to load it in 4-bit"
                if vendor == "nvidia"
                else "4-bit loading (bitsandbytes) is NVIDIA only"
            )
            err(
                "model",
                f"{path} does not fit: 16-bit weights need about {need} MiB of VRAM "
                f"({weights} MiB x1.2 + 2048) and the GPU has {vram} MiB; {hint}, or use a quantized model "
                "(a GGUF can be split between GPU and CPU)",
            )
            plan["estimated_vram_mib"] = need
            return False
    plan["estimated_vram_mib"] = need
    plan["estimated_ram_mib"] = TORCH_PROCESS_RAM_MIB
    if need > vram:
        err(
            "model",
            "{} does not fit: about {} MiB of VRAM (weights {} MiB x1.2 + 2048, or + KV cache {}) and the "
            "GPU has {} MiB; {} cannot offload to the CPU; use a smaller or GGUF model".format(
                path, need, weights, kv_mib, vram, plan["loader"]
            ),
        )
        return False
    plan["reasons"].append(f"Fits on the GPU: about {need} MiB of VRAM of {vram} MiB.")
    if vendor == "amd" and not unquantized:
        warn(f"{fmt.upper()} kernels for AMD GPUs (ROCm) are not always available; loading may fail.")
    return _check_ram(plan, host_mem_mib, err, path)


def _render_textgen(plan, inst, user_lines, host):
    lines = []
    if plan["model"] and plan["loader"] == "Transformers":
        # Its loader opens Path(f"{model_dir}/{model}") (modules/transformers_loader.py,
        # load_model_HF): an absolute --model ends up under the model directory and is not
        # found. The directory that holds the model is --model-dir, its name --model.
        parent, name = posixpath.split(plan["model"].rstrip("/"))
        lines.append(textgen_flags.flag_text("--model-dir", [parent or "/"]))
        lines.append(textgen_flags.flag_text("--model", [name]))
    elif plan["model"]:
        lines.append(textgen_flags.flag_text("--model", [plan["model"]]))
    if plan["loader"]:
        lines.append(textgen_flags.flag_text("--loader", [plan["loader"]]))
    if inst["port"]:
        lines.append("--listen-port {}".format(inst["port"]))
    lines.append("--api")
    if inst["api_port"]:
        lines.append("--api-port {}".format(inst["api_port"]))
    lines.extend(_listen_flags(inst["bind"]))
    user_set = {line.split()[0] for line in user_lines}
    if "--ctx-size" not in user_set and plan["ctx_size"]:
        lines.append("--ctx-size {}".format(plan["ctx_size"]))
    if plan["loader"] == "llama.cpp" and "--gpu-layers" not in user_set and plan["gpu_layers"] is not None:
        lines.append("--gpu-layers {}".format(plan["gpu_layers"]))
    lines.extend(plan.pop("extra_flags", None) or [])
    if plan.pop("textgen_cache_ram_flag", False) and plan["loader"] == "llama.cpp":
        lines.append(
            textgen_flags.flag_text("--extra-flags", ["--cache-ram {}".format(plan["cache_ram_mib"])])
        )
    if inst["trust_remote_code"] and plan["model_format"] != "gguf":
        lines.append("--trust-remote-code")
    lines.extend(user_lines)
    plan["flags"] = lines
    ports = [p for p in (inst["port"], inst["api_port"]) if p]
    if plan["loader"] == "llama.cpp" and inst["api_port"]:
        ports.append(inst["api_port"] + TEXTGEN_LLAMA_SERVER_OFFSET)
    plan["ports"] = ports
    header = [
        "CMD_FLAGS.txt for text-generation-webui {}: instance {} on {}.".format(
            textgen_flags.TEXTGEN_VERSION, inst["name"], host
        ),
        "Written from the serving plan; change the inventory (model_instances), not this file.",
        "Model format {}, loader {}.".format(plan["model_format"] or "unknown", plan["loader"] or "none"),
    ]
    if any("#" in line or "\n" in line for line in lines):
        plan["cmd_flags"] = ""
    else:
        plan["cmd_flags"] = textgen_flags.render_cmd_flags(lines, header)


def _llamacpp_user_flags(entries, err):
    """Check an instance's llama-server flags against the pinned build's option list.

    llama-server stops at startup on an option it does not know ("error: invalid
    argument", common/arg.cpp), so every option is looked up in llama_server_options,
    generated from ``llama-server --help`` of the pinned build. Returns the entries as
    they are, one line each, when all are valid.
    """
    lines = []
    tag = llama_server_options.LLAMA_SERVER_TAG
    for entry in entries:
        if "#" in entry or "\n" in entry:
            err("flags", f"{entry!r} contains '#' or a newline; remove it")
            continue
        words = entry.split()
        if not words or not words[0].startswith("-"):
            err("flags", f"{entry!r} does not start with an option")
            continue
        ok, i = True, 0
        while i < len(words):
            word = words[i]
            name, _, inline = word.partition("=")
            i += 1
            if not name.startswith("-"):
                err("flags", f"{entry!r}: {word!r} is not an option and no option before it takes a value")
                ok = False
                break
            option = llama_server_options.OPTIONS.get(name)
            if option is None:
                if name in LLAMACPP_PYTHON_RENAMED:
                    msg = f"{name} is llama-cpp-python's option; llama-server {tag} takes {LLAMACPP_PYTHON_RENAMED[name]}"
                else:
                    near = difflib.get_close_matches(name, list(llama_server_options.OPTIONS), n=1)
                    msg = "{} is not an option of llama-server {}{}".format(
                        name, tag, f" (did you mean {near[0]}?)" if near else ""
                    )
                err("flags", msg)
                ok = False
                continue
            owned = [n for n in option["names"] if n in LLAMACPP_OWNED_FLAGS]
            if owned:
                err("flags", f"{name} is set by the planner from {LLAMACPP_OWNED_FLAGS[owned[0]]}")
                ok = False
            if option["value"] == "required" and not inline:
                if i >= len(words):
                    err("flags", f"{name} needs a value")
                    ok = False
                    break
                i += 1
            elif (
                option["value"] == "optional"
                and not inline
                and i < len(words)
                and not words[i].startswith("-")
            ):
                i += 1
            elif option["value"] == "none" and inline:
                err("flags", f"{name} takes no value")
                ok = False
        if ok:
            lines.append(entry)
    return lines


def _render_llamacpp(plan, inst, user_lines, purposes):
    layers = plan["gpu_layers"] if plan["gpu_layers"] is not None else 0
    # Host and port always explicit: upstream's default port may change.
    pairs = [
        ("--model", plan["model"]),
        ("--host", inst["bind"]),
        ("--port", str(inst["port"])),
        ("--ctx-size", str(plan["ctx_size"])),
        ("--n-gpu-layers", str(layers)),
        # /v1/models lists this name, the one readiness and clients look for.
        ("--alias", os.path.basename(plan["model"])),
    ]
    if plan.get("cache_ram_mib") is not None and not _flag_values(user_lines, CACHE_RAM_FLAGS):
        pairs.append(("--cache-ram", str(plan["cache_ram_mib"])))
    args = []
    for flag, value in pairs:
        args.extend([flag, value])
    # Prometheus metrics on /metrics (behind the API key when the instance has one); a
    # --metrics among the user's flags is not repeated.
    metrics = [] if any(line.split()[:1] == ["--metrics"] for line in user_lines) else ["--metrics"]
    args.extend(metrics)
    if inst.get("api_key"):
        plan["reasons"].append(
            "API key: written to a 0600 file in the instance's directory, passed as --api-key-file."
        )
    if "embedding" in purposes:
        args.append("--embedding")
        plan["reasons"].append("Embedding model: llama-server runs with --embedding (/v1/embeddings).")
    for line in user_lines:
        args.extend(line.split())
    plan["args"] = args
    plan["flags"] = (
        [f"{f} {v}" for f, v in pairs]
        + metrics
        + (["--embedding"] if "--embedding" in args else [])
        + list(user_lines)
    )
    plan["ports"] = [inst["port"]] if inst["port"] else []


def _render_ollama(plan, inst, gpu, vendor, ollama_models_dir, ollama_shared, err):
    plan["ollama_model"] = inst["ollama_model"] or inst["name"]
    env = {
        "OLLAMA_HOST": _host_port(inst["bind"], inst["port"] or 0),
        "OLLAMA_MODELS": inst["ollama_models_dir"] or ollama_models_dir,
        "OLLAMA_MAX_LOADED_MODELS": "1",
        "OLLAMA_KEEP_ALIVE": "-1",
    }
    if ollama_shared:
        env["OLLAMA_NOPRUNE"] = "1"
    # Always the planned context: without it Ollama picks one from the GPU's memory,
    # which is not what the plan counted.
    if plan.get("ctx_size"):
        env["OLLAMA_CONTEXT_LENGTH"] = str(plan["ctx_size"])
    devices = [d for d in (gpu or {}).get("devices") or [] if d.get("vendor") == vendor]
    visible = ",".join(str(i) for i in range(len(devices))) or "0"
    if vendor == "nvidia":
        env["CUDA_VISIBLE_DEVICES"] = visible
    elif vendor == "amd":
        env["ROCR_VISIBLE_DEVICES"] = visible
    else:
        env["CUDA_VISIBLE_DEVICES"] = "-1"
        env["ROCR_VISIBLE_DEVICES"] = "-1"
        env["HIP_VISIBLE_DEVICES"] = "-1"
    for key, value in sorted(inst["env"].items()):
        if key in DEVICE_ENV:
            err("env", f"{key} is set by the planner; choose the GPUs with the instance variable gpus")
        elif key in env or key in OLLAMA_OWNED_ENV:
            err("env", f"{key} is set by the planner; use the instance variables bind, port, ctx_size")
        elif not re.match(r"^[A-Z_][A-Z0-9_]*$", str(key)):
            err("env", f"{key!r} is not an environment variable name")
        else:
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    plan["env"] = env
    plan["ports"] = [inst["port"]] if inst["port"] else []


def plan_host(
    host,
    instances,
    models,
    gpu,
    host_mem_mib=None,
    used_ports=(),
    model_root=None,
    bind=DEFAULT_BIND,
    ollama_models_dir=DEFAULT_OLLAMA_MODELS_DIR,
    textgen_version=None,
    gpu_reserve_mib=0,
    host_reserve_mib=0,
    stage="none",
    stage_dir=DEFAULT_STAGE_DIR,
    stage_max_mib=0,
):
    """Plan every instance of a host and check what spans instances.

    ``stage``: the host's default for instances without ``stage``; ``stage_dir``: where
    staged models are copied; ``stage_max_mib``: the most the staged models of the host may
    take together (0: no limit), each model counted once.

    The instances are placed in order on the host's ledger (the module docstring's rules):
    ``gpu_reserve_mib`` of VRAM and ``host_reserve_mib`` of RAM are kept for others; the
    host plan's ``ledger`` says what each instance takes and what is left.

    ``textgen_version``: the host's ``textgen_webui_version``; textgen instances are
    refused when it is not the release the flag table was taken from (their flags would
    be checked against another release's parser).

    ``models``: model facts keyed by the path given to model_facts (resolved paths from
    ``model_paths``, or the instance's ``model`` as written). ``used_ports``: ports other
    services on the host hold. Returns ``{"host", "gpu", "host_mem_mib", "instances":
    [plans], "errors", "warnings", "refused"}``; host-level errors are also added to
    the plans of the instances they name.
    """
    models = models or {}
    host_errors, host_warnings = [], []
    if instances is None:
        instances = []
    if not isinstance(instances, list):
        return {
            "host": host,
            "gpu": gpu,
            "host_mem_mib": host_mem_mib,
            "instances": [],
            "errors": [f"{host}: model_instances must be a list of mappings"],
            "warnings": [],
            "refused": True,
        }
    vendor, vram, _ = effective_gpu(gpu)
    gpu_reserve = max(_as_int(gpu_reserve_mib) or 0, 0)
    host_reserve = max(_as_int(host_reserve_mib) or 0, 0)
    ledger = _Ledger(host, vendor, host_gpus(gpu), gpu_reserve, host_mem_mib, host_reserve)
    context = {
        "models": models,
        "gpu": gpu,
        "gpu_reserve": gpu_reserve,
        "ollama_dirs": _ollama_dir_counts(instances, ollama_models_dir),
        "ollama_models_dir": ollama_models_dir,
        "model_root": model_root,
        "rest": (host_mem_mib, host, bind, model_root, ollama_models_dir),
        "stage": (stage, stage_dir),
    }
    plans = _place_on_ledger(host, instances, ledger, context)
    host_errors.extend(ledger.errors)
    host_warnings.extend(ledger.warnings)
    _check_names(host, plans, host_errors)
    _check_ports(host, plans, used_ports, host_errors)
    _check_stage_room(host, plans, stage_max_mib, host_errors)
    _check_textgen_version(host, plans, textgen_version, host_errors)
    errors = _gather_errors(host, plans, host_errors)
    return {
        "host": host,
        "gpu": {
            "vendor": (gpu or {}).get("vendor", "none"),
            "total_vram_mib": (gpu or {}).get("total_vram_mib", 0),
            "source": (gpu or {}).get("source"),
            "used_vendor": vendor,
            "used_vram_mib": vram,
        },
        "host_mem_mib": host_mem_mib,
        "ledger": ledger.summary(),
        "instances": plans,
        "errors": errors,
        "warnings": host_warnings,
        "refused": bool(errors),
    }


def _ollama_dir_counts(instances, ollama_models_dir):
    """How many present Ollama instances share each models directory (OLLAMA_MODELS)."""
    counts = {}
    for inst in instances:
        if (
            isinstance(inst, dict)
            and inst.get("backend") == "ollama"
            and inst.get("state", "present") != "absent"
        ):
            key = inst.get("ollama_models_dir") or ollama_models_dir
            counts[key] = counts.get(key, 0) + 1
    return counts


def _place_on_ledger(host, instances, ledger, context):
    """Plan each instance against what the ledger has left, by priority (higher first), then
    in inventory order; returns the plans in inventory order."""
    gpu, models = context["gpu"], context["models"]
    placed_plans = {}
    for position in sorted(range(len(instances)), key=lambda n: (-_priority(instances[n]), n)):
        inst = instances[position]
        model = None
        shared = False
        if isinstance(inst, dict):
            path = resolve_model_path(inst.get("model"), context["model_root"])
            model = models.get(path) or models.get(inst.get("model"))
            key = inst.get("ollama_models_dir") or context["ollama_models_dir"]
            shared = context["ollama_dirs"].get(key, 0) > 1
        rest = (*context["rest"], shared, *context["stage"])
        wants = _ledger_wants(inst)
        pin = {"name": inst.get("name") if isinstance(inst, dict) else None, "errors": []}
        scope = ledger.resolve(pin, wants["gpus"]) if ledger.gpus else None
        if wants["gpus"] is not None and not ledger.gpus:
            pin["errors"].append(f"{host}/{pin['name']}: gpus: the host has no GPU the planner places on")
        # Alone, an instance may use the GPUs it is pinned to, else all of them (less the reserve).
        if ledger.gpus and (scope is not None or context["gpu_reserve"]):
            view = _gpu_view(gpu, ledger.scope_mib(scope if scope is not None else range(len(ledger.gpus))))
        else:
            view = gpu
        plan = plan_instance(inst, model, view, *rest)
        plan["errors"].extend(pin["errors"])
        placed = ledger.choose(plan, scope) if ledger.gpus else []
        if ledger.needs_gpu_room(plan, wants, placed):
            if wants["partial_offload"]:
                alone = plan["estimated_vram_mib"]
                plan = plan_instance(inst, model, _gpu_view(gpu, ledger.scope_free(placed)), *rest)
                plan["errors"].extend(pin["errors"])
                ledger.note_partial(plan, alone, placed)
            else:
                ledger.refuse_gpu(plan, placed)
        ledger.add(plan, wants, placed)
        placed_plans[position] = plan
    return [placed_plans[n] for n in range(len(instances))]


def _host_error(host_errors, msg, *plans):
    host_errors.append(msg)
    for plan in plans:
        plan["errors"].append(msg)


def _check_names(host, plans, host_errors):
    """Instance names are unique on a host (they name units and directories)."""
    seen = set()
    for plan in plans:
        name = plan["name"]
        if isinstance(name, str):
            if name in seen:
                msg = f"{host}/{name}: name: two instances are named {name}; names must be unique on a host"
                _host_error(host_errors, msg, plan)
            seen.add(name)


def _check_ports(host, plans, used_ports, host_errors):
    """Each port of a present instance is its alone, free on the host, and a port number."""
    owners = {}
    used = {_as_int(port) for port in used_ports or ()} - {None, 0}
    for plan in plans:
        if plan["state"] == "absent":
            continue
        for port, role in _port_roles(plan):
            if port in owners and owners[port][0] is not plan:
                other, other_role = owners[port]
                msg = "{}: port {} is used by both {}/{} ({}) and {}/{} ({})".format(
                    host, port, host, other["name"], other_role, host, plan["name"], role
                )
                _host_error(host_errors, msg, plan, other)
            elif port in owners:
                msg = "{}/{}: port {} is both its {} and its {}".format(
                    host, plan["name"], port, owners[port][1], role
                )
                _host_error(host_errors, msg, plan)
            else:
                owners[port] = (plan, role)
            if port in used:
                msg = "{}/{}: port {} ({}) is already used by another service on the host".format(
                    host, plan["name"], port, role
                )
                _host_error(host_errors, msg, plan)
            if port > 65535:
                msg = "{}/{}: port {} ({}) is outside 1-65535".format(host, plan["name"], port, role)
                _host_error(host_errors, msg, plan)


def _check_textgen_version(host, plans, textgen_version, host_errors):
    """textgen instances' flags are checked against one release's flag table: the host must
    run that release."""
    textgen_present = [p for p in plans if p["backend"] == "textgen" and p["state"] != "absent"]
    if textgen_version and textgen_present and str(textgen_version) != textgen_flags.TEXTGEN_VERSION:
        table = textgen_flags.TEXTGEN_VERSION
        msg = (
            f"{host}: textgen_webui_version is {textgen_version}, but instance flags are checked against "
            f"text-generation-webui {table}'s own flag table (plugins/module_utils/textgen_flags.py): pin "
            f"textgen_webui_version: {table}, or regenerate the table for {textgen_version} with "
            "tools/gen_textgen_flags.py"
        )
        _host_error(host_errors, msg, *textgen_present)


def _gather_errors(host, plans, host_errors):
    """Every plan's errors once, a refusal line for a plan that does not fit without an
    error, then the host's own; sets each plan's ``refused``."""
    errors = []
    for plan in plans:
        plan["refused"] = bool(plan["errors"]) or not plan["fits"]
        for msg in plan["errors"]:
            if msg not in errors:
                errors.append(msg)
        if not plan["errors"] and not plan["fits"]:
            errors.append(
                "{}/{}: refused: the model does not fit ({})".format(
                    host, plan["name"], plan["reasons"][-1] if plan["reasons"] else "no estimate"
                )
            )
    for msg in host_errors:
        if msg not in errors:
            errors.append(msg)
    return errors


def _check_stage_room(host, plans, stage_max_mib, host_errors):
    """The staged models of the host, each counted once, must fit ``stage_max_mib``."""
    limit = _as_int(stage_max_mib) or 0
    staged, users = {}, {}
    for plan in plans:
        if plan["state"] != "absent" and plan.get("staged_from"):
            staged[plan["staged_from"]] = plan.get("stage_bytes") or 0
            users.setdefault(plan["staged_from"], []).append(plan)
    total = sum(staged.values())
    if limit <= 0 or total <= limit * MIB:
        return
    parts = ", ".join(f"{path} {_mib(size)} MiB" for path, size in staged.items())
    msg = (
        f"{host}: stage: the staged models need {_mib(total)} MiB ({parts}), more than the staging "
        f"directory may hold, {limit} MiB (model_instances_stage_max_gib); raise the limit or stage fewer models"
    )
    _host_error(host_errors, msg, *(plan for group in users.values() for plan in group))


def _gpu_view(gpu, vram_mib):
    """The host's GPU as an instance may use it: ``vram_mib`` of it, or no GPU at all when
    that is 4 GiB or less (what effective_gpu would count as none anyway)."""
    if vram_mib <= MIN_GPU_VRAM_MIB:
        return {"vendor": "none", "total_vram_mib": 0, "devices": []}
    return dict(gpu or {}, total_vram_mib=int(vram_mib))


def _priority(inst):
    value = _as_int(inst.get("priority")) if isinstance(inst, dict) else None
    return value or 0


def _ledger_wants(inst):
    wants = {"partial_offload": False, "overcommit": False, "gpus": None}
    if isinstance(inst, dict):
        for key in ("partial_offload", "overcommit"):
            wants[key] = bool(_as_bool(inst.get(key)))
        pinned = inst.get("gpus")
        if isinstance(pinned, (list, tuple)) and pinned and all(_gpu_ref(g) is not None for g in pinned):
            wants["gpus"] = [_gpu_ref(g) for g in pinned]
    return wants


def _gpu_ref(value):
    """A GPU as an instance names it: its index (0, "1") or its PCI slot ("0000:01:00.0")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if re.match(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$", text.lower()):
        return text.lower()
    return None


def host_gpus(gpu):
    """The GPUs the ledger places instances on: the chosen vendor's cards in PCI order, each
    with its index (what CUDA_VISIBLE_DEVICES with CUDA_DEVICE_ORDER=PCI_BUS_ID, or
    ROCR_VISIBLE_DEVICES, count), PCI slot and VRAM. Integrated GPUs are not placed on (for
    AMD they keep their index: ROCm enumerates them). Without per-card figures (memory
    given in inventory, or a card without its driver yet) the total is shared equally."""
    vendor, vram, _ = effective_gpu(gpu)
    if vendor == "none":
        return []
    devices = [
        d for d in (gpu or {}).get("devices") or [] if isinstance(d, dict) and d.get("vendor") == vendor
    ]
    devices.sort(key=lambda d: str(d.get("pci_slot") or ""))
    out = []
    for index, dev in enumerate(devices):
        if not dev.get("integrated"):
            out.append(
                {"index": index, "slot": dev.get("pci_slot"), "vram": _as_int(dev.get("vram_mib")) or 0}
            )
    if not out:
        return [{"index": 0, "slot": None, "vram": vram}]
    if sum(g["vram"] for g in out) != vram:
        for g in out:
            g["vram"] = vram // len(out)
    return out


class _Ledger:
    """What a host's GPUs and RAM have left, instance after instance (plan_host)."""

    def __init__(self, host, vendor, gpus, gpu_reserve, host_mem_mib, host_reserve):
        self.host = host
        self.vendor = vendor
        self.gpus = gpus if vendor != "none" else []
        self.vram = sum(g["vram"] for g in self.gpus)
        self.gpu_reserve = gpu_reserve if self.gpus else 0
        self.free = [max(g["vram"] - self.gpu_reserve, 0) for g in self.gpus]
        self.host_mem_mib = _as_int(host_mem_mib)
        self.host_reserve = host_reserve
        self.ram_free_mib = None if self.host_mem_mib is None else self.host_mem_mib - host_reserve
        self.gpu_entries, self.ram_entries = [], []
        self.on_gpu = [[] for _ in self.gpus]
        self.errors, self.warnings = [], []

    @property
    def free_mib(self):
        return sum(self.free)

    @staticmethod
    def _counts(plan):
        return plan["state"] != "absent" and not plan["errors"] and plan["fits"]

    def _before(self, entries):
        return ", ".join(f"{name} ({mib} MiB)" for name, mib in entries) or "none"

    def scope_free(self, scope):
        return sum(self.free[i] for i in scope)

    def scope_mib(self, scope):
        """VRAM the GPUs of a scope offer an instance alone: theirs less the reserve."""
        return sum(max(self.gpus[i]["vram"] - self.gpu_reserve, 0) for i in scope)

    def _where(self, scope=None):
        scope = list(range(len(self.gpus))) if scope is None else scope
        left = max(self.scope_free(scope), 0)
        if len(self.gpus) <= 1:
            reserve = f", {self.gpu_reserve} MiB of it reserved (gpu_reserve_mib)" if self.gpu_reserve else ""
            return (
                f"the GPU has {self.vram} MiB{reserve}; the instances before it take "
                f"{self._before(self.gpu_entries)}; {left} MiB is left"
            )
        names = ", ".join("{} ({})".format(self.gpus[i]["index"], self.gpus[i]["slot"]) for i in scope)
        sizes = " + ".join(str(self.gpus[i]["vram"]) for i in scope)
        reserve = f", {self.gpu_reserve} MiB of each reserved (gpu_reserve_mib)" if self.gpu_reserve else ""
        before = [e for i in scope for e in self.on_gpu[i]]
        return (
            f"GPU{'s' if len(scope) > 1 else ''} {names} ha{'ve' if len(scope) > 1 else 's'} {sizes} MiB"
            f"{reserve}; the instances before it there take {self._before(before)}; {left} MiB is left"
        )

    def resolve(self, plan, pinned):
        """Indices into self.gpus of the GPUs an instance is pinned to (``gpus``: an index
        or a PCI slot each), or None; a GPU the host lacks is an error on the plan."""
        if pinned is None:
            return None
        known = ", ".join("{} = {}".format(g["index"], g["slot"] or "the GPU") for g in self.gpus)
        scope = []
        for want in pinned:
            found = [
                n
                for n, g in enumerate(self.gpus)
                if (isinstance(want, int) and g["index"] == want)
                or (isinstance(want, str) and g["slot"] == want)
            ]
            if not found:
                msg = "{}/{}: gpus: {} is not a GPU of this host the planner can place on ({})".format(
                    self.host, plan["name"], want, known or "it has none"
                )
                plan["errors"].append(msg)
                self.errors.append(msg)
            else:
                scope.extend(n for n in found if n not in scope)
        return scope

    def choose(self, plan, scope):
        """The GPUs an instance goes on: its pinned ones, else the first with room for all of
        it, else every GPU with room left (the backend splits the layers across them)."""
        if scope is not None:
            return scope
        need = plan["estimated_vram_mib"] or 0
        for n, free in enumerate(self.free):
            if free >= need:
                return [n]
        return [n for n, free in enumerate(self.free) if free > 0] or list(range(len(self.gpus)))

    def needs_gpu_room(self, plan, wants, scope):
        need = plan["estimated_vram_mib"] or 0
        return (
            bool(self.gpus and need and self._counts(plan) and need > self.scope_free(scope))
            and not (wants["overcommit"])
        )

    def refuse_gpu(self, plan, scope):
        msg = (
            f"{self.host}/{plan['name']}: gpu: it needs about {plan['estimated_vram_mib']} MiB of VRAM and "
            f"{self._where(scope)}; set partial_offload: true on it to run with what is left (fewer layers on "
            "the GPU, or the CPU), overcommit: true to plan it as if the GPU were its alone, or move it "
            "to another host"
        )
        plan["errors"].append(msg)
        self.errors.append(msg)

    def note_partial(self, plan, alone, scope):
        if plan["errors"]:
            # The backend's own refusal speaks of "the GPU"; it is what the others left.
            plan["errors"][:] = [
                e.replace(
                    f"the GPU has {self.scope_free(scope)} MiB", f"{self._where(scope)} (partial_offload)"
                )
                for e in plan["errors"]
            ]
            return
        msg = (
            f"{self.host}/{plan['name']}: it would take about {alone} MiB of VRAM alone, and "
            f"{self._where(scope)}: planned with what is left (partial_offload): {plan['device'] or 'cpu'}, "
            f"{plan['estimated_vram_mib']} MiB of VRAM"
        )
        plan["warnings"].append(msg)
        plan["reasons"].append("Warning: " + msg)
        self.warnings.append(msg)

    def _take(self, name, need, scope):
        """Take ``need`` MiB from the scope's GPUs: all from one, or split in proportion to
        what each has left (llama.cpp's default split follows each device's free memory)."""
        free = [max(self.free[i], 0) for i in scope]
        total = sum(free)
        for k, i in enumerate(scope):
            share = need if len(scope) == 1 else (need * free[k] // total if total else need // len(scope))
            self.free[i] -= share
            self.on_gpu[i].append((name, share))

    def add(self, plan, wants, scope):
        if not self._counts(plan):
            return
        need = plan["estimated_vram_mib"] or 0
        if need and self.gpus:
            if wants["overcommit"] and need > self.scope_free(scope):
                msg = (
                    f"{self.host}/{plan['name']}: planned as if the GPU were its alone (overcommit): it "
                    f"needs about {need} MiB of VRAM and {self._where(scope)}; the instances cannot all be "
                    "loaded at once"
                )
                plan["warnings"].append(msg)
                plan["reasons"].append("Warning: " + msg)
                self.warnings.append(msg)
            self.gpu_entries.append((plan["name"], need))
            self._take(plan["name"], need, scope)
            plan["gpus"] = [self.gpus[i]["index"] for i in scope]
            if len(self.gpus) > 1:
                _select_devices(plan, self.vendor, plan["gpus"])
        ram = plan["estimated_ram_mib"] or 0
        if self.ram_free_mib is not None and ram:
            if ram > self.ram_free_mib:
                reserve = f", {self.host_reserve} MiB kept for the system (host_reserve_mib)"
                msg = (
                    f"{self.host}/{plan['name']}: it needs about {ram} MiB of RAM and the host has "
                    f"{self.host_mem_mib} MiB{reserve if self.host_reserve else ''}; the instances before it "
                    f"take {self._before(self.ram_entries)}; {max(self.ram_free_mib, 0)} MiB is left"
                )
                if wants["overcommit"]:
                    plan["warnings"].append(msg + " (overcommit)")
                    self.warnings.append(msg + " (overcommit)")
                else:
                    msg += "; set overcommit: true on it to plan it anyway, or move it to another host"
                    plan["errors"].append(msg)
                    self.errors.append(msg)
            self.ram_entries.append((plan["name"], ram))
            self.ram_free_mib -= ram

    def summary(self):
        return {
            "gpu": {
                "vendor": self.vendor,
                "total_mib": self.vram,
                "reserve_mib": self.gpu_reserve,
                "instances": [{"name": n, "mib": m} for n, m in self.gpu_entries],
                "free_mib": self.free_mib,
                "gpus": [
                    {
                        "index": g["index"],
                        "slot": g["slot"],
                        "total_mib": g["vram"],
                        "instances": [{"name": n, "mib": m} for n, m in self.on_gpu[k]],
                        "free_mib": self.free[k],
                    }
                    for k, g in enumerate(self.gpus)
                ],
            },
            "ram": {
                "total_mib": self.host_mem_mib,
                "reserve_mib": self.host_reserve,
                "instances": [{"name": n, "mib": m} for n, m in self.ram_entries],
                "free_mib": self.ram_free_mib,
            },
        }


def _select_devices(plan, vendor, indices):
    """The device selection each backend reads, for an instance placed on some of a host's
    GPUs: CUDA's ordinals in PCI order (CUDA_DEVICE_ORDER=PCI_BUS_ID, as nvidia-smi numbers
    them), ROCm's ROCR_VISIBLE_DEVICES; in the unit's environment for every backend
    (llama-server and textgen's llama.cpp loader then see only those devices)."""
    env = dict(plan.get("env") or {})
    visible = ",".join(str(i) for i in indices)
    if vendor == "nvidia":
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = visible
    elif vendor == "amd":
        env["ROCR_VISIBLE_DEVICES"] = visible
    plan["env"] = env


def _port_roles(plan):
    """``[(port, role)]`` for the ports an instance holds, in ``plan["ports"]`` order."""
    roles = ["port", "api_port", f"internal llama-server port, api_port+{TEXTGEN_LLAMA_SERVER_OFFSET}"]
    if plan["backend"] != "textgen":
        roles = ["port"]
    return list(zip(plan["ports"], roles))


def plan_table(host_plans):
    """A text table of plans: host, instance, backend, loader, port, VRAM/RAM, fits, first reason."""
    if isinstance(host_plans, dict):
        host_plans = [host_plans]
    header = ("HOST", "INSTANCE", "BACKEND", "LOADER", "PORT", "VRAM MiB", "RAM MiB", "FITS", "REASON")
    rows = []
    for hp in host_plans or []:
        for p in hp.get("instances", []):
            first = (p["errors"] or p["reasons"] or [""])[0]
            port = "%s" % (p["port"] or "-")
            if p.get("api_port"):
                port += "/{}".format(p["api_port"])
            rows.append(
                (
                    p["host"],
                    p["name"] or "?",
                    p["backend"] or "-",
                    p["loader"] or "-",
                    port,
                    str(p["estimated_vram_mib"]),
                    str(p["estimated_ram_mib"]),
                    "refused" if p["refused"] else "yes",
                    first if len(first) <= 100 else first[:97] + "...",
                )
            )
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header) - 1)]
    lines = []
    for row in [header] + rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths)]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    for hp in host_plans or []:
        lines.extend(ledger_lines(hp))
    return lines


def ledger_lines(host_plan):
    """One line per ledger of a host plan: what each instance takes, the reserve, what is left."""
    ledger = (host_plan or {}).get("ledger") or {}
    lines = []
    for what, unit in (("gpu", "VRAM"), ("ram", "RAM")):
        part = ledger.get(what) or {}
        total = part.get("total_mib")
        if not total or (what == "gpu" and part.get("vendor") == "none"):
            continue
        taken = (
            ", ".join("{} {}".format(e["name"], e["mib"]) for e in part.get("instances") or []) or "nothing"
        )
        reserve = f", reserve {part['reserve_mib']}" if part.get("reserve_mib") else ""
        lines.append(
            f"{host_plan.get('host')} {unit} ledger (MiB): {total} total{reserve}; {taken}; "
            f"{part.get('free_mib')} left"
        )
        cards = part.get("gpus") or [] if what == "gpu" else []
        for card in cards if len(cards) > 1 else []:
            taken = ", ".join("{} {}".format(e["name"], e["mib"]) for e in card["instances"]) or "nothing"
            lines.append(
                f"  GPU {card['index']} ({card['slot']}): {card['total_mib']} total; {taken}; {card['free_mib']} left"
            )
    return lines
