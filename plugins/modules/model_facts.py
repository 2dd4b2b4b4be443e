#!/usr/bin/python
"""Ansible module: read model files' headers and report what they hold."""

DOCUMENTATION = r"""
---
module: model_facts
short_description: Inspect model files (GGUF, safetensors, Hugging Face directories) by their headers
description:
  - Reads only the headers of model files on the target host and reports, per path, the model
    format, architecture, parameter count, quantization, context length, layer and head counts,
    size, whether the files are complete, and tags derived from the model name.
  - Understands GGUF files (v2 and v3, split sets C(-00001-of-0000N.gguf), vision projectors,
    vocab-only files), safetensors files (single or sharded through C(model.safetensors.index.json)),
    Hugging Face model directories (C(config.json) with C(quantization_config) for EXL3, EXL2, GPTQ,
    AWQ, bitsandbytes, FP8 and compressed-tensors), PyTorch C(.bin)/C(.pt) checkpoints, diffusers
    pipelines and sentence-transformers directories.
  - Tensor data is never read; C(bytes_read) in each result says how much was read.
  - A problem with one path (missing, unreadable, not a model, corrupt header) is reported in that
    path's result as C(error) and never fails the task or the other paths.
  - Needs nothing but the Python standard library on the target host.
version_added: "1.0.0"
author:
  - Lab toolkit maintainers
options:
  path:
    description:
      - One model path, a file or a directory. The result is returned as C(model) and in C(models).
      - Mutually exclusive with O(paths).
    type: str
  paths:
    description:
      - Several model paths inspected in one call. Results are returned in C(models), keyed by each
        path as given.
      - Mutually exclusive with O(path).
    type: list
    elements: str
  records:
    description:
      - JSON files read beside the models, returned in C(records) keyed by path (null when a file
        is missing or not JSON). The model store's record of a Hugging Face repository entry
        (C(.model_store/NAME/repo.json)) says which commit the store holds, so a plan can wait
        for the store to fetch another revision instead of judging the files there now.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: The module only reads files, so check mode runs it unchanged.
  diff_mode:
    support: none
notes:
  - The module never changes anything; C(changed) is always false.
"""

EXAMPLES = r"""
- name: Inspect one GGUF model
  model_facts:
    path: /media/data/models/Qwen2.5-Coder-7B-Instruct-Q4_K_M.gguf
  register: coder

- name: Refuse an interrupted download
  ansible.builtin.assert:
    that: coder.model.complete
    fail_msg: "{{ coder.model.reasons | join('; ') }}"

- name: Inspect every model an inventory names in one call
  model_facts:
    paths:
      - /media/data/models/Llama-3.1-8B-Instruct-Q4_K_M.gguf
      - /media/data/models/Qwen2.5-7B-Instruct-GPTQ-Int4
      - /media/data/models/all-MiniLM-L6-v2
  register: inspected
"""

RETURN = r"""
records:
  description: The parsed contents of each file in O(records), keyed by path; null when missing or not JSON.
  returned: always
  type: dict
models:
  description: One result per path, keyed by the path as given.
  returned: always
  type: dict
  contains:
    path:
      description: The path as given.
      type: str
    name:
      description: Model name (GGUF C(general.name), else the file or directory name).
      type: str
    format:
      description: >-
        gguf, safetensors, pytorch, exl3, exl2, gptq, awq, bitsandbytes, fp8, compressed-tensors,
        diffusers, sentence-transformers, vocab-only or unknown (on error).
      type: str
    architecture:
      description: GGUF C(general.architecture) or the first of config.json C(architectures).
      type: str
    model_type:
      description: config.json C(model_type) (Hugging Face directories).
      type: str
    tokenizer:
      description: >-
        Hugging Face directories: the file a Transformers loader builds the tokenizer from,
        C(tokenizer.json) or C(tokenizer.model), or null when the directory has neither (the
        planner refuses it for textgen's Transformers loader). Null for GGUF files.
      type: str
    params:
      description: Parameter count, or null when unknown.
      type: int
    params_source:
      description: >-
        Where C(params) comes from, C(tensors), C(config) (estimate), C(file_size) (estimate)
        or null.
      type: str
    quantization:
      description: C(name) (Q4_K_M, F16, BF16, gptq, awq, exl3, bnb-4bit, ...) and C(bits) per weight.
      type: dict
    file_type:
      description: Raw GGUF C(general.file_type).
      type: int
    context_length:
      description: Trained context length in tokens.
      type: int
    layers:
      description: Number of transformer blocks.
      type: int
    heads:
      description: Attention heads.
      type: int
    kv_heads:
      description: Key/value heads (equal to C(heads) without grouped-query attention).
      type: int
    key_length:
      description:
        - Size of one key head, when the model says (GGUF C(<arch>.attention.key_length), HF C(head_dim));
          null means embedding_length / heads.
      type: int
    value_length:
      description: Size of one value head, likewise (GGUF C(<arch>.attention.value_length), HF C(head_dim)).
      type: int
    sliding_window:
      description:
        - Tokens a sliding-window attention layer sees (GGUF C(<arch>.attention.sliding_window)), for the
          architectures llama.cpp gives a sliding-window KV cache; null otherwise.
      type: int
    swa_layers:
      description: How many layers use that window (from C(<arch>.attention.sliding_window_pattern) or llama.cpp's default).
      type: int
    embedding_length:
      description: Hidden size.
      type: int
    vocab_size:
      description: Vocabulary size.
      type: int
    size_bytes:
      description: Bytes on disk of the weights, summed over split parts or shards found.
      type: int
    complete:
      description: False for truncated files, missing split parts or shards, and errors.
      type: bool
    servable:
      description: >-
        Whether a text-generation server can load it alone (false for projectors, vocab-only files,
        diffusers and sentence-transformers models, incomplete models and errors).
      type: bool
    is_projector:
      description: True for GGUF vision/audio projectors (C(clip) architecture, mmproj files).
      type: bool
    projector:
      description: The mmproj file found next to the model in a GGUF directory.
      type: str
    trust_remote_code_required:
      description: True when config.json has C(auto_map) (custom modelling code).
      type: bool
    split:
      description: For split GGUF sets, C(count), C(found) and C(missing) file names; else null.
      type: dict
    files:
      description: The weight files the model consists of.
      type: list
      elements: str
    tensor_count:
      description: Number of tensors in the headers read.
      type: int
    header_bytes:
      description: Size of the GGUF header (first part) or of the safetensors headers.
      type: int
    gguf_version:
      description: GGUF format version (2 or 3).
      type: int
    byte_order:
      description: GGUF byte order, little or big.
      type: str
    name_tags:
      description: >-
        Tags from the model name, C(purpose) (list: instruct, chat, base, code, vision, omni,
        embedding, guard, ...), C(size_label), C(quant_label) and C(version).
      type: dict
    reasons:
      description: Sentences saying why the model is incomplete or not servable.
      type: list
      elements: str
    error:
      description: Why the path could not be inspected, or null.
      type: str
    bytes_read:
      description: Bytes read from disk to inspect this path.
      type: int
model:
  description: The result for O(path), when O(path) was given.
  returned: when path is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hf_repo import read_record
from ansible.module_utils.model_inspect import inspect_path, inspect_paths


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "str"},
            "paths": {"type": "list", "elements": "str"},
            "records": {"type": "list", "elements": "str", "default": []},
        },
        mutually_exclusive=[("path", "paths")],
        required_one_of=[("path", "paths")],
        supports_check_mode=True,
    )
    path = module.params["path"]
    paths = module.params["paths"]
    if path is not None and not path.strip():
        module.fail_json(msg="path must not be empty")
    if paths is not None:
        if not paths:
            module.fail_json(msg="paths must list at least one path")
        empty = [p for p in paths if not p or not p.strip()]
        if empty:
            module.fail_json(msg="paths must not hold empty entries")

    records = {name: read_record(name) for name in module.params["records"]}
    if path is not None:
        result = inspect_path(path)
        module.exit_json(changed=False, model=result, models={path: result}, records=records)
    module.exit_json(changed=False, models=inspect_paths(paths), records=records)


if __name__ == "__main__":
    main()
