"""tests/fixtures/make_tiny_bert_gguf.py writes the BERT embedding GGUF llama.cpp loads.

The file is read back with gguf's own GGUFReader and with the project's inspector,
which must call it a servable bert model whose purpose is embedding (its architecture
is one of model_inspect.EMBEDDING_ARCHITECTURES; the file name says nothing of it).
The script takes its tokenizer from the cached llama-cpp-python sdist; without it the
tests skip rather than download it.
"""

import os
import subprocess
import sys

import pytest
from ansible.module_utils import model_inspect as mi
from gguf import GGUFReader

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "tests", "fixtures", "make_tiny_bert_gguf.py")
CACHE = os.environ.get("AILAB_CACHE", "/var/cache/ailab")
VERSION = os.environ.get("LLAMACPP_PYTHON_VERSION", "0.3.36")
SDIST = os.path.join(CACHE, "sdist", f"llama_cpp_python-{VERSION}.tar.gz")


def run_script(*args):
    return subprocess.run(
        [sys.executable, SCRIPT, "--sdist", SDIST, *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    if not os.path.isfile(SDIST):
        pytest.skip(f"{SDIST} is not cached: make_tiny_bert_gguf.py takes its vocabulary from it")
    path = str(tmp_path_factory.mktemp("bert") / "tiny-bert-F32.gguf")
    assert run_script("--output", path).strip() == path
    return path


@pytest.fixture(scope="module")
def reader(tiny_bert):
    return GGUFReader(tiny_bert)


def test_the_file_is_a_non_causal_mean_pooled_bert_with_the_wpm_vocab(reader):
    def value(key):
        return reader.fields[key].contents()

    assert value("general.architecture") == "bert"
    assert value("bert.embedding_length") == 64
    assert value("bert.block_count") == 2
    assert value("bert.attention.head_count") == 4
    assert value("bert.feed_forward_length") == 128
    assert value("bert.context_length") == 512
    assert value("bert.attention.causal") is False
    assert value("bert.pooling_type") == 1
    assert value("bert.attention.layer_norm_epsilon") == pytest.approx(1e-12)
    assert value("tokenizer.ggml.model") == "bert"
    assert value("tokenizer.ggml.token_type_count") == 2
    assert len(value("tokenizer.ggml.tokens")) == 30522

    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}  # ggml order
    assert shapes["token_embd.weight"] == [64, 30522]
    assert shapes["token_types.weight"] == [64, 2]
    assert shapes["position_embd.weight"] == [64, 512]
    assert shapes["blk.1.ffn_up.weight"] == [64, 128]
    assert shapes["blk.1.ffn_down.weight"] == [128, 64]
    assert shapes["blk.1.layer_output_norm.bias"] == [64]
    # no LM head: llama.cpp refuses tensors the bert loader does not create
    assert "output.weight" not in shapes and "output_norm.weight" not in shapes
    assert len(shapes) == 5 + 2 * 16


def test_the_inspector_calls_it_a_servable_f32_embedding_model(tiny_bert, reader):
    r = mi.inspect_path(tiny_bert)
    assert r["error"] is None and r["format"] == "gguf"
    assert r["architecture"] == "bert"
    assert r["complete"] and r["servable"]
    assert "embedding" in r["name_tags"]["purpose"]
    assert r["quantization"]["name"] == "F32"
    assert (r["layers"], r["heads"], r["embedding_length"], r["context_length"]) == (2, 4, 64, 512)
    assert r["vocab_size"] == 30522
    assert r["params"] == sum(t.n_elements for t in reader.tensors)


def test_an_existing_file_is_kept_unless_forced(tiny_bert):
    before = os.stat(tiny_bert).st_mtime_ns
    assert run_script("--output", tiny_bert).strip() == tiny_bert
    assert os.stat(tiny_bert).st_mtime_ns == before
