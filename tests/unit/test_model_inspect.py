"""Tests for plugins/module_utils/model_inspect.py against real-format files.

GGUF files come from gguf.GGUFWriter and safetensors files from the
safetensors library, written into tmp_path at test time.
"""

import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
from ansible.module_utils import model_inspect as mi
from fixtures_models import (
    F16,
    F32,
    LLAMA_CONFIG,
    Q4_K,
    llama_safetensors_tensors,
    params_of,
    qwen7b_tensors,
    shape_params,
    tiny_tensors,
    write_gguf,
    write_gguf_v2,
    write_hf_dir,
    write_json,
    write_safetensors,
)
from gguf import GGUFEndian, GGUFReader

MiB = 1024 * 1024


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def _patch(path, offset, data):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


# ---------------------------------------------------------------- realistic 7B


@pytest.fixture(scope="module")
def qwen7b(tmp_path_factory):
    """A Qwen2.5-7B-like Q4_K_M GGUF: 152k vocab, 151k merges, 339 tensors, sparse 4.9 GB."""
    path = tmp_path_factory.mktemp("q7b") / "Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf"
    write_gguf(
        path,
        arch="qwen2",
        name="Qwen2.5 Coder 7B Instruct",
        tensors=qwen7b_tensors(),
        file_type=15,
        n_tokens=152064,
        n_merges=151387,
        context_length=32768,
        block_count=28,
        embedding_length=3584,
        head_count=28,
        head_count_kv=4,
    )
    return str(path)


def test_realistic_7b_header_gives_every_contract_field(qwen7b):
    r = mi.inspect_path(qwen7b)
    assert r["error"] is None
    assert r["format"] == "gguf"
    assert r["architecture"] == "qwen2"
    assert r["name"] == "Qwen2.5 Coder 7B Instruct"
    assert r["params"] == params_of(qwen7b_tensors())
    assert r["tensor_count"] == 339
    assert r["quantization"]["name"] == "Q4_K_M"
    assert 4.5 < r["quantization"]["bits"] < 6.0
    assert r["file_type"] == 15
    assert (r["context_length"], r["layers"], r["heads"], r["kv_heads"], r["embedding_length"]) == (
        32768,
        28,
        28,
        4,
        3584,
    )
    assert r["vocab_size"] == 152064
    assert r["size_bytes"] == os.path.getsize(qwen7b)
    assert r["complete"] is True and r["servable"] is True
    assert r["trust_remote_code_required"] is False
    assert r["name_tags"] == {
        "purpose": ["code", "instruct"],
        "size_label": "7B",
        "quant_label": "Q4_K_M",
        "version": "2.5",
    }
    assert r["reasons"] == []


def test_realistic_7b_reads_only_the_header_plus_at_most_4_mib(qwen7b):
    r = mi.inspect_path(qwen7b)
    header = mi.read_gguf_header(qwen7b)["data_offset"]
    assert header > 5 * MiB  # the vocabulary and merges make a real multi-megabyte header
    assert r["bytes_read"] >= r["header_bytes"]
    assert r["bytes_read"] <= header + 4 * MiB
    assert r["bytes_read"] < os.path.getsize(qwen7b) / 500


def test_header_end_params_and_sizes_agree_with_gguf_reader(tmp_path):
    # the same 339 tensor infos with a smaller vocabulary, so GGUFReader stays quick
    path = write_gguf(tmp_path / "m.gguf", tensors=qwen7b_tensors(), n_tokens=5000, n_merges=4000)[0]
    reader = GGUFReader(path)
    header = mi.read_gguf_header(path)
    assert header["data_offset"] == reader.data_offset
    assert header["params"] == sum(int(t.n_elements) for t in reader.tensors)
    assert header["tensor_bytes"] == sum(int(t.n_bytes) for t in reader.tensors)
    assert header["metadata"]["tokenizer.ggml.merges"].count == 4000
    assert header["required_size"] == os.path.getsize(path)


# ---------------------------------------------------------------- value types and versions


ALL_TYPES = {
    "test.u8": (200, "add_uint8"),
    "test.i8": (-100, "add_int8"),
    "test.u16": (60000, "add_uint16"),
    "test.i16": (-30000, "add_int16"),
    "test.u32": (4000000000, "add_uint32"),
    "test.i32": (-2000000000, "add_int32"),
    "test.f32": (0.5, "add_float32"),
    "test.bool": (True, "add_bool"),
    "test.string": ("h\u00e9llo", "add_string"),
    "test.array_int": ([1, 2, 3], "add_array"),
    "test.array_str": (["a", "bc"], "add_array"),
    "test.array_nested": ([[1, 2], [3]], "add_array"),
    "test.u64": (2**63 + 5, "add_uint64"),
    "test.i64": (-(2**62), "add_int64"),
    "test.f64": (1.25, "add_float64"),
}


def test_every_gguf_value_type_0_to_12_is_decoded(tmp_path):
    path = write_gguf(tmp_path / "types.gguf", extra=ALL_TYPES)[0]
    metadata = mi.read_gguf_header(path)["metadata"]
    for key, (value, _setter) in ALL_TYPES.items():
        assert metadata[key] == value, key


def test_gguf_v2_header_parses_like_v3(tmp_path):
    v3 = mi.inspect_path(write_gguf(tmp_path / "a-v3.gguf", name="m")[0])
    v2 = mi.inspect_path(write_gguf_v2(tmp_path / "a-v2.gguf", name="m")[0])
    assert v2["gguf_version"] == 2 and v3["gguf_version"] == 3
    for key in ("params", "architecture", "quantization", "layers", "kv_heads", "complete"):
        assert v2[key] == v3[key]


def test_big_endian_gguf_is_read_with_swapped_byte_order(tmp_path):
    path = write_gguf(tmp_path / "be.gguf", endianess=GGUFEndian.BIG, n_tokens=100)[0]
    r = mi.inspect_path(path)
    assert r["byte_order"] == "big"
    assert r["params"] == params_of(tiny_tensors())
    assert r["vocab_size"] == 100 and r["layers"] == 2 and r["complete"]


def test_gguf_version_1_is_refused_with_a_reason(tmp_path):
    path = write_gguf(tmp_path / "old.gguf")[0]
    _patch(path, 4, struct.pack("<I", 1))
    r = mi.inspect_path(path)
    assert "version 1 is not supported" in r["error"]
    assert r["format"] == "unknown" and r["complete"] is False


@pytest.mark.parametrize(
    "file_type, name",
    [
        (0, "F32"),
        (1, "F16"),
        (7, "Q8_0"),
        (15, "Q4_K_M"),
        (18, "Q6_K"),
        (30, "IQ4_XS"),
        (32, "BF16"),
        (99, "unknown"),
    ],
)
def test_general_file_type_maps_to_its_name_and_unknown_values_to_unknown(tmp_path, file_type, name):
    r = mi.inspect_path(write_gguf(tmp_path / "m.gguf", file_type=file_type)[0])
    assert r["quantization"]["name"] == name
    assert r["file_type"] == file_type
    assert r["error"] is None


def test_missing_file_type_falls_back_to_the_dominant_tensor_type(tmp_path):
    tensors = [("a.weight", (256, 256), Q4_K), ("b.weight", (16,), F32)]
    r = mi.inspect_path(write_gguf(tmp_path / "m.gguf", file_type=None, tensors=tensors)[0])
    assert r["quantization"]["name"] == "Q4_K"
    assert r["quantization"]["bits"] == pytest.approx((144 * 256 + 64) * 8 / (256 * 256 + 16), abs=0.01)


def test_per_layer_kv_head_array_reports_the_largest(tmp_path):
    extra = {"llama.attention.head_count_kv": ([0, 4, 8, 4], "add_array")}
    r = mi.inspect_path(write_gguf(tmp_path / "m.gguf", head_count_kv=None, extra=extra)[0])
    assert r["kv_heads"] == 8


def test_missing_kv_head_key_defaults_to_the_head_count(tmp_path):
    r = mi.inspect_path(write_gguf(tmp_path / "m.gguf", head_count=12, head_count_kv=None)[0])
    assert r["kv_heads"] == 12


def test_custom_alignment_moves_the_data_offset(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", alignment=256)[0]
    header = mi.read_gguf_header(path)
    assert header["alignment"] == 256
    assert header["data_offset"] == GGUFReader(path).data_offset
    assert mi.inspect_path(path)["complete"] is True


# ---------------------------------------------------------------- split, truncated, vocab-only, clip


def _split(tmp_path):
    tensors = tiny_tensors(layers=4)
    files = write_gguf(tmp_path / "Big-7B-Q4_K_M.gguf", name="Big", tensors=tensors, split_max_tensors=5)
    return files, tensors


def test_split_set_is_inspected_as_a_whole_from_any_part(tmp_path):
    files, tensors = _split(tmp_path)
    assert len(files) == 3 and files[0].endswith("-00001-of-00003.gguf")
    for part in files:
        r = mi.inspect_path(part)
        assert r["complete"] is True, r["reasons"]
        assert r["params"] == params_of(tensors)
        assert r["size_bytes"] == sum(os.path.getsize(f) for f in files)
        assert r["split"] == {"count": 3, "found": [os.path.basename(f) for f in files], "missing": []}
        assert r["architecture"] == "llama" and r["name"] == "Big"
        assert r["path"] == part


def test_split_set_with_a_missing_part_is_incomplete_and_names_it(tmp_path):
    files, _tensors = _split(tmp_path)
    os.remove(files[1])
    r = mi.inspect_path(files[0])
    assert r["complete"] is False and r["servable"] is False
    assert r["split"]["missing"] == [os.path.basename(files[1])]
    assert any("missing split parts" in s and os.path.basename(files[1]) in s for s in r["reasons"])
    assert r["params"] is None
    assert r["size_bytes"] == os.path.getsize(files[0]) + os.path.getsize(files[2])


def test_split_set_without_its_first_part_says_the_metadata_is_missing(tmp_path):
    files, _tensors = _split(tmp_path)
    os.remove(files[0])
    r = mi.inspect_path(files[2])
    assert r["complete"] is False
    assert any("first part" in s for s in r["reasons"])


def test_truncated_gguf_is_incomplete_with_expected_and_found_sizes(tmp_path):
    path = write_gguf(tmp_path / "cut-Q4_K_M.gguf", tensors=qwen7b_tensors(layers=2))[0]
    full = os.path.getsize(path)
    os.truncate(path, full // 2)
    r = mi.inspect_path(path)
    assert r["complete"] is False and r["servable"] is False
    assert r["error"] is None and r["format"] == "gguf"
    [reason] = [s for s in r["reasons"] if s.startswith("truncated")]
    assert f"at least {full} bytes" in reason and f"found {full // 2}" in reason


def test_gguf_cut_inside_its_header_is_a_corrupt_header_error(tmp_path):
    path = write_gguf(tmp_path / "cut.gguf", n_tokens=2000)[0]
    os.truncate(path, 20000)  # inside the token list
    r = mi.inspect_path(path)
    assert r["format"] == "unknown" and r["complete"] is False
    assert "runs past the end of the file" in r["error"] and path in r["error"]


def test_vocab_only_gguf_is_not_servable(tmp_path):
    path = write_gguf(tmp_path / "ggml-vocab-llama-spm.gguf", tensors=[], n_tokens=32000, file_type=None)[0]
    r = mi.inspect_path(path)
    assert r["format"] == "vocab-only"
    assert r["servable"] is False and r["complete"] is True
    assert r["vocab_size"] == 32000 and r["params"] == 0
    assert any("vocab-only" in s for s in r["reasons"])


def test_clip_projector_is_gguf_flagged_as_projector_and_not_servable(tmp_path):
    extra = {
        "clip.vision.block_count": (24, "add_uint32"),
        "clip.vision.embedding_length": (1024, "add_uint32"),
        "clip.has_vision_encoder": (True, "add_bool"),
    }
    path = write_gguf(tmp_path / "mmproj-model-f16.gguf", arch="clip", file_type=1, extra=extra)[0]
    r = mi.inspect_path(path)
    assert r["format"] == "gguf" and r["architecture"] == "clip"
    assert r["is_projector"] is True and r["servable"] is False
    assert r["layers"] == 24 and r["embedding_length"] == 1024
    assert "vision" in r["name_tags"]["purpose"]


def test_directory_with_one_gguf_and_its_projector_inspects_the_model(tmp_path):
    write_gguf(tmp_path / "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", arch="qwen2vl")
    write_gguf(tmp_path / "mmproj-Qwen2.5-VL-7B-Instruct-f16.gguf", arch="clip", file_type=1)
    r = mi.inspect_path(str(tmp_path))
    assert r["path"] == str(tmp_path)
    assert r["architecture"] == "qwen2vl" and r["servable"] is True
    assert r["projector"].endswith("mmproj-Qwen2.5-VL-7B-Instruct-f16.gguf")
    assert r["name_tags"]["purpose"] == ["vision", "instruct"]


def test_directory_with_two_gguf_models_asks_for_a_file(tmp_path):
    write_gguf(tmp_path / "a-Q4_K_M.gguf")
    write_gguf(tmp_path / "a-Q8_0.gguf", file_type=7)
    r = mi.inspect_path(str(tmp_path))
    assert "holds 2 GGUF models" in r["error"] and "a-Q8_0.gguf" in r["error"]


def test_directory_holding_a_split_set_inspects_the_set(tmp_path):
    files, tensors = _split(tmp_path)
    r = mi.inspect_path(str(tmp_path))
    assert r["params"] == params_of(tensors) and r["split"]["count"] == 3


def test_split_part_that_cannot_be_read_is_reported_as_unreadable(tmp_path):
    files, _tensors = _split(tmp_path)
    os.remove(files[1])
    os.mkdir(files[1])  # a directory where a part should be
    r = mi.inspect_path(files[0])
    assert r["error"].startswith("cannot read")
    assert r["format"] == "unknown" and r["complete"] is False


# ---------------------------------------------------------------- corrupt GGUF headers


def _tiny(tmp_path, **kwargs):
    return write_gguf(tmp_path / "m.gguf", **kwargs)[0]


def test_bad_magic_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGML" + b"\0" * 100)
    r = mi.inspect_path(str(path))
    assert "bad magic" in r["error"] and str(path) in r["error"]
    assert r["format"] == "unknown" and r["complete"] is False and r["reasons"] == [r["error"]]


def test_legacy_ggml_file_is_refused_with_a_conversion_hint(tmp_path):
    path = tmp_path / "llama-7b.ggmlv3.q4_0.bin"
    path.write_bytes(b"tjgg" + b"\0" * 100)
    r = mi.inspect_path(str(path))
    assert "legacy GGML" in r["error"] and "convert" in r["error"]


@pytest.mark.parametrize("offset, what", [(8, "tensors"), (16, "metadata pairs")])
def test_absurd_tensor_or_kv_count_is_a_corrupt_header(tmp_path, offset, what):
    path = _tiny(tmp_path)
    _patch(path, offset, struct.pack("<Q", 2**40))
    r = mi.inspect_path(path)
    assert "absurd counts" in r["error"] and what in r["error"]


def test_tensor_count_the_file_cannot_hold_is_a_corrupt_header(tmp_path):
    path = _tiny(tmp_path)
    _patch(path, 8, struct.pack("<Q", 1000000))  # under 2**24, but 24 MB of tensor infos
    r = mi.inspect_path(path)
    assert "absurd counts (1000000 tensors" in r["error"]
    assert r["bytes_read"] <= 128 * 1024


def test_string_length_past_the_end_of_the_file_is_a_corrupt_header(tmp_path):
    path = _tiny(tmp_path)
    _patch(path, 24, struct.pack("<Q", 2**50))  # length of the first key
    r = mi.inspect_path(path)
    assert "corrupt GGUF header" in r["error"] and "past the end of the file" in r["error"]
    assert r["bytes_read"] < 200 * 1024


def test_array_count_past_the_end_of_the_file_is_a_corrupt_header(tmp_path):
    path = _tiny(tmp_path, n_tokens=100)
    data = _read(path)
    key = b"tokenizer.ggml.tokens"
    count_at = data.index(key) + len(key) + 4 + 4  # after the value type and element type
    _patch(path, count_at, struct.pack("<Q", 2**40))
    r = mi.inspect_path(path)
    assert "claims 1099511627776 strings" in r["error"]


def test_unknown_value_type_is_a_corrupt_header(tmp_path):
    path = _tiny(tmp_path)
    data = _read(path)
    key = b"general.architecture"
    _patch(path, data.index(key) + len(key), struct.pack("<I", 77))
    r = mi.inspect_path(path)
    assert "unknown value type 77" in r["error"]


def test_absurd_tensor_dimension_count_is_a_corrupt_header(tmp_path):
    path = _tiny(tmp_path)
    data = _read(path)
    name = b"token_embd.weight"
    _patch(path, data.index(name) + len(name), struct.pack("<I", 1000))
    r = mi.inspect_path(path)
    assert "claims 1000 dimensions" in r["error"]


def test_file_shorter_than_a_gguf_preamble_is_a_corrupt_header(tmp_path):
    path = tmp_path / "short.gguf"
    path.write_bytes(b"GGUF\x03\0\0\0")
    r = mi.inspect_path(str(path))
    assert "only 8 bytes long" in r["error"]


# ---------------------------------------------------------------- safetensors


def test_single_safetensors_file_counts_params_from_shapes(tmp_path):
    tensors = llama_safetensors_tensors()
    path = write_safetensors(tmp_path / "model.safetensors", tensors)
    r = mi.inspect_path(path)
    assert r["format"] == "safetensors" and r["complete"] is True
    assert r["servable"] is False and any("give its directory" in s for s in r["reasons"])
    assert r["params"] == shape_params(tensors) and r["params_source"] == "tensors"
    assert r["quantization"] == {"name": "F16", "bits": 16.0}
    assert r["size_bytes"] == os.path.getsize(path)
    assert r["header_bytes"] <= r["bytes_read"] <= r["header_bytes"] + 8  # plus the 8-byte format sniff


def test_truncated_safetensors_file_is_incomplete(tmp_path):
    path = write_safetensors(tmp_path / "model.safetensors", llama_safetensors_tensors())
    size = os.path.getsize(path)
    os.truncate(path, size - 100)
    r = mi.inspect_path(path)
    assert r["complete"] is False
    assert any(s.startswith("truncated") and str(size) in s for s in r["reasons"])


@pytest.mark.parametrize(
    "content, message",
    [
        (struct.pack("<Q", 2**60) + b"{}", "absurd header length"),
        (struct.pack("<Q", 5000) + b"{}", "runs past the end of the file"),
        (struct.pack("<Q", 4) + b"{no}", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (struct.pack("<Q", 14) + b'{"x": {"a":1}}', "bad entry for tensor x"),
        (b"\x01\x02", "shorter than its 8-byte header length"),
    ],
)
def test_corrupt_safetensors_header_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    r = mi.inspect_path(str(path))
    assert message in r["error"] and str(path) in r["error"]
    assert r["format"] == "unknown" and r["complete"] is False


def test_safetensors_without_extension_is_recognised_by_content(tmp_path):
    path = write_safetensors(tmp_path / "weights.safetensors", llama_safetensors_tensors())
    os.rename(path, str(tmp_path / "weights"))
    assert mi.inspect_path(str(tmp_path / "weights"))["format"] == "safetensors"


def test_fp8_safetensors_file_reports_fp8(tmp_path):
    path = tmp_path / "model.safetensors"
    header = b'{"w": {"dtype": "F8_E4M3", "shape": [4, 4], "data_offsets": [0, 16]}}'
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    r = mi.inspect_path(str(path))
    assert r["format"] == "fp8" and r["quantization"] == {"name": "FP8", "bits": 8.0}


# ---------------------------------------------------------------- Hugging Face directories


def test_hf_directory_reads_config_and_safetensors(tmp_path):
    d = write_hf_dir(tmp_path / "Meta-Llama-3.1-8B-Instruct")
    r = mi.inspect_path(d)
    assert r["format"] == "safetensors" and r["complete"] is True and r["servable"] is True
    assert r["architecture"] == "LlamaForCausalLM" and r["model_type"] == "llama"
    assert (r["context_length"], r["layers"], r["heads"], r["kv_heads"], r["embedding_length"]) == (
        8192,
        2,
        4,
        2,
        32,
    )
    assert r["params"] == shape_params(llama_safetensors_tensors())
    assert r["quantization"] == {"name": "BF16", "bits": 16.0}
    assert r["trust_remote_code_required"] is False
    assert r["name_tags"]["version"] == "3.1" and r["name_tags"]["size_label"] == "8B"


@pytest.mark.parametrize(
    "files, expected",
    [
        ("default", "tokenizer.json"),
        ({"tokenizer.model": b"\n\x0e"}, "tokenizer.model"),
        ({}, None),
    ],
)
def test_hf_directory_names_the_file_its_tokenizer_comes_from(tmp_path, files, expected):
    """transformers 5.6 (what textgen v4.7.3 pins) builds the tokenizer from tokenizer.json,
    else converts a slow tokenizer.model (tokenization_utils_tokenizers.py); GGUF: null."""
    d = write_hf_dir(
        tmp_path / "m", tokenizer=files == "default", extra_files=None if files == "default" else files
    )
    assert mi.inspect_path(d)["tokenizer"] == expected


def test_sharded_safetensors_through_the_index_sum_size_and_params(tmp_path):
    d = write_hf_dir(tmp_path / "m", shards=3)
    r = mi.inspect_path(d)
    shards = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    assert len(shards) == 3 and r["complete"] is True
    assert r["params"] == shape_params(llama_safetensors_tensors())
    assert r["size_bytes"] == sum(os.path.getsize(os.path.join(d, f)) for f in shards)


def test_sharded_safetensors_with_a_missing_shard_is_incomplete(tmp_path):
    d = write_hf_dir(tmp_path / "m", shards=3)
    os.remove(os.path.join(d, "model-00002-of-00003.safetensors"))
    r = mi.inspect_path(d)
    assert r["complete"] is False and r["servable"] is False
    assert any("model-00002-of-00003.safetensors" in s for s in r["reasons"])
    assert r["params"] is None


def test_shard_gap_is_found_even_without_an_index(tmp_path):
    d = write_hf_dir(tmp_path / "m", shards=3)
    os.remove(os.path.join(d, "model.safetensors.index.json"))
    os.remove(os.path.join(d, "model-00003-of-00003.safetensors"))
    r = mi.inspect_path(d)
    assert r["complete"] is False
    assert any("model-00003-of-00003.safetensors" in s for s in r["reasons"])


def _quant(method, **extra):
    return {"quantization_config": dict({"quant_method": method}, **extra)}


@pytest.mark.parametrize(
    "config, fmt, qname, bits",
    [
        (_quant("exl3", bits=4.0), "exl3", "exl3", 4.0),
        (_quant("exl2", bits=4.65), "exl2", "exl2", 4.65),
        (_quant("gptq", bits=4, group_size=128), "gptq", "gptq", 4.0),
        (_quant("awq", bits=4, version="gemm"), "awq", "awq", 4.0),
        (_quant("bitsandbytes", load_in_4bit=True), "bitsandbytes", "bnb-4bit", 4.0),
        (_quant("bitsandbytes", load_in_8bit=True), "bitsandbytes", "bnb-8bit", 8.0),
        (_quant("fp8", activation_scheme="dynamic"), "fp8", "fp8", 8.0),
        (
            _quant("compressed-tensors", config_groups={"group_0": {"weights": {"num_bits": 4}}}),
            "compressed-tensors",
            "compressed-tensors",
            4.0,
        ),
        ({"text_config": _quant("gptq", bits=8)}, "gptq", "gptq", 8.0),
        ({"text_config": _quant("EXL3", bits=3.0)}, "exl3", "exl3", 3.0),
    ],
)
def test_quantization_config_sets_format_and_bits(tmp_path, config, fmt, qname, bits):
    r = mi.inspect_path(write_hf_dir(tmp_path / "m", config=config))
    assert r["format"] == fmt
    assert r["quantization"] == {"name": qname, "bits": bits}
    assert r["complete"] is True


def test_exl3_params_come_from_the_config_not_packed_shapes(tmp_path):
    r = mi.inspect_path(write_hf_dir(tmp_path / "m", config=_quant("exl3", bits=4.0)))
    assert r["params_source"] == "config"
    assert r["params"] == mi.estimate_params_from_config(LLAMA_CONFIG)


def test_gptq_packed_int32_weights_are_unpacked_and_scales_skipped(tmp_path):
    hidden = 64
    tensors = {
        "layer.q_proj.qweight": (np.int32, (hidden // 8, hidden)),
        "layer.q_proj.qzeros": (np.int32, (1, hidden // 8)),
        "layer.q_proj.scales": (np.float16, (1, hidden)),
        "layer.q_proj.g_idx": (np.int32, (hidden,)),
        "embed.weight": (np.float16, (100, hidden)),
    }
    r = mi.inspect_path(write_hf_dir(tmp_path / "m", config=_quant("gptq", bits=4), tensors=tensors))
    assert r["params"] == hidden * hidden + 100 * hidden
    assert r["params_source"] == "tensors"


def test_bnb_4bit_packed_bytes_count_two_params_each(tmp_path):
    tensors = {
        "l.weight": (np.uint8, (2048, 1)),
        "l.weight.absmax": (np.float32, (64,)),
        "l.weight.quant_map": (np.float32, (16,)),
        "norm.weight": (np.float16, (64,)),
    }
    config = _quant("bitsandbytes", load_in_4bit=True)
    r = mi.inspect_path(write_hf_dir(tmp_path / "m", config=config, tensors=tensors))
    assert r["params"] == 4096 + 64


def test_auto_map_requires_trust_remote_code(tmp_path):
    config = {"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}
    r = mi.inspect_path(write_hf_dir(tmp_path / "m", config=config))
    assert r["trust_remote_code_required"] is True
    assert any("--trust-remote-code" in s for s in r["reasons"])


def test_no_auto_map_means_no_remote_code(tmp_path):
    assert mi.inspect_path(write_hf_dir(tmp_path / "m"))["trust_remote_code_required"] is False


def test_exl2_without_quant_config_is_recognised_by_the_directory_name(tmp_path):
    r = mi.inspect_path(write_hf_dir(tmp_path / "Llama-3-8B-exl2-4.0bpw"))
    assert r["format"] == "exl2" and r["name_tags"]["quant_label"] == "EXL2"
    assert any("directory name" in s for s in r["reasons"])


def test_text_config_supplies_shape_fields_for_multimodal_configs(tmp_path):
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {
            "max_position_embeddings": 131072,
            "num_hidden_layers": 34,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "hidden_size": 2560,
        },
    }
    d = write_hf_dir(tmp_path / "gemma-3-4b-it", config=False)
    write_json(os.path.join(d, "config.json"), config)
    r = mi.inspect_path(d)
    assert (r["context_length"], r["layers"], r["kv_heads"], r["embedding_length"]) == (131072, 34, 4, 2560)


def test_sentence_transformers_directory_is_an_embedding_model(tmp_path):
    config = {"architectures": ["BertModel"], "model_type": "bert", "max_position_embeddings": 512}
    extra = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
        ],
        "sentence_bert_config.json": {"max_seq_length": 256},
        "1_Pooling/config.json": {"word_embedding_dimension": 384},
    }
    r = mi.inspect_path(write_hf_dir(tmp_path / "all-MiniLM-L6-v2", config=config, extra_files=extra))
    assert r["format"] == "sentence-transformers"
    assert r["servable"] is False and r["complete"] is True
    assert "embedding" in r["name_tags"]["purpose"] and r["name_tags"]["version"] == "v2"


def test_diffusers_pipeline_sums_weights_in_its_component_dirs(tmp_path):
    d = tmp_path / "stable-diffusion-xl-base-1.0"
    d.mkdir()
    write_json(d / "model_index.json", {"_class_name": "StableDiffusionXLPipeline"})
    for sub in ("unet", "vae"):
        (d / sub).mkdir()
        write_safetensors(d / sub / "diffusion_pytorch_model.safetensors", llama_safetensors_tensors())
    r = mi.inspect_path(str(d))
    assert r["format"] == "diffusers" and r["servable"] is False
    assert r["architecture"] == "StableDiffusionXLPipeline"
    assert r["size_bytes"] == sum(os.path.getsize(f) for f in r["files"]) and len(r["files"]) == 2


def test_pytorch_bin_directory_uses_config_estimate_for_params(tmp_path):
    d = tmp_path / "gpt-model"
    d.mkdir()
    write_json(d / "config.json", LLAMA_CONFIG)
    with zipfile.ZipFile(str(d / "pytorch_model.bin"), "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    r = mi.inspect_path(str(d))
    assert r["format"] == "pytorch" and r["complete"] is True
    assert r["params_source"] == "config" and r["params"] > 0
    assert r["size_bytes"] == os.path.getsize(str(d / "pytorch_model.bin"))


def test_single_pt_file_from_an_old_pickle_checkpoint_is_pytorch(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"w": [0.0] * 10}, protocol=2))
    r = mi.inspect_path(str(path))
    assert r["format"] == "pytorch" and r["size_bytes"] == path.stat().st_size and r["complete"]
    assert r["servable"] is False and any("give its directory" in s for s in r["reasons"])


def test_bin_file_that_is_not_a_checkpoint_is_an_error(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"hello world, not a model")
    r = mi.inspect_path(str(path))
    assert "not a PyTorch checkpoint" in r["error"]


def test_estimate_from_a_llama2_7b_config_is_within_one_percent():
    config = {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
    }
    assert mi.estimate_params_from_config(config) == pytest.approx(6738415616, rel=0.01)


def test_config_without_weights_is_an_error(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    write_json(d / "config.json", LLAMA_CONFIG)
    r = mi.inspect_path(str(d))
    assert "holds no weight files" in r["error"]


def test_config_json_that_is_not_json_is_an_error(tmp_path):
    d = write_hf_dir(tmp_path / "m")
    with open(os.path.join(d, "config.json"), "w") as fh:
        fh.write("{not json")
    r = mi.inspect_path(d)
    assert "config.json is not valid JSON" in r["error"]


# ---------------------------------------------------------------- path errors


def test_missing_path_is_an_error_naming_the_path(tmp_path):
    path = str(tmp_path / "nope.gguf")
    r = mi.inspect_path(path)
    assert r["error"] == f"{path} does not exist"
    assert r["format"] == "unknown" and r["complete"] is False and r["servable"] is False
    assert r["bytes_read"] == 0


def test_broken_symlink_is_an_error(tmp_path):
    link = tmp_path / "m.gguf"
    link.symlink_to(tmp_path / "gone.gguf")
    assert "broken symbolic link" in mi.inspect_path(str(link))["error"]


def test_empty_directory_holds_no_model(tmp_path):
    assert "holds no model" in mi.inspect_path(str(tmp_path))["error"]


def test_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# a model card\n")
    r = mi.inspect_path(str(path))
    assert "is not a model file" in r["error"] and str(path) in r["error"]


def test_json_file_is_not_a_model_and_points_at_the_directory(tmp_path):
    path = write_json(tmp_path / "config.json", LLAMA_CONFIG)
    assert "give the model directory" in mi.inspect_path(path)["error"]


def test_unreadable_file_is_an_error_naming_the_path(tmp_path, monkeypatch):
    path = _tiny(tmp_path)

    def refuse(p):
        raise PermissionError(13, "Permission denied", p)

    monkeypatch.setattr(mi, "_open", refuse)
    r = mi.inspect_path(path)
    assert r["error"] == f"cannot read {path}: Permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission_is_an_error(tmp_path):
    path = _tiny(tmp_path)
    os.chmod(path, 0)
    try:
        assert "Permission denied" in mi.inspect_path(path)["error"]
    finally:
        os.chmod(path, 0o644)


def test_unexpected_failure_in_a_parser_becomes_an_error_not_a_crash(tmp_path, monkeypatch):
    path = _tiny(tmp_path)

    def boom(*args):
        raise ValueError("boom")

    monkeypatch.setattr(mi, "inspect_gguf", boom)
    r = mi.inspect_path(path)
    assert r["error"] == f"could not inspect {path}: ValueError: boom"


def test_one_bad_path_does_not_spoil_the_others(tmp_path):
    good = _tiny(tmp_path)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"nope" * 10)
    missing = str(tmp_path / "missing")
    results = mi.inspect_paths([good, str(bad), missing])
    assert list(results) == [good, str(bad), missing]
    assert results[good]["complete"] is True and results[good]["error"] is None
    assert "bad magic" in results[str(bad)]["error"]
    assert "does not exist" in results[missing]["error"]


def test_result_always_has_the_same_fields(tmp_path):
    ok = mi.inspect_path(_tiny(tmp_path))
    err = mi.inspect_path(str(tmp_path / "missing"))
    assert set(ok) == set(err)
    assert {
        "path",
        "name",
        "format",
        "architecture",
        "params",
        "quantization",
        "context_length",
        "layers",
        "kv_heads",
        "heads",
        "embedding_length",
        "size_bytes",
        "complete",
        "reasons",
        "error",
        "trust_remote_code_required",
        "name_tags",
        "bytes_read",
        "file_type",
        "split",
        "servable",
        "is_projector",
    } <= set(ok)


def test_sparse_multi_gigabyte_file_reads_a_tiny_fraction(tmp_path):
    path = _tiny(tmp_path, tensors=[("w", (1 << 16, 1 << 16), F16)])
    size = os.path.getsize(path)
    assert size > 8 * 1024**3
    r = mi.inspect_path(path)
    assert r["complete"] is True and r["bytes_read"] <= 128 * 1024


# ---------------------------------------------------------------- name tags

NAME_TAGS = [
    ("Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf", ["code", "instruct"], "7B", "Q4_K_M", "2.5"),
    ("Meta-Llama-3.1-8B-Instruct", ["instruct"], "8B", None, "3.1"),
    ("all-MiniLM-L6-v2", ["embedding"], None, None, "v2"),
    ("Mistral-7B-Instruct-v0.3", ["instruct"], "7B", None, "v0.3"),
    ("mistral-7b-instruct-v0.2.Q4_K_M.gguf", ["instruct"], "7B", "Q4_K_M", "v0.2"),
    ("Mixtral-8x7B-Instruct-v0.1", ["instruct"], "8x7B", None, "v0.1"),
    ("Qwen2.5-0.5B-Instruct", ["instruct"], "0.5B", None, "2.5"),
    ("Qwen2.5-VL-7B-Instruct", ["vision", "instruct"], "7B", None, "2.5"),
    ("Qwen2.5-Omni-7B", ["omni"], "7B", None, "2.5"),
    ("gemma-3-270m-it", ["instruct"], "270M", None, "3"),
    ("gemma-2-9b-it-Q8_0.gguf", ["instruct"], "9B", "Q8_0", "2"),
    ("Phi-3-mini-4k-instruct", ["instruct"], "mini", None, "3"),
    ("Phi-3.5-mini-instruct", ["instruct"], "mini", None, "3.5"),
    ("Llama-Guard-3-8B", ["guard"], "8B", None, "3"),
    ("Llama-4-Scout-17B-16E-Instruct", ["scout", "instruct"], "17B-16E", None, "4"),
    ("Qwen3-30B-A3B-Instruct-2507", ["instruct"], "30B-A3B", None, "3"),
    ("Qwen2.5-7B-Instruct-GPTQ-Int4", ["instruct"], "7B", "GPTQ", "2.5"),
    ("Qwen2.5-7B-Instruct-AWQ", ["instruct"], "7B", "AWQ", "2.5"),
    ("Llama-3.1-8B-Instruct-exl2-4.0bpw", ["instruct"], "8B", "EXL2", "3.1"),
    ("Llama-3.1-8B-Instruct-exl3", ["instruct"], "8B", "EXL3", "3.1"),
    ("Meta-Llama-3.1-8B-Instruct-bnb-4bit", ["instruct"], "8B", "bnb-4bit", "3.1"),
    ("Meta-Llama-3.1-70B-Instruct-FP8", ["instruct"], "70B", "fp8", "3.1"),
    ("Llama-3.2-1B-Instruct-int4", ["instruct"], "1B", "int4", "3.2"),
    ("paraphrase-multilingual-MiniLM-L12-v2", ["paraphrase", "multilingual", "embedding"], None, None, "v2"),
    ("bert-base-NER", ["ner"], "base", None, None),
    ("whisper-large-v3", ["stt"], "large", None, "v3"),
    ("nomic-embed-text-v1.5.f16.gguf", ["embedding"], None, "F16", "v1.5"),
    ("deepseek-coder-6.7b-instruct", ["code", "instruct"], "6.7B", None, None),
    ("Qwen3-8B-Base", ["base"], "8B", None, "3"),
    ("Llama-3.2-3B-Instruct-IQ4_XS.gguf", ["instruct"], "3B", "IQ4_XS", "3.2"),
    ("OuteTTS-0.3-500M", ["tts"], "500M", None, "0.3"),
    ("llama-2-7b-chat.Q5_K_S.gguf", ["chat"], "7B", "Q5_K_S", "2"),
    ("starcoder2-15b", ["code"], "15B", None, "2"),
    ("Qwen2.5-Coder-32B-Instruct-Q4_K_M-00001-of-00003.gguf", ["code", "instruct"], "32B", "Q4_K_M", "2.5"),
    ("gpt-oss-20b-MXFP4.gguf", [], "20B", "MXFP4", None),
    ("TinyLlama-1.1B-Chat-v1.0", ["chat"], "1.1B", None, "v1.0"),
    ("codellama-7b-instruct.Q4_0.gguf", ["code", "instruct"], "7B", "Q4_0", None),
    ("/media/data/models/Qwen2.5-7B-Instruct", ["instruct"], "7B", None, "2.5"),
]


@pytest.mark.parametrize("name, purpose, size, quant, version", NAME_TAGS)
def test_name_tags_follow_hub_naming_conventions(name, purpose, size, quant, version):
    assert mi.name_tags(name) == {
        "purpose": purpose,
        "size_label": size,
        "quant_label": quant,
        "version": version,
    }


def test_name_tags_of_an_empty_name_are_empty():
    assert mi.name_tags("") == {"purpose": [], "size_label": None, "quant_label": None, "version": None}


def test_gguf_size_label_key_fills_a_size_the_file_name_lacks(tmp_path):
    extra = {"general.size_label": ("8x7B", "add_string")}
    r = mi.inspect_path(write_gguf(tmp_path / "mystery-Q4_K_M.gguf", extra=extra)[0])
    assert r["name_tags"]["size_label"] == "8x7B"


def test_embedding_architecture_tags_a_gguf_as_embedding(tmp_path):
    r = mi.inspect_path(write_gguf(tmp_path / "model-f16.gguf", arch="nomic-bert", file_type=1)[0])
    assert "embedding" in r["name_tags"]["purpose"]


def test_key_and_value_head_sizes_come_from_the_gguf_when_it_has_them(tmp_path):
    """Gemma-style: 16 heads over 3072 give 192, but the file says 256 (llama.cpp reads
    <arch>.attention.key_length / value_length over n_embd / n_head, src/llama-model.cpp)."""
    extra = {
        "gemma3.attention.key_length": (256, "add_uint32"),
        "gemma3.attention.value_length": (256, "add_uint32"),
    }
    path = write_gguf(tmp_path / "g.gguf", arch="gemma3", embedding_length=3072, head_count=16, extra=extra)[
        0
    ]
    r = mi.inspect_path(path)
    assert (r["key_length"], r["value_length"]) == (256, 256)
    plain = mi.inspect_path(write_gguf(tmp_path / "p.gguf")[0])
    assert (plain["key_length"], plain["value_length"]) == (None, None)


def test_hf_head_dim_is_the_key_and_value_head_size(tmp_path):
    r = mi.inspect_path(write_hf_dir(tmp_path / "q", config={"head_dim": 128}))
    assert (r["key_length"], r["value_length"]) == (128, 128)
