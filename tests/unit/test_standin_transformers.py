"""The textgen stand-in's Transformers loader against the real library.

text-generation-webui v4.7.3 loads a Transformers model with AutoConfig, then
AutoModelForCausalLM, then AutoTokenizer on ``<model_dir>/<model>``
(modules/transformers_loader.py ``load_model_HF`` and ``load_tokenizer``), none of it caught,
with the transformers its requirements pin (requirements/full/requirements_cpu_only.txt:
transformers==5.6.*, huggingface-hub==1.5.*, safetensors==0.7.*). The stand-in
(tests/standins/textgen-webui/modules/transformers_loader.py) must accept and refuse what
that library does. Here the real transformers 5.6.2, in a venv of its own
(tests/fixtures/make_transformers_reference.sh; created on first use, under $AILAB_CACHE),
runs on the same directories. The model class needs torch, which that venv leaves out: the
weight-file rule is checked against the library's source (modeling_utils.py
``_get_resolved_checkpoint_files``) and each safetensors file against the real safetensors
library.
"""

import importlib.util
import json
import os
import subprocess

import pytest
from fixtures_models import LLAMA_CONFIG, llama_safetensors_tensors, write_hf_dir, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STANDIN = os.path.join(ROOT, "tests", "standins", "textgen-webui")


def load_standin():
    path = os.path.join(STANDIN, "modules", "transformers_loader.py")
    spec = importlib.util.spec_from_file_location("standin_transformers_loader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loader = load_standin()


@pytest.fixture(scope="module")
def reference():
    """The reference venv's python (made once per machine; the script prints its path)."""
    script = os.path.join(ROOT, "tests", "fixtures", "make_transformers_reference.sh")
    out = subprocess.run([script], check=True, capture_output=True, text=True, timeout=600)
    python = out.stdout.strip().splitlines()[-1]
    assert os.access(python, os.X_OK), out.stderr

    def run(*args):
        probe = os.path.join(ROOT, "tests", "fixtures", "transformers_reference.py")
        done = subprocess.run(
            [python, probe, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        return json.loads(done.stdout)

    return run


def test_the_model_types_the_standin_knows_are_those_of_transformers_5_6_2(reference):
    real = reference("model-types")
    with open(os.path.join(STANDIN, "transformers_model_types.json")) as fh:
        ours = json.load(fh)
    assert real["version"] == ours["version"] == "5.6.2"
    assert real["model_types"] == ours["model_types"]
    assert "llama" in ours["model_types"] and "nosuchmodel" not in ours["model_types"]


def _overwrite(name, content):
    return {name: content if isinstance(content, bytes) else json.dumps(content).encode()}


# name -> write_hf_dir arguments. Each is a directory a user could really have on the store.
CASES = {
    "lab-repository": {},
    "no-config": {"config": False},
    "config-not-json": {"extra_files": _overwrite("config.json", b"{model_type: llama")},
    "config-without-model-type": {
        "extra_files": _overwrite("config.json", {k: v for k, v in LLAMA_CONFIG.items() if k != "model_type"})
    },
    "unknown-model-type": {"config": {"model_type": "nosuchmodel"}},
    "remote-code-not-trusted": {
        "config": {"model_type": "nosuchmodel", "auto_map": {"AutoConfig": "configuration_x.XConfig"}}
    },
    "mistral-with-layer-types": {"config": {"model_type": "mistral", "layer_types": ["full_attention"] * 2}},
    "no-tokenizer": {"tokenizer": False},
    "tokenizer-not-json": {"extra_files": _overwrite("tokenizer.json", b"not json")},
    "tokenizer-without-model": {"extra_files": _overwrite("tokenizer.json", {"version": "1.0"})},
}


@pytest.fixture(scope="module")
def verdicts(reference, tmp_path_factory):
    base = tmp_path_factory.mktemp("hf")
    dirs = {name: write_hf_dir(base / name, **kwargs) for name, kwargs in CASES.items()}
    real = reference("load", *dirs.values())
    return {name: (path, real[path]) for name, path in dirs.items()}


def _standin(check, *args):
    try:
        check(*args)
        return "ok"
    except loader.LoadError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_standin_accepts_and_refuses_a_directory_as_transformers_does(verdicts, case):
    path, real = verdicts[case]
    ours = {
        "config": _standin(loader.check_config, path),
        "tokenizer": _standin(loader.check_tokenizer, path),
    }
    # textgen calls them in this order and the first exception stops it: the step that
    # stops the load (or none) must be the same.
    parts = ("config", "tokenizer")
    assert next((p for p in parts if ours[p] != "ok"), None) == next(
        (p for p in parts if not real[p].startswith("ok")), None
    ), (ours, real)
    if case == "lab-repository":
        # What make_lab_hub.py serves as ailab-lab/tiny-llama-safetensors and the lab's
        # textgen instance loads: the real library loads its config and tokenizer.
        assert real == {"config": "ok: LlamaConfig", "tokenizer": "ok: TokenizersBackend"}


def test_weights_are_found_in_the_libraries_order(tmp_path):
    """modeling_utils.py _get_resolved_checkpoint_files (5.6.2), a local directory: the
    first of model.safetensors, model.safetensors.index.json, pytorch_model.bin,
    pytorch_model.bin.index.json; none: 'Error no file named model.safetensors, or
    pytorch_model.bin, found in directory'."""
    one = write_hf_dir(tmp_path / "one")
    assert loader.check_weights(one) == ["model.safetensors"]
    sharded = write_hf_dir(tmp_path / "sharded", shards=2)
    assert loader.check_weights(sharded) == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    os.remove(os.path.join(sharded, "model-00002-of-00002.safetensors"))
    with pytest.raises(loader.LoadError, match="model-00002-of-00002.safetensors"):
        loader.check_weights(sharded)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "pytorch_model.bin").write_bytes(b"PK")
    assert loader.check_weights(str(legacy)) == ["pytorch_model.bin"]
    empty = write_hf_dir(tmp_path / "empty")
    os.remove(os.path.join(empty, "model.safetensors"))
    with pytest.raises(loader.LoadError, match="Error no file named model.safetensors, or pytorch_model.bin"):
        loader.check_weights(empty)


def test_a_cut_safetensors_file_is_refused_as_the_safetensors_library_refuses_it(reference, tmp_path):
    whole = write_safetensors(str(tmp_path / "whole.safetensors"), llama_safetensors_tensors())
    cut_data = str(tmp_path / "cut-data.safetensors")
    cut_header = str(tmp_path / "cut-header.safetensors")
    with open(whole, "rb") as fh:
        data = fh.read()
    with open(cut_data, "wb") as fh:
        fh.write(data[:-100])
    with open(cut_header, "wb") as fh:
        fh.write(data[:40])
    real = reference("safetensors", whole, cut_data, cut_header)
    assert real[whole] == "ok"
    for path in (cut_data, cut_header):
        assert real[path].startswith("error"), real[path]
        with pytest.raises(loader.LoadError, match="Error while deserializing header"):
            loader._check_safetensors(path)
    loader._check_safetensors(whole)


def test_load_model_hf_opens_model_dir_joined_with_the_model_name(tmp_path):
    write_hf_dir(tmp_path / "store" / "tiny")
    found = loader.load_model_HF(str(tmp_path / "store"), "tiny")
    assert found == {"model_type": "llama", "weights": ["model.safetensors"], "tokenizer": "tokenizer.json"}
    with pytest.raises(loader.LoadError):
        loader.load_model_HF(str(tmp_path / "store"), "absent")
