"""Write real-format model files for tests and benchmarks.

GGUF files are written by the ``gguf`` package's GGUFWriter and safetensors
files by the ``safetensors`` package, so the inspector is tested against what
real tools produce. Tensor data is never written: files are extended to their
full size with ``truncate`` (sparse), which is what the inspector must cope
with anyway since it never reads the data.
"""

import json
import os
import struct

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFEndian, GGUFWriter

F32 = GGMLQuantizationType.F32
F16 = GGMLQuantizationType.F16
Q4_K = GGMLQuantizationType.Q4_K
Q6_K = GGMLQuantizationType.Q6_K


def tensor_nbytes(shape, qtype):
    block, type_size = GGML_QUANT_SIZES[qtype]
    elements = 1
    for dim in shape:
        elements *= dim
    return elements // block * type_size


def qwen7b_tensors(layers=28, hidden=3584, ffn=18944, vocab=152064, kv_dim=512):
    """Tensor infos shaped like Qwen2.5-7B (339 tensors for 28 layers).

    Shapes are in numpy order (rows, columns); ggml stores them reversed.
    """
    tensors = [("token_embd.weight", (vocab, hidden), Q4_K)]
    for i in range(layers):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", (hidden,), F32),
            (p + "attn_q.weight", (hidden, hidden), Q4_K),
            (p + "attn_q.bias", (hidden,), F32),
            (p + "attn_k.weight", (kv_dim, hidden), Q4_K),
            (p + "attn_k.bias", (kv_dim,), F32),
            (p + "attn_v.weight", (kv_dim, hidden), Q6_K),
            (p + "attn_v.bias", (kv_dim,), F32),
            (p + "attn_output.weight", (hidden, hidden), Q4_K),
            (p + "ffn_norm.weight", (hidden,), F32),
            (p + "ffn_gate.weight", (ffn, hidden), Q4_K),
            (p + "ffn_up.weight", (ffn, hidden), Q4_K),
            (p + "ffn_down.weight", (hidden, ffn), Q6_K),
        ]
    tensors += [("output_norm.weight", (hidden,), F32), ("output.weight", (vocab, hidden), Q6_K)]
    return tensors


def tiny_tensors(layers=2, hidden=64, vocab=256):
    tensors = [("token_embd.weight", (vocab, hidden), F16)]
    for i in range(layers):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", (hidden,), F32),
            (p + "attn_q.weight", (hidden, hidden), F16),
            (p + "ffn_up.weight", (hidden * 2, hidden), F16),
        ]
    tensors.append(("output_norm.weight", (hidden,), F32))
    return tensors


def params_of(tensors):
    total = 0
    for _name, shape, _qtype in tensors:
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


def vocab(n_tokens):
    """A tokenizer vocabulary with realistic token lengths (1..16 bytes)."""
    pieces = ["\u0120the", "ing", "\u0120a", "tion", "er", "\u010a", "\u0120qu", "abc", "\u00e9t\u00e9"]
    return [f"{pieces[i % len(pieces)]}{i}" for i in range(n_tokens)]


def merges(n_merges):
    return [f"\u0120t{i % 977} he{i}" for i in range(n_merges)]


def write_gguf(
    path,
    arch="llama",
    name=None,
    tensors=None,
    file_type=15,
    n_tokens=0,
    n_merges=0,
    context_length=4096,
    block_count=2,
    embedding_length=64,
    head_count=8,
    head_count_kv=2,
    extra=None,
    split_max_tensors=0,
    endianess=GGUFEndian.LITTLE,
    sparse=True,
    alignment=None,
):
    """Write a GGUF header with GGUFWriter and extend each file to full size.

    Returns the list of files written (several when split_max_tensors splits).
    """
    tensors = tiny_tensors() if tensors is None else tensors
    writer = GGUFWriter(str(path), arch, endianess=endianess, split_max_tensors=split_max_tensors)
    if alignment:
        writer.add_custom_alignment(alignment)
    if name:
        writer.add_name(name)
    if file_type is not None:
        writer.add_file_type(file_type)
    if context_length is not None:
        writer.add_context_length(context_length)
    if block_count is not None:
        writer.add_block_count(block_count)
    if embedding_length is not None:
        writer.add_embedding_length(embedding_length)
    if head_count is not None:
        writer.add_head_count(head_count)
    if head_count_kv is not None:
        writer.add_head_count_kv(head_count_kv)
    if n_tokens:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(vocab(n_tokens))
        writer.add_token_scores(np.zeros(n_tokens, dtype=np.float32).tolist())
        writer.add_token_types([1] * n_tokens)
    if n_merges:
        writer.add_token_merges(merges(n_merges))
    for key, (value, setter) in (extra or {}).items():
        getattr(writer, setter)(key, value)
    for tname, shape, qtype in tensors:
        writer.add_tensor_info(tname, shape, np.float32, tensor_nbytes(shape, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    files = [str(p) for p in writer.format_shard_names(writer.path)]
    for fout, shard in zip(writer.fout, writer.tensors):
        writer.write_padding(fout, fout.tell())
        data = sum(GGUFWriter.ggml_pad(ti.nbytes, writer.data_alignment) for ti in shard.values())
        end = fout.tell() + data
        fout.close()
        if sparse:
            os.truncate(fout.name, end)
    writer.fout = None
    return files


def gguf_header_size(path):
    """Where the tensor data starts, from gguf's own reader."""
    from gguf import GGUFReader

    return GGUFReader(str(path)).data_offset


def write_gguf_v2(path, **kwargs):
    """A GGUF v2 file: v2 and v3 share the layout, only the version differs."""
    files = write_gguf(path, **kwargs)
    with open(files[0], "r+b") as fh:
        fh.seek(4)
        fh.write(struct.pack("<I", 2))
    return files


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> (numpy dtype, shape). Data is zeros (small shapes only)."""
    from safetensors.numpy import save_file

    arrays = {name: np.zeros(shape, dtype=dtype) for name, (dtype, shape) in tensors.items()}
    save_file(arrays, str(path), metadata=metadata)
    return str(path)


def llama_safetensors_tensors(layers=2, hidden=32, vocab=128, ffn=64, dtype=np.float16):
    tensors = {
        "model.embed_tokens.weight": (dtype, (vocab, hidden)),
        "lm_head.weight": (dtype, (vocab, hidden)),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors[p + "self_attn.q_proj.weight"] = (dtype, (hidden, hidden))
        tensors[p + "mlp.up_proj.weight"] = (dtype, (ffn, hidden))
        tensors[p + "input_layernorm.weight"] = (dtype, (hidden,))
    tensors["model.norm.weight"] = (dtype, (hidden,))
    return tensors


def shape_params(tensors):
    total = 0
    for _dtype, shape in tensors.values():
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 32,
    "intermediate_size": 64,
    "max_position_embeddings": 8192,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "vocab_size": 128,
    "torch_dtype": "bfloat16",
}


def write_json(path, data):
    with open(str(path), "w") as fh:
        json.dump(data, fh)
    return str(path)


HF_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]


def hf_tokenizer_files(vocab_size=LLAMA_CONFIG["vocab_size"]):
    """tokenizer.json and tokenizer_config.json of a small word-level tokenizer, in the
    tokenizers library's serialization (a JSON object with its ``model``), the files
    AutoTokenizer.from_pretrained builds a tokenizer from; the real transformers 5.6.2
    loads them (tests/unit/test_standin_transformers.py)."""
    words = ["hello", "world", "the", "a", "is", "model", "lab", "tiny"]
    tokens = HF_SPECIAL_TOKENS + words
    tokens += [f"w{i}" for i in range(len(tokens), vocab_size)]
    added = [
        {
            "id": i,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, token in enumerate(HF_SPECIAL_TOKENS)
    ]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(tokens)}, "unk_token": "<unk>"},
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:",
    }
    return {"tokenizer.json": tokenizer, "tokenizer_config.json": tokenizer_config}


def write_hf_dir(directory, config=None, tensors=None, shards=1, extra_files=None, tokenizer=True):
    """A Hugging Face model directory: config.json, safetensors weights and (unless
    ``tokenizer`` is false) a tokenizer (hf_tokenizer_files)."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    if tokenizer:
        for fname, content in hf_tokenizer_files().items():
            write_json(os.path.join(directory, fname), content)
    if config is not False:
        write_json(os.path.join(directory, "config.json"), dict(LLAMA_CONFIG, **(config or {})))
    tensors = llama_safetensors_tensors() if tensors is None else tensors
    if shards <= 1:
        write_safetensors(os.path.join(directory, "model.safetensors"), tensors)
    else:
        names = sorted(tensors)
        weight_map = {}
        for i in range(shards):
            part = {n: tensors[n] for n in names[i::shards]}
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            write_safetensors(os.path.join(directory, fname), part)
            for n in part:
                weight_map[n] = fname
        write_json(
            os.path.join(directory, "model.safetensors.index.json"),
            {"metadata": {"total_size": 0}, "weight_map": weight_map},
        )
    for fname, content in (extra_files or {}).items():
        full = os.path.join(directory, fname)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if isinstance(content, (dict, list)):
            write_json(full, content)
        else:
            with open(full, "wb") as fh:
                fh.write(content)
    return directory
