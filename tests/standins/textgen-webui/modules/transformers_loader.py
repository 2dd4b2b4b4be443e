"""STAND-IN for text-generation-webui's Transformers loader (v4.7.3): it checks a model
directory the way the real loader's library calls would accept or refuse it, and loads
nothing. Upstream (oobabooga/text-generation-webui at v4.7.3, commit 1dcde41d):

- modules/transformers_loader.py ``load_model_HF`` opens ``Path(f'{model_dir}/{model_name}')``
  with ``AutoConfig.from_pretrained`` then ``AutoModelForCausalLM.from_pretrained``, and
  modules/models.py ``load_model`` then calls ``load_tokenizer`` (``AutoTokenizer.from_pretrained``
  on the same directory);
- none of it is caught: server.py calls ``load_model`` at startup, so a refused directory
  stops the program with the library's exception.

The library is the one requirements/full/requirements_cpu_only.txt pins, transformers 5.6.*
(here 5.6.2). What each check below follows in it:

- config: ``configuration_utils.py`` ``_get_config_dict`` (a config.json that is not JSON:
  "is not a valid JSON file"); ``models/auto/configuration_auto.py``
  ``AutoConfig.from_pretrained``: ``auto_map.AutoConfig`` needs ``trust_remote_code``
  (``resolve_trust_remote_code``), else ``model_type`` must be in ``CONFIG_MAPPING``
  (transformers_model_types.json beside server.py, the names of that mapping), and a
  config without ``model_type`` is "Unrecognized model";
- weights: ``modeling_utils.py`` ``_get_resolved_checkpoint_files`` for a local directory
  takes the first of model.safetensors, model.safetensors.index.json, pytorch_model.bin,
  pytorch_model.bin.index.json, else "Error no file named model.safetensors, or
  pytorch_model.bin, found in directory"; an index names its shards in ``weight_map`` and
  every one must be there (``utils/hub.py`` ``get_checkpoint_shard_files``); a safetensors
  file is an 8-byte little-endian header length, that many bytes of JSON, then the data
  the header's ``data_offsets`` point into (the safetensors format; the library refuses a
  file whose header or data is cut short);
- tokenizer: ``tokenization_utils_tokenizers.py``: a ``tokenizer.json`` (the tokenizers
  library's serialization, a JSON object with a ``model``) is loaded as it is; without one a
  slow tokenizer file is converted (``tokenizer.model``: sentencepiece or tiktoken, both in
  textgen's requirements); with neither, "Couldn't instantiate the backend tokenizer".

tests/unit/test_standin_transformers.py runs the real transformers 5.6.2 on the same
directories and checks that the two agree. Not checked here: the tensors' names and shapes
against the architecture, a tokenizer.model's contents, remote code (taken as given when
``--trust-remote-code`` is set).
Standard library only.
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_TYPES_FILE = os.path.join(HERE, "..", "transformers_model_types.json")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class LoadError(Exception):
    """What the real library would raise, in words a user reads in the log."""


def model_types(path=MODEL_TYPES_FILE):
    with open(path) as fh:
        return set(json.load(fh)["model_types"])


def _json_file(path, what):
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LoadError(
            f"It looks like the {what} file at '{path}' is not a valid JSON file ({exc})."
        ) from None


def check_config(path, trust_remote_code=False, known_types=None):
    """The config's model type, as AutoConfig.from_pretrained would resolve it."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise LoadError(f"{path} does not appear to have a file named config.json.")
    config = _json_file(config_file, "config")
    if not isinstance(config, dict):
        raise LoadError(f"It looks like the config file at '{config_file}' is not a valid JSON file.")
    if "AutoConfig" in (config.get("auto_map") or {}):
        if not trust_remote_code:
            raise LoadError(
                f"The repository {path} contains custom code which must be executed to correctly load "
                "the model. Please pass the argument `trust_remote_code=True` to allow custom code to be run."
            )
        return config.get("model_type") or "remote code"
    if "model_type" not in config:
        raise LoadError(f"Unrecognized model in {path}. Should have a `model_type` key in its config.json.")
    model_type = config["model_type"]
    if model_type == "mistral" and "layer_types" in config:
        model_type = "ministral"  # AutoConfig's own heuristic
    known = model_types() if known_types is None else known_types
    if model_type not in known:
        raise LoadError(
            f"The checkpoint you are trying to load has model type `{model_type}` but Transformers "
            "does not recognize this architecture."
        )
    return model_type


def _check_safetensors(path):
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise LoadError(f"Error while deserializing header: {path} is too short")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise LoadError(f"Error while deserializing header: {path}: header too large")
        header = fh.read(length)
    try:
        tensors = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise LoadError(f"Error while deserializing header: {path}: invalid JSON in header") from None
    if not isinstance(tensors, dict):
        raise LoadError(f"Error while deserializing header: {path}: invalid header")
    data = size - 8 - length
    for name, info in tensors.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data):
            raise LoadError(f"Error while deserializing header: {path}: tensor {name} lies outside the file")


def check_weights(path):
    """The weight files AutoModelForCausalLM.from_pretrained would open, in its order."""
    for name in WEIGHT_FILES:
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        if not name.endswith(".index.json"):
            if name.endswith(".safetensors"):
                _check_safetensors(full)
            return [name]
        index = _json_file(full, "index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise LoadError(f"{full} names no shards in its weight_map")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            shard_path = os.path.join(path, shard)
            if not os.path.isfile(shard_path):
                raise LoadError(f"{path} does not appear to have a file named {shard}.")
            if shard.endswith(".safetensors"):
                _check_safetensors(shard_path)
        return shards
    raise LoadError(
        f"Error no file named model.safetensors, or pytorch_model.bin, found in directory {path}."
    )


def check_tokenizer(path):
    """The file AutoTokenizer.from_pretrained would build the tokenizer from."""
    full = os.path.join(path, "tokenizer.json")
    if os.path.isfile(full):
        data = _json_file(full, "tokenizer")
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise LoadError(f"{full} is not a tokenizers serialization (no model)")
        return "tokenizer.json"
    if os.path.isfile(os.path.join(path, "tokenizer.model")):
        return "tokenizer.model"
    raise LoadError(
        "Couldn't instantiate the backend tokenizer from one of: (1) a `tokenizers` library "
        f"serialization file, (2) a slow tokenizer instance to convert or (3) an equivalent slow "
        f"tokenizer class to instantiate and convert ({path} has no tokenizer.json or tokenizer.model)."
    )


def load_model_HF(model_dir, model_name, trust_remote_code=False, known_types=None):  # noqa: N802 (upstream's name)
    """{model_type, weights, tokenizer} of a directory the real loader would load; raises LoadError."""
    path = f"{model_dir}/{model_name}"
    model_type = check_config(path, trust_remote_code, known_types)
    weights = check_weights(path)
    tokenizer = check_tokenizer(path)
    return {"model_type": model_type, "weights": weights, "tokenizer": tokenizer}
