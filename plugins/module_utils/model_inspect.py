"""Inspect model files on disk by reading their headers only.

Standard library only: this file is shipped to target hosts with the
``model_facts`` module. It understands GGUF (v2 and v3, little- and
big-endian, split sets, vision projectors, vocab-only files), safetensors
(single files and sharded sets), Hugging Face model directories
(``config.json`` with or without a ``quantization_config``), PyTorch
checkpoints, diffusers pipelines and sentence-transformers directories.

Tensor data is never parsed: headers are read with buffered, bounded reads and
``bytes_read`` in every result says how much was read from disk.

The entry points are :func:`inspect_path`, :func:`inspect_paths` and
:func:`name_tags`.
"""

import json
import os
import re
import struct

# --------------------------------------------------------------------------
# Limits and tables
# --------------------------------------------------------------------------

MAX_COUNT = 1 << 24  # more tensors or metadata pairs than this is a corrupt header
MAX_DIMS = 8  # ggml uses 4; anything above 8 is corrupt
MAX_ARRAY_DEPTH = 4
MAX_GGUF_HEADER = 64 * 1024 * 1024  # a GGUF header larger than this is refused (real ones: < 16 MiB)
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library refuses more
MAX_JSON_FILE = 16 * 1024 * 1024  # config.json and friends
FIRST_CHUNK = 64 * 1024
MAX_CHUNK = 1024 * 1024
SMALL_ARRAY = 4096  # numeric arrays up to this many elements are kept as values
SMALL_STRING_ARRAY = 64  # string arrays up to this many elements are kept as values
DEFAULT_ALIGNMENT = 32

GGUF_MAGIC = b"GGUF"
LEGACY_GGML_MAGICS = (b"lmgg", b"fmgg", b"tjgg", b"algg", b"ggml", b"ggmf", b"ggjt", b"ggla")

# general.file_type -> name (llama.cpp LLAMA_FTYPE_MOSTLY_*)
GGUF_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}

# ggml tensor type -> (name, elements per block, bytes per block)
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# GGUF metadata value types with a fixed size: type -> (struct code, size)
_GGUF_FIXED = {
    0: ("B", 1),
    1: ("b", 1),
    2: ("H", 2),
    3: ("h", 2),
    4: ("I", 4),
    5: ("i", 4),
    6: ("f", 4),
    7: ("?", 1),
    10: ("Q", 8),
    11: ("q", 8),
    12: ("d", 8),
}
GGUF_STRING = 8
GGUF_ARRAY = 9

# safetensors dtype -> bits per element
SAFETENSORS_DTYPE_BITS = {
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F32": 32,
    "I32": 32,
    "U32": 32,
    "F16": 16,
    "BF16": 16,
    "I16": 16,
    "U16": 16,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "I8": 8,
    "U8": 8,
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

# config.json quantization_config.quant_method -> model format
QUANT_METHOD_FORMATS = {
    "exl3": "exl3",
    "exl2": "exl2",
    "gptq": "gptq",
    "awq": "awq",
    "bitsandbytes": "bitsandbytes",
    "fp8": "fp8",
    "compressed-tensors": "compressed-tensors",
    "compressed_tensors": "compressed-tensors",
}

TORCH_DTYPES = {
    "float16": ("F16", 16.0),
    "half": ("F16", 16.0),
    "bfloat16": ("BF16", 16.0),
    "float32": ("F32", 32.0),
    "float": ("F32", 32.0),
}

PYTORCH_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt")
WEIGHT_EXTENSIONS = (".safetensors",) + PYTORCH_EXTENSIONS

# Tensors that hold quantization side data rather than weights.
_AUX_TENSOR_SUFFIXES = (
    ".qzeros",
    ".scales",
    ".g_idx",
    ".weight_scale",
    ".weight_scale_inv",
    ".weight_zero_point",
    ".weight_shape",
    ".weight_g_idx",
    ".input_scale",
    ".output_scale",
    ".k_scale",
    ".v_scale",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".SCB",
    ".weight_format",
)

# Architectures whose models embed text rather than generate it.
EMBEDDING_ARCHITECTURES = (
    "bert",
    "nomic-bert",
    "nomic-bert-moe",
    "jina-bert-v2",
    "jina-bert-v3",
    "neo-bert",
    "modern-bert",
    "t5encoder",
    "bertmodel",
    "xlmrobertamodel",
    "nomicbertmodel",
    "robertamodel",
    "mpnetmodel",
    "xlmrobertaforsequenceclassification",
)

_SPLIT_RE = re.compile(r"^(?P<base>.+)-(?P<idx>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<idx>\d{5})-of-(?P<count>\d{5})\.(?P<ext>safetensors|bin)$")


class ModelError(Exception):
    """A problem with one path: the message is a sentence for the user."""


class _Ctx:
    """Per-inspection state: how many bytes were read from disk."""

    def __init__(self):
        self.bytes_read = 0


def _open(path):
    return open(path, "rb")  # noqa: SIM115 - closed by the callers' with blocks


# --------------------------------------------------------------------------
# Result skeleton
# --------------------------------------------------------------------------


def _new_result(path):
    return {
        "path": path,
        "name": None,
        "format": "unknown",
        "architecture": None,
        "model_type": None,
        "tokenizer": None,
        "params": None,
        "params_source": None,
        "quantization": {"name": None, "bits": None},
        "file_type": None,
        "context_length": None,
        "layers": None,
        "heads": None,
        "kv_heads": None,
        "key_length": None,
        "value_length": None,
        # Sliding-window attention (GGUF, llama.cpp): the window in tokens and how many layers use it.
        "sliding_window": None,
        "swa_layers": None,
        "embedding_length": None,
        "vocab_size": None,
        "size_bytes": None,
        "complete": False,
        "servable": False,
        "is_projector": False,
        "trust_remote_code_required": False,
        "split": None,
        "files": [],
        "projector": None,
        "tensor_count": None,
        "header_bytes": None,
        "gguf_version": None,
        "byte_order": None,
        "name_tags": {"purpose": [], "size_label": None, "quant_label": None, "version": None},
        "reasons": [],
        "error": None,
        "bytes_read": 0,
    }


# --------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------


class _ArrayInfo:
    """A large metadata array: only its element type and count are kept."""

    __slots__ = ("etype", "count")

    def __init__(self, etype, count):
        self.etype = etype
        self.count = count

    def __len__(self):
        return self.count

    def __repr__(self):
        return f"<array of {self.count} elements of type {self.etype}>"


class _HeaderReader:
    """Sequential reader over the start of a file with a growing buffer.

    Offsets are absolute file offsets. Reads are made in chunks that double
    from FIRST_CHUNK up to MAX_CHUNK, so at most MAX_CHUNK bytes past the end
    of the header are ever read.
    """

    def __init__(self, fh, size, path, ctx, endian="<"):
        self.fh = fh
        self.size = size
        self.path = path
        self.ctx = ctx
        self.buf = bytearray()
        self.pos = 0
        self.chunk = FIRST_CHUNK
        self.set_endian(endian)

    def set_endian(self, endian):
        self.endian = endian
        self.u32 = struct.Struct(endian + "I")
        self.u64 = struct.Struct(endian + "Q")

    def ensure(self, end, what="header"):
        """Make buf hold the file up to offset ``end`` (exclusive)."""
        if end <= len(self.buf):
            return
        if end > self.size:
            raise ModelError(
                f"{self.path}: corrupt GGUF header: the {what} runs past the end of the file "
                f"(needs {end} bytes, the file has {self.size})"
            )
        if end > MAX_GGUF_HEADER:
            raise ModelError(
                f"{self.path}: corrupt GGUF header: the metadata would be larger than "
                f"{MAX_GGUF_HEADER // (1024 * 1024)} MiB"
            )
        while len(self.buf) < end:
            want = max(end - len(self.buf), self.chunk)
            want = min(want, self.size - len(self.buf))
            data = self.fh.read(want)
            if not data:
                raise ModelError(f"{self.path}: the file ended while reading its GGUF header")
            self.ctx.bytes_read += len(data)
            self.buf += data
            self.chunk = min(self.chunk * 2, MAX_CHUNK)

    def read_u32(self, what="header"):
        self.ensure(self.pos + 4, what)
        value = self.u32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return value

    def read_u64(self, what="header"):
        self.ensure(self.pos + 8, what)
        value = self.u64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return value

    def read_string(self, what="string"):
        length = self.read_u64(what)
        end = self.pos + length
        if end > self.size:
            raise ModelError(
                f"{self.path}: corrupt GGUF header: a {what} of {length} bytes at offset {self.pos - 8} "
                "runs past the end of the file"
            )
        self.ensure(end, what)
        value = bytes(self.buf[self.pos : end]).decode("utf-8", "replace")
        self.pos = end
        return value

    def skip_strings(self, count):
        """Walk ``count`` length-prefixed strings without decoding them."""
        unpack = self.u64.unpack_from
        pos = self.pos
        buf = self.buf
        end = len(buf)
        for _ in range(count):
            if pos + 8 > end:
                self.ensure(pos + 8, "string array")
                buf = self.buf
                end = len(buf)
            pos += 8 + unpack(buf, pos)[0]
            if pos > end:
                self.ensure(pos, "string array")
                buf = self.buf
                end = len(buf)
        self.pos = pos

    def read_value(self, vtype, key, depth=0):
        fixed = _GGUF_FIXED.get(vtype)
        if fixed is not None:
            code, size = fixed
            self.ensure(self.pos + size, "value of " + key)
            value = struct.unpack_from(self.endian + code, self.buf, self.pos)[0]
            self.pos += size
            return value
        if vtype == GGUF_STRING:
            return self.read_string("string value of " + key)
        if vtype == GGUF_ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise ModelError(f"{self.path}: corrupt GGUF header: arrays nested too deep in {key}")
            etype = self.read_u32("array type of " + key)
            count = self.read_u64("array length of " + key)
            remaining = self.size - self.pos
            fixed = _GGUF_FIXED.get(etype)
            if fixed is not None:
                code, size = fixed
                total = count * size
                if total > remaining:
                    raise ModelError(
                        f"{self.path}: corrupt GGUF header: array {key} claims {count} elements, "
                        "more than the file holds"
                    )
                self.ensure(self.pos + total, "array " + key)
                if count <= SMALL_ARRAY:
                    values = list(struct.unpack_from(f"{self.endian}{count}{code}", self.buf, self.pos))
                else:
                    values = _ArrayInfo(etype, count)
                self.pos += total
                return values
            if etype == GGUF_STRING:
                if count * 8 > remaining:
                    raise ModelError(
                        f"{self.path}: corrupt GGUF header: array {key} claims {count} strings, "
                        "more than the file holds"
                    )
                if count <= SMALL_STRING_ARRAY:
                    return [self.read_string("string in " + key) for _ in range(count)]
                self.skip_strings(count)
                return _ArrayInfo(etype, count)
            if etype == GGUF_ARRAY:
                if count * 12 > remaining:
                    raise ModelError(
                        f"{self.path}: corrupt GGUF header: array {key} claims {count} arrays, "
                        "more than the file holds"
                    )
                values = [self.read_value(GGUF_ARRAY, key, depth + 1) for _ in range(count)]
                return values if count <= SMALL_ARRAY else _ArrayInfo(etype, count)
            raise ModelError(
                f"{self.path}: corrupt GGUF header: array {key} has unknown element type {etype}"
            )
        raise ModelError(f"{self.path}: corrupt GGUF header: key {key} has unknown value type {vtype}")


def _align(offset, alignment):
    return (offset + alignment - 1) // alignment * alignment


def read_gguf_header(path, ctx=None):
    """Parse one GGUF file's header.

    Returns a dict: ``version``, ``byte_order``, ``metadata`` (key -> value;
    large arrays are ``_ArrayInfo`` objects carrying their count),
    ``tensor_count``, ``params``, ``tensor_bytes`` (None when a tensor type is
    unknown), ``type_elements`` (ggml type name -> elements), ``header_end``,
    ``data_offset``, ``required_size``, ``file_size``, ``alignment`` and
    ``problems`` (sentences about non-fatal oddities). Raises ModelError for a
    corrupt header.
    """
    if ctx is None:
        ctx = _Ctx()
    size = os.path.getsize(path)
    with _open(path) as fh:
        reader = _HeaderReader(fh, size, path, ctx)
        if size < 24:
            reader.ensure(min(size, 4))
            if bytes(reader.buf[:4]) != GGUF_MAGIC:
                raise ModelError(f"{path}: bad magic: the file does not start with GGUF")
            raise ModelError(f"{path}: corrupt GGUF header: the file is only {size} bytes long")
        reader.ensure(24)
        if bytes(reader.buf[:4]) != GGUF_MAGIC:
            raise ModelError(f"{path}: bad magic: the file does not start with GGUF")
        version = struct.unpack_from("<I", reader.buf, 4)[0]
        byte_order = "little"
        if version & 0xFFFF == 0 and version != 0:
            # written on a big-endian host: every number in the file is swapped
            reader.set_endian(">")
            version = struct.unpack_from(">I", reader.buf, 4)[0]
            byte_order = "big"
        if version == 1:
            raise ModelError(
                f"{path}: GGUF version 1 is not supported (it predates 64-bit counts); convert the file again"
            )
        if version not in (2, 3):
            raise ModelError(f"{path}: unsupported GGUF version {version}")
        reader.pos = 8
        tensor_count = reader.read_u64()
        kv_count = reader.read_u64()
        # a metadata pair takes at least 12 bytes, a tensor info at least 24
        if tensor_count > MAX_COUNT or kv_count > MAX_COUNT or kv_count * 12 + tensor_count * 24 > size:
            raise ModelError(
                f"{path}: corrupt GGUF header: absurd counts "
                f"({tensor_count} tensors, {kv_count} metadata pairs)"
            )
        metadata = {}
        for _ in range(kv_count):
            key = reader.read_string("metadata key")
            vtype = reader.read_u32("value type of " + key)
            metadata[key] = reader.read_value(vtype, key)

        params = 0
        tensor_bytes = 0
        bytes_known = True
        type_elements = {}
        max_end = 0
        u32 = reader.u32
        u64 = reader.u64
        for _ in range(tensor_count):
            name = reader.read_string("tensor name")
            reader.ensure(reader.pos + 4, "tensor info of " + name)
            n_dims = u32.unpack_from(reader.buf, reader.pos)[0]
            if n_dims > MAX_DIMS:
                raise ModelError(f"{path}: corrupt GGUF header: tensor {name} claims {n_dims} dimensions")
            start = reader.pos + 4
            reader.ensure(start + 8 * n_dims + 12, "tensor info of " + name)
            elements = 1
            for i in range(n_dims):
                elements *= u64.unpack_from(reader.buf, start + 8 * i)[0]
            pos = start + 8 * n_dims
            ggml_type = u32.unpack_from(reader.buf, pos)[0]
            offset = u64.unpack_from(reader.buf, pos + 4)[0]
            reader.pos = pos + 12
            params += elements
            info = GGML_TYPES.get(ggml_type)
            if info is None:
                bytes_known = False
                type_name = f"type{ggml_type}"
                end = offset
            else:
                type_name, block, block_bytes = info
                nbytes = (elements + block - 1) // block * block_bytes
                tensor_bytes += nbytes
                end = offset + nbytes
            type_elements[type_name] = type_elements.get(type_name, 0) + elements
            if end > max_end:
                max_end = end
        header_end = reader.pos

    problems = []
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0:
        problems.append(f"general.alignment is not a positive integer; assumed {DEFAULT_ALIGNMENT}")
        alignment = DEFAULT_ALIGNMENT
    elif alignment & (alignment - 1):
        problems.append(f"general.alignment {alignment} is not a power of two")
    data_offset = _align(header_end, alignment)
    required = data_offset + max_end if tensor_count else header_end
    if not bytes_known:
        problems.append("some tensors use a ggml type this reader does not know; the size check is partial")
    return {
        "version": version,
        "byte_order": byte_order,
        "metadata": metadata,
        "tensor_count": tensor_count,
        "params": params,
        "tensor_bytes": tensor_bytes if bytes_known else None,
        "type_elements": type_elements,
        "header_end": header_end,
        "data_offset": data_offset,
        "alignment": alignment,
        "required_size": required,
        "file_size": size,
        "problems": problems,
    }


def _scalar(value):
    """Metadata value as a number; arrays give their largest element."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return max(numbers) if numbers else None
    return None


def _int_or_none(value):
    value = _scalar(value)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


# Architectures whose layers llama.cpp gives a sliding-window KV cache (src/models/<arch>.cpp
# of the pinned build, load_arch_hparams): the pattern when the GGUF has no
# <arch>.attention.sliding_window_pattern, and the window when it has no
# <arch>.attention.sliding_window (None: then the model has no sliding window, as olmo2 and
# gemma3 read it; cohere2 and gpt-oss require the key). Others (gemma3n, whose layers share
# KV, exaone4, llama4's chunked attention, ...) are counted as full attention: the plan may
# then ask for more memory than llama.cpp takes, never less.
SWA_ARCHITECTURES = {
    "gemma2": {"pattern": 2, "window": 4096},
    "gemma3": {"pattern": 6, "window": None},
    "cohere2": {"pattern": 4, "window": None},
    "gpt-oss": {"pattern": 2, "window": None},
    "olmo2": {"pattern": 4, "window": None},
}


def gguf_swa_layers(metadata, arch, layers):
    """``(window, swa_layers)`` as llama.cpp reads them, or ``(None, None)``.

    llama_model_base::load_swa_pattern (src/llama-model.cpp): a per-layer bool array under
    <arch>.attention.sliding_window_pattern wins, else a number n there, else the
    architecture's default n; llama_hparams::set_swa_pattern (src/llama-hparams.cpp) makes
    layer il a sliding-window layer when il % n < n - 1 (n 0: every layer)."""
    known = SWA_ARCHITECTURES.get(arch or "")
    if not known or not layers:
        return None, None
    window = _arch_value(metadata, arch, "attention.sliding_window")
    if window is None:
        window = known["window"]
    if not window or window <= 0:
        return None, None
    raw = metadata.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(raw, (list, tuple)):
        flags = [bool(v) for v in raw[:layers]]
        return window, sum(flags)
    n = _int_or_none(raw) if raw is not None else known["pattern"]
    if n is None or n < 0:
        return None, None
    return window, sum(1 for il in range(layers) if n == 0 or il % n < n - 1)


def _arch_value(metadata, arch, *suffixes):
    prefixes = [arch] if arch else []
    if arch == "clip":
        prefixes = ["clip.vision", "clip.audio", "clip"]
    for prefix in prefixes:
        for suffix in suffixes:
            key = f"{prefix}.{suffix}"
            if key in metadata:
                return _int_or_none(metadata[key])
    return None


def _gguf_set(path):
    """The files of the split set ``path`` belongs to, or None if not split."""
    directory, base = os.path.split(path)
    match = _SPLIT_RE.match(base)
    if not match:
        return None
    count = int(match.group("count"))
    if count < 1:
        return None
    digits = len(match.group("idx"))
    stem = match.group("base")
    names = [f"{stem}-{i:0{digits}d}-of-{count:0{digits}d}.gguf" for i in range(1, count + 1)]
    return stem, [os.path.join(directory, name) for name in names]


def _strip_model_ext(name):
    lower = name.lower()
    for ext in (".gguf",) + WEIGHT_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def inspect_gguf(path, ctx, result):
    """Fill ``result`` from a GGUF file (and the rest of its split set)."""
    split = _gguf_set(path)
    if split is None:
        stem = _strip_model_ext(os.path.basename(path))
        parts = [path]
    else:
        stem, parts = split
    found = [p for p in parts if os.path.lexists(p)]
    missing = [p for p in parts if not os.path.lexists(p)]
    headers = []
    for part in found:
        headers.append((part, read_gguf_header(part, ctx)))
    first_path, first = headers[0]
    metadata = first["metadata"]
    reasons = result["reasons"]
    complete = True

    split_count = _int_or_none(metadata.get("split.count"))
    if split is None and split_count and split_count > 1:
        complete = False
        reasons.append(
            f"{path} is part {(_int_or_none(metadata.get('split.no')) or 0) + 1} of a split set of "
            f"{split_count} files, but its name does not follow the -0000N-of-0000M.gguf pattern, "
            "so the other parts cannot be found"
        )
    if split is not None:
        if split_count is not None and split_count != len(parts) and first_path == parts[0]:
            reasons.append(
                f"{first_path} says the set has {split_count} parts, its file name says {len(parts)}"
            )
        if parts[0] in missing:
            reasons.append(
                f"the first part {os.path.basename(parts[0])} is missing: it holds the model metadata"
            )
        if missing:
            complete = False
            reasons.append(
                f"missing split parts: {len(missing)} of {len(parts)} not found "
                f"({', '.join(os.path.basename(p) for p in missing)})"
            )
        result["split"] = {
            "count": len(parts),
            "found": [os.path.basename(p) for p in found],
            "missing": [os.path.basename(p) for p in missing],
        }

    for part, header in headers:
        for problem in header["problems"]:
            reasons.append(f"{os.path.basename(part)}: {problem}")
        if header["file_size"] < header["required_size"]:
            complete = False
            reasons.append(
                f"truncated: {part} should hold at least {header['required_size']} bytes (data offset "
                f"{header['data_offset']} plus the tensor data), found {header['file_size']}: "
                "the download was probably interrupted"
            )

    arch = metadata.get("general.architecture")
    arch = arch if isinstance(arch, str) else None
    tensor_count = sum(h["tensor_count"] for _, h in headers)
    params = sum(h["params"] for _, h in headers)
    tensor_bytes = None
    if all(h["tensor_bytes"] is not None for _, h in headers):
        tensor_bytes = sum(h["tensor_bytes"] for _, h in headers)
    type_elements = {}
    for _, h in headers:
        for name, count in h["type_elements"].items():
            type_elements[name] = type_elements.get(name, 0) + count

    general_type = metadata.get("general.type")
    basename_lower = os.path.basename(path).lower()
    is_projector = arch == "clip" or general_type == "mmproj" or "mmproj" in basename_lower
    is_adapter = general_type == "adapter"

    result["name"] = metadata.get("general.name") if isinstance(metadata.get("general.name"), str) else stem
    result["architecture"] = arch
    result["files"] = found
    result["size_bytes"] = sum(h["file_size"] for _, h in headers)
    result["gguf_version"] = first["version"]
    result["byte_order"] = first["byte_order"]
    result["header_bytes"] = first["header_end"]
    result["tensor_count"] = tensor_count
    result["is_projector"] = bool(is_projector)

    if tensor_count == 0 and not missing:
        result["format"] = "vocab-only"
        result["params"] = 0
        result["params_source"] = "tensors"
        reasons.append("vocab-only GGUF: it holds a tokenizer and no weights, so it cannot be served")
    else:
        result["format"] = "gguf"
        if missing:
            reasons.append("the parameter count is unknown while split parts are missing")
        else:
            result["params"] = params
            result["params_source"] = "tensors"

    file_type = _int_or_none(metadata.get("general.file_type"))
    result["file_type"] = file_type
    if file_type is not None:
        quant_name = GGUF_FILE_TYPES.get(file_type, "unknown")
    elif type_elements:
        quant_name = max(type_elements.items(), key=lambda item: item[1])[0]
    else:
        quant_name = None
    bits = None
    if tensor_bytes is not None and params and not missing:
        bits = round(tensor_bytes * 8.0 / params, 2)
    result["quantization"] = {"name": quant_name, "bits": bits}

    result["context_length"] = _arch_value(metadata, arch, "context_length")
    result["layers"] = _arch_value(metadata, arch, "block_count")
    result["embedding_length"] = _arch_value(metadata, arch, "embedding_length")
    heads = _arch_value(metadata, arch, "attention.head_count")
    kv_heads = _arch_value(metadata, arch, "attention.head_count_kv")
    result["heads"] = heads
    result["kv_heads"] = kv_heads if kv_heads is not None else heads
    # Per-head key and value sizes when the file says (llama.cpp, src/llama-model.cpp:
    # n_embd_head_k/v default to n_embd / n_head, overridden by these keys).
    result["key_length"] = _arch_value(metadata, arch, "attention.key_length")
    result["value_length"] = _arch_value(metadata, arch, "attention.value_length")
    result["sliding_window"], result["swa_layers"] = gguf_swa_layers(metadata, arch, result["layers"])
    tokens = metadata.get("tokenizer.ggml.tokens")
    if tokens is not None and hasattr(tokens, "__len__"):
        result["vocab_size"] = len(tokens)
    else:
        result["vocab_size"] = _arch_value(metadata, arch, "vocab_size")

    if is_projector:
        reasons.append("vision/audio projector (mmproj): it is loaded next to a model, not served alone")
    if is_adapter:
        reasons.append("LoRA adapter: it is applied to a base model, not served alone")
    result["complete"] = complete
    result["servable"] = bool(
        complete
        and result["format"] == "gguf"
        and not is_projector
        and not is_adapter
        and first_path == parts[0]
    )
    result["_size_label_hint"] = metadata.get("general.size_label")
    return result


# --------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------


def read_safetensors_header(path, ctx=None):
    """Parse one safetensors file's JSON header (never the data).

    Returns ``tensors`` (name -> (dtype, shape)), ``metadata``, ``header_size``,
    ``required_size`` (8 + header + the end of the last tensor) and
    ``file_size``. Raises ModelError when the header is corrupt.
    """
    if ctx is None:
        ctx = _Ctx()
    size = os.path.getsize(path)
    with _open(path) as fh:
        head = fh.read(8)
        ctx.bytes_read += len(head)
        if len(head) < 8:
            raise ModelError(f"{path}: corrupt safetensors file: shorter than its 8-byte header length")
        length = struct.unpack("<Q", head)[0]
        if length < 2 or length > MAX_SAFETENSORS_HEADER:
            raise ModelError(f"{path}: corrupt safetensors header: absurd header length {length}")
        if 8 + length > size:
            raise ModelError(
                f"{path}: corrupt safetensors header: the header length {length} runs past the end "
                f"of the file ({size} bytes)"
            )
        raw = fh.read(length)
        ctx.bytes_read += len(raw)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelError(f"{path}: corrupt safetensors header: it is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path}: corrupt safetensors header: it is not a JSON object")
    tensors = {}
    max_end = 0
    metadata = header.get("__metadata__")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = entry["dtype"]
            shape = [int(d) for d in entry["shape"]]
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: corrupt safetensors header: bad entry for tensor {name}") from None
        if start < 0 or end < start or any(d < 0 for d in shape):
            raise ModelError(f"{path}: corrupt safetensors header: bad offsets for tensor {name}")
        tensors[name] = (dtype, shape)
        max_end = max(max_end, end)
    return {
        "tensors": tensors,
        "metadata": metadata if isinstance(metadata, dict) else {},
        "header_size": 8 + length,
        "required_size": 8 + length + max_end,
        "file_size": size,
    }


def _prod(shape):
    total = 1
    for dim in shape:
        total *= dim
    return total


def _count_params(tensors, method=None, bits=None):
    """Parameters from tensor shapes, unpacking packed quantized weights.

    Returns (params, dtype_elements). ``method`` is the quant method when the
    weights are quantized: packed int32 weights (GPTQ, AWQ, compressed-tensors)
    hold 32/bits values per element, 4-bit bitsandbytes packs two per byte, and
    scale/zero-point tensors are not parameters.
    """
    params = 0
    dtype_elements = {}
    names = set(tensors)
    per_int32 = int(32 // bits) if bits and bits > 0 else 8
    for name, (dtype, shape) in tensors.items():
        elements = _prod(shape)
        dtype_elements[dtype] = dtype_elements.get(dtype, 0) + elements
        if method and (name.endswith(_AUX_TENSOR_SUFFIXES) or ".quant_state." in name):
            continue
        if (
            method in ("gptq", "awq")
            and name.endswith(".qweight")
            or method == "compressed-tensors"
            and name.endswith(".weight_packed")
        ):
            elements *= per_int32
        elif method == "bitsandbytes" and dtype == "U8" and (name + ".absmax") in names:
            elements *= 2
        params += elements
    return params, dtype_elements


def _dominant(counts):
    if not counts:
        return None
    return max(counts.items(), key=lambda item: item[1])[0]


def _dtype_quant(dtype):
    if dtype is None:
        return {"name": None, "bits": None}
    bits = SAFETENSORS_DTYPE_BITS.get(dtype)
    name = dtype
    if dtype.startswith("F8"):
        name = "FP8"
    return {"name": name, "bits": float(bits) if bits else None}


def inspect_safetensors_file(path, ctx, result):
    header = read_safetensors_header(path, ctx)
    params, dtypes = _count_params(header["tensors"])
    result["format"] = "safetensors"
    result["name"] = _strip_model_ext(os.path.basename(path))
    result["files"] = [path]
    result["size_bytes"] = header["file_size"]
    result["params"] = params
    result["params_source"] = "tensors"
    result["header_bytes"] = header["header_size"]
    result["tensor_count"] = len(header["tensors"])
    dominant = _dominant(dtypes)
    result["quantization"] = _dtype_quant(dominant)
    if dominant and dominant.startswith("F8"):
        result["format"] = "fp8"
    result["complete"] = True
    if header["file_size"] < header["required_size"]:
        result["complete"] = False
        result["reasons"].append(
            f"truncated: {path} should hold at least {header['required_size']} bytes, "
            f"found {header['file_size']}: the download was probably interrupted"
        )
    result["reasons"].append(
        "a lone safetensors file carries no config.json: loaders need the whole model directory, "
        "so give its directory"
    )
    return result


# --------------------------------------------------------------------------
# PyTorch checkpoints
# --------------------------------------------------------------------------


def _sniff(path, ctx, count=8):
    with _open(path) as fh:
        data = fh.read(count)
    ctx.bytes_read += len(data)
    return data


def _is_pytorch_magic(head):
    # torch.save: a zip archive (PK..) since 1.6, a pickle (protocol 2+: 0x80) before
    return head[:4] == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def inspect_pytorch_file(path, ctx, result, head):
    if not _is_pytorch_magic(head):
        raise ModelError(f"{path} is not a PyTorch checkpoint: it is neither a zip archive nor a pickle")
    result["format"] = "pytorch"
    result["name"] = _strip_model_ext(os.path.basename(path))
    result["files"] = [path]
    result["size_bytes"] = os.path.getsize(path)
    result["complete"] = True
    result["reasons"].append(
        "a lone PyTorch checkpoint carries no config.json: loaders need the whole model directory, "
        "so give its directory; its parameters are not counted (that would mean unpickling it)"
    )
    return result


# --------------------------------------------------------------------------
# Hugging Face directories
# --------------------------------------------------------------------------


def _read_json(path, ctx):
    size = os.path.getsize(path)
    if size > MAX_JSON_FILE:
        raise ModelError(f"{path} is larger than {MAX_JSON_FILE // (1024 * 1024)} MiB: not a config file")
    with _open(path) as fh:
        raw = fh.read(MAX_JSON_FILE + 1)
    ctx.bytes_read += len(raw)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelError(f"{path} is not valid JSON") from None


def _cfg_get(cfg, *keys):
    """First of ``keys`` found in config.json or its text/llm sub-configs."""
    scopes = [cfg]
    for sub in ("text_config", "llm_config", "language_config"):
        if isinstance(cfg.get(sub), dict):
            scopes.append(cfg[sub])
    for scope in scopes:
        for key in keys:
            value = scope.get(key)
            if value is not None:
                return value
    return None


def _quant_bits(method, qcfg):
    if method == "bitsandbytes":
        if qcfg.get("load_in_4bit") or qcfg.get("_load_in_4bit"):
            return 4.0
        if qcfg.get("load_in_8bit") or qcfg.get("_load_in_8bit"):
            return 8.0
        return None
    if method == "fp8":
        return 8.0
    if method == "compressed-tensors":
        groups = qcfg.get("config_groups")
        if isinstance(groups, dict):
            for group in groups.values():
                weights = group.get("weights") if isinstance(group, dict) else None
                if isinstance(weights, dict) and weights.get("num_bits"):
                    return float(weights["num_bits"])
        return None
    for key in ("bits", "w_bit", "wbits", "num_bits"):
        value = qcfg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def estimate_params_from_config(cfg):
    """Approximate parameter count of a decoder from config.json, or None."""
    try:
        hidden = int(_cfg_get(cfg, "hidden_size", "n_embd", "d_model"))
        layers = int(_cfg_get(cfg, "num_hidden_layers", "n_layer", "num_layers"))
        vocab = int(_cfg_get(cfg, "vocab_size"))
        heads = int(_cfg_get(cfg, "num_attention_heads", "n_head"))
    except (TypeError, ValueError):
        return None
    if min(hidden, layers, vocab, heads) <= 0:
        return None
    inter = _cfg_get(cfg, "intermediate_size", "n_inner", "ffn_dim")
    inter = int(inter) if isinstance(inter, int) else 4 * hidden
    kv_heads = _cfg_get(cfg, "num_key_value_heads", "n_head_kv")
    kv_heads = int(kv_heads) if isinstance(kv_heads, int) else heads
    head_dim = _cfg_get(cfg, "head_dim")
    head_dim = int(head_dim) if isinstance(head_dim, int) else hidden // heads
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    experts = _cfg_get(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    if isinstance(experts, int) and experts > 1:
        moe_inter = _cfg_get(cfg, "moe_intermediate_size")
        moe_inter = int(moe_inter) if isinstance(moe_inter, int) else inter
        mlp = 3 * hidden * moe_inter * experts + hidden * experts
    else:
        mlp = 3 * hidden * inter
    tied = _cfg_get(cfg, "tie_word_embeddings")
    embeddings = vocab * hidden * (1 if tied else 2)
    return embeddings + layers * (attn + mlp + 2 * hidden) + hidden


def _list_files(directory, recursive=False, depth=3):
    out = []
    try:
        entries = sorted(os.listdir(directory))
    except OSError as exc:
        raise ModelError(f"cannot read directory {directory}: {exc.strerror or exc}") from None
    for entry in entries:
        full = os.path.join(directory, entry)
        if os.path.isdir(full):
            if recursive and depth > 0:
                out.extend(_list_files(full, True, depth - 1))
        elif os.path.isfile(full):
            out.append(full)
    return out


def _shard_gaps(files, ext):
    """Missing files of ``-0000X-of-0000Y.<ext>`` sets among ``files``."""
    present = {os.path.basename(f) for f in files}
    missing = []
    seen = set()
    for name in present:
        match = _SHARD_RE.match(name)
        if not match or match.group("ext") != ext:
            continue
        key = (match.group("base"), match.group("count"))
        if key in seen:
            continue
        seen.add(key)
        digits = len(match.group("idx"))
        count = int(match.group("count"))
        for i in range(1, count + 1):
            expected = f"{match.group('base')}-{i:0{digits}d}-of-{match.group('count')}.{ext}"
            if expected not in present:
                missing.append(expected)
    return sorted(missing)


def inspect_hf_dir(path, ctx, result):
    """Fill ``result`` from a Hugging Face style model directory: its config
    (``_hf_config``), its format (``_hf_format``), its weight files and shards
    (``_hf_missing_shards``), their parameters (``_hf_params``) and its quantization
    (``_hf_quantization``)."""
    top = _list_files(path)
    names = {os.path.basename(f): f for f in top}
    reasons = result["reasons"]
    result["name"] = os.path.basename(os.path.normpath(path))
    d = _hf_config(path, names, ctx, result)
    cfg, method, is_diffusers, is_st = d["cfg"], d["method"], d["is_diffusers"], d["is_st"]

    # Weight files: top level only for a plain HF dir (Meta repos keep a duplicate
    # copy under original/), the whole tree for pipelines and embedding models.
    scan = _list_files(path, recursive=True) if (is_diffusers or is_st) else top
    safetensors = [f for f in scan if f.endswith(".safetensors")]
    pytorch = [f for f in scan if f.lower().endswith(PYTORCH_EXTENSIONS)]
    weights = safetensors or pytorch
    fmt = _hf_format(d, safetensors, pytorch, result)

    if not weights:
        if cfg or is_diffusers or is_st:
            raise ModelError(
                f"{path} holds no weight files (.safetensors, .bin, .pt, .pth): the download is incomplete "
                "or this is not a model directory"
            )
        raise ModelError(
            f"{path} holds no model: no .gguf, .safetensors, .bin/.pt weights, config.json "
            "or model_index.json"
        )

    complete, missing = _hf_missing_shards(names, safetensors, weights, ctx, reasons)
    bits = _quant_bits(method, d["qcfg"]) if method else None
    complete, params, params_source, dtypes = _hf_params(
        d, fmt, safetensors, pytorch, missing, bits, complete, ctx, result
    )
    fmt, params, params_source = _hf_quantization(
        d, fmt, bits, dtypes, weights, missing, params, params_source, result
    )

    result["format"] = fmt
    result["params"] = params
    result["params_source"] = params_source
    result["files"] = weights
    # What AutoTokenizer.from_pretrained builds a tokenizer from (transformers 5.6,
    # tokenization_utils_tokenizers.py): tokenizer.json, else a slow tokenizer.model to convert.
    result["tokenizer"] = next((n for n in ("tokenizer.json", "tokenizer.model") if n in names), None)
    result["size_bytes"] = sum(os.path.getsize(f) for f in weights)
    result["complete"] = complete
    result["servable"] = complete and fmt not in ("diffusers", "sentence-transformers")
    if is_diffusers:
        reasons.append(
            "diffusers pipeline (model_index.json): an image/audio generation model, not a text model"
        )
    if is_st:
        reasons.append("sentence-transformers model: it computes embeddings, it does not generate text")
    if not cfg and not (is_diffusers or is_st):
        reasons.append("no config.json: loaders need it next to the weights")
    return result


def _hf_config(path, names, ctx, result):
    """config.json (and a diffusers pipeline's model_index.json): architecture, sizes,
    remote code. Returns what the other steps need: ``cfg``, ``qcfg``, ``method`` (the
    quant_method, lower case), ``is_diffusers``, ``is_st`` (sentence-transformers)."""
    reasons = result["reasons"]
    cfg = {}
    if "config.json" in names:
        cfg = _read_json(names["config.json"], ctx)
        if not isinstance(cfg, dict):
            raise ModelError("{} is not a JSON object".format(names["config.json"]))

    is_diffusers = "model_index.json" in names
    is_st = "modules.json" in names or "sentence_bert_config.json" in names

    qcfg = _cfg_get(cfg, "quantization_config")
    qcfg = qcfg if isinstance(qcfg, dict) else {}
    method = qcfg.get("quant_method")
    method = method.lower() if isinstance(method, str) else None
    if method == "compressed_tensors":
        method = "compressed-tensors"

    architectures = _cfg_get(cfg, "architectures")
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        result["architecture"] = architectures[0]
    model_type = _cfg_get(cfg, "model_type")
    result["model_type"] = model_type if isinstance(model_type, str) else None
    if result["architecture"] is None:
        result["architecture"] = result["model_type"]
    if is_diffusers and result["architecture"] is None:
        try:
            index = _read_json(names["model_index.json"], ctx)
            if isinstance(index, dict) and isinstance(index.get("_class_name"), str):
                result["architecture"] = index["_class_name"]
        except ModelError as exc:
            reasons.append(str(exc))

    auto_map = cfg.get("auto_map") or (cfg.get("text_config") or {}).get("auto_map")
    result["trust_remote_code_required"] = bool(auto_map)
    if auto_map:
        reasons.append("config.json has auto_map: the model runs custom code and needs --trust-remote-code")

    result["context_length"] = _int_or_none(
        _cfg_get(cfg, "max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
    )
    result["layers"] = _int_or_none(_cfg_get(cfg, "num_hidden_layers", "n_layer", "num_layers"))
    heads = _int_or_none(_cfg_get(cfg, "num_attention_heads", "n_head"))
    kv_heads = _int_or_none(_cfg_get(cfg, "num_key_value_heads", "n_head_kv", "num_kv_heads"))
    if kv_heads is None and _cfg_get(cfg, "multi_query"):
        kv_heads = 1
    result["heads"] = heads
    result["kv_heads"] = kv_heads if kv_heads is not None else heads
    # Transformers' attention uses config.head_dim when the config has one (Gemma, Qwen3),
    # else hidden_size // num_attention_heads.
    head_dim = _int_or_none(_cfg_get(cfg, "head_dim"))
    result["key_length"] = result["value_length"] = head_dim
    result["embedding_length"] = _int_or_none(_cfg_get(cfg, "hidden_size", "n_embd", "d_model"))
    result["vocab_size"] = _int_or_none(_cfg_get(cfg, "vocab_size"))
    return {"cfg": cfg, "qcfg": qcfg, "method": method, "is_diffusers": is_diffusers, "is_st": is_st}


def _hf_format(d, safetensors, pytorch, result):
    """The directory's format: a pipeline, an embedding model, a quantization method, the
    weights' file type, or exl2/exl3 from the directory name when config.json names none."""
    method = d["method"]
    if d["is_diffusers"]:
        fmt = "diffusers"
    elif d["is_st"]:
        fmt = "sentence-transformers"
    elif method in QUANT_METHOD_FORMATS:
        fmt = QUANT_METHOD_FORMATS[method]
    elif safetensors:
        fmt = "safetensors"
    elif pytorch:
        fmt = "pytorch"
    else:
        fmt = "unknown"
    lower_name = result["name"].lower()
    if fmt in ("safetensors", "pytorch") and not method:
        for hint in ("exl3", "exl2"):
            if hint in lower_name:
                fmt = hint
                result["reasons"].append(
                    f"format {hint} taken from the directory name: config.json names no quant_method"
                )
                break
    return fmt


def _hf_missing_shards(names, safetensors, weights, ctx, reasons):
    """Shards a sharded set lacks (its index names every shard; a numbered set has no gap).
    Returns ``(complete, missing)``."""
    complete = True
    weight_ext = "safetensors" if safetensors else "bin"
    missing = []
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if index_name not in names or (index_name.startswith("model.") != bool(safetensors)):
            continue
        try:
            index = _read_json(names[index_name], ctx)
        except ModelError as exc:
            complete = False
            reasons.append(str(exc))
            continue
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            complete = False
            reasons.append(f"{index_name} has no weight_map")
            continue
        for shard in sorted({v for v in weight_map.values() if isinstance(v, str)}):
            if shard not in names:
                missing.append(shard)
    for shard in _shard_gaps(weights, weight_ext):
        if shard not in missing:
            missing.append(shard)
    if missing:
        complete = False
        reasons.append("missing weight shards: {}".format(", ".join(sorted(missing))))
    return complete, missing


def _hf_params(d, fmt, safetensors, pytorch, missing, bits, complete, ctx, result):
    """Parameters counted from the safetensors headers (or estimated from the config); a
    truncated shard or a file that is no PyTorch checkpoint makes the set incomplete.
    Returns ``(complete, params, params_source, dtypes)``."""
    reasons, method = result["reasons"], d["method"]
    params = params_source = None
    dtypes = {}
    if safetensors:
        tensors = {}
        header_bytes = 0
        for shard in safetensors:
            header = read_safetensors_header(shard, ctx)
            tensors.update(header["tensors"])
            header_bytes += header["header_size"]
            if header["file_size"] < header["required_size"]:
                complete = False
                reasons.append(
                    f"truncated: {shard} should hold at least {header['required_size']} bytes, "
                    f"found {header['file_size']}: the download was probably interrupted"
                )
        result["header_bytes"] = header_bytes
        result["tensor_count"] = len(tensors)
        counted, dtypes = _count_params(tensors, method if method in QUANT_METHOD_FORMATS else None, bits)
        if not missing and method not in ("exl2", "exl3") and fmt not in ("exl2", "exl3"):
            params = counted
            params_source = "tensors"
    else:
        for weight in pytorch:
            head = _sniff(weight, ctx)
            if not _is_pytorch_magic(head):
                complete = False
                reasons.append(
                    f"{weight} is not a PyTorch checkpoint: it is neither a zip archive nor a pickle"
                )
    if params is None and not d["is_diffusers"] and not missing:
        estimate = estimate_params_from_config(d["cfg"]) if d["cfg"] else None
        if estimate:
            params = estimate
            params_source = "config"
    return complete, params, params_source, dtypes


def _hf_quantization(d, fmt, bits, dtypes, weights, missing, params, params_source, result):
    """The quantization (the config's method, its torch_dtype, or the tensors' dominant
    dtype; FP8 tensors make the format fp8); parameters from the file size and the bits
    when nothing else gave them. Returns ``(fmt, params, params_source)``."""
    method, cfg = d["method"], d["cfg"]
    if method:
        name = method
        if method == "bitsandbytes":
            name = f"bnb-{int(bits)}bit" if bits else "bitsandbytes"
        result["quantization"] = {"name": name, "bits": bits}
    else:
        dtype = _cfg_get(cfg, "torch_dtype", "dtype")
        if isinstance(dtype, str) and dtype.replace("torch.", "") in TORCH_DTYPES:
            qname, qbits = TORCH_DTYPES[dtype.replace("torch.", "")]
            result["quantization"] = {"name": qname, "bits": qbits}
        else:
            result["quantization"] = _dtype_quant(_dominant(dtypes))
        if fmt in ("exl2", "exl3"):
            result["quantization"] = {"name": fmt, "bits": None}
    if fmt == "safetensors" and _dominant(dtypes) and _dominant(dtypes).startswith("F8") and not method:
        fmt = "fp8"
        result["quantization"] = _dtype_quant(_dominant(dtypes))
    if (
        result["quantization"].get("bits")
        and params is None
        and weights
        and not missing
        and not d["is_diffusers"]
    ):
        total = sum(os.path.getsize(f) for f in weights)
        params = int(total * 8 / result["quantization"]["bits"])
        params_source = "file_size"
    return fmt, params, params_source


# --------------------------------------------------------------------------
# Directories holding GGUF files
# --------------------------------------------------------------------------


def _pick_gguf(path):
    """The GGUF file a directory stands for, or raise ModelError.

    Split sets count as one model; mmproj projectors are set aside when a
    model is present (returned as the second item).
    """
    files = [f for f in _list_files(path) if f.lower().endswith(".gguf")]
    groups = {}
    for f in files:
        split = _gguf_set(f)
        key = split[0] if split else f
        groups.setdefault(key, []).append(f)
    models = []
    projectors = []
    for _key, members in sorted(groups.items()):
        members.sort()
        lead = members[0]
        if "mmproj" in os.path.basename(lead).lower():
            projectors.append(lead)
        else:
            models.append(lead)
    if len(models) == 1:
        return models[0], projectors
    if not models and len(projectors) == 1:
        return projectors[0], []
    candidates = models or projectors
    raise ModelError(
        f"{path} holds {len(candidates)} GGUF models "
        f"({', '.join(os.path.basename(c) for c in candidates)}): give the path of the one to use"
    )


def _dir_has_gguf(path):
    try:
        return any(
            e.lower().endswith(".gguf") and os.path.isfile(os.path.join(path, e)) for e in os.listdir(path)
        )
    except OSError as exc:
        raise ModelError(f"cannot read directory {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------
# Name tags
# --------------------------------------------------------------------------

_B = r"(?<![A-Za-z0-9])"  # start boundary
_E = r"(?![A-Za-z0-9])"  # end boundary

# (regex, label or None to use the upper-cased match) in priority order
_QUANT_PATTERNS = (
    (re.compile(_B + r"((?:I|T)?Q[1-8](?:_[A-Z0-9]{1,3}){0,3})" + _E, re.I), None),
    (re.compile(_B + r"(MXFP4(?:_MOE)?|NVFP4)" + _E, re.I), None),
    (re.compile(_B + r"exl3" + _E, re.I), "EXL3"),
    (re.compile(_B + r"exl2" + _E, re.I), "EXL2"),
    (re.compile(_B + r"gptq" + _E, re.I), "GPTQ"),
    (re.compile(_B + r"awq" + _E, re.I), "AWQ"),
    (re.compile(_B + r"bnb[-_]?4bit" + _E, re.I), "bnb-4bit"),
    (re.compile(_B + r"bnb[-_]?8bit" + _E, re.I), "bnb-8bit"),
    (re.compile(_B + r"bnb" + _E, re.I), "bnb"),
    (re.compile(_B + r"fp8(?:[-_]dynamic)?" + _E, re.I), "fp8"),
    (re.compile(_B + r"w4a16" + _E, re.I), "w4a16"),
    (re.compile(_B + r"w8a8" + _E, re.I), "w8a8"),
    (re.compile(_B + r"int4" + _E, re.I), "int4"),
    (re.compile(_B + r"int8" + _E, re.I), "int8"),
    (re.compile(_B + r"nf4" + _E, re.I), "nf4"),
    (re.compile(_B + r"([48])[-_]?bit" + _E, re.I), "{0}bit"),
    (re.compile(_B + r"(\d+(?:[._]\d+)?)[-_]?bpw" + _E, re.I), "{0}bpw"),
    (re.compile(_B + r"(BF16|F16|FP16|F32|FP32)" + _E, re.I), None),
    (re.compile(_B + r"(mlx)" + _E, re.I), "MLX"),
)

_MOE_SIZE = re.compile(_B + r"(\d+)x(\d+(?:\.\d+)?)([BM])" + _E, re.I)
_SIZE = re.compile(_B + r"(\d+(?:\.\d+)?)([BMT])(?:-(A\d+(?:\.\d+)?B|\d+E))?" + _E, re.I)
_EFFECTIVE_SIZE = re.compile(_B + r"(E\d+(?:\.\d+)?B)" + _E, re.I)
_CONTEXT_HINT = re.compile(_B + r"\d+k" + _E, re.I)
_DATE_HINT = re.compile(_B + r"(?:20\d\d[01]\d(?:[0-3]\d)?|\d{4})" + _E)
_V_VERSION = re.compile(_B + r"v(\d+(?:\.\d+)*)" + _E, re.I)
_FAMILY_VERSION = re.compile(_B + r"[A-Za-z]{3,}(\d+(?:\.\d+)?)" + _E)
_BARE_VERSION = re.compile(_B + r"(\d{1,2}(?:\.\d+)?)" + _E)

_WORD_SIZES = ("nano", "micro", "tiny", "mini", "small", "medium", "large", "xl", "xxl")

# lower-cased token -> purpose
_PURPOSE_WORDS = {
    "instruct": "instruct",
    "it": "instruct",
    "inst": "instruct",
    "sft": "instruct",
    "chat": "chat",
    "base": "base",
    "code": "code",
    "coder": "code",
    "codellama": "code",
    "codestral": "code",
    "codegemma": "code",
    "codeqwen": "code",
    "starcoder": "code",
    "starcoder2": "code",
    "vision": "vision",
    "vl": "vision",
    "vlm": "vision",
    "llava": "vision",
    "mmproj": "vision",
    "pixtral": "vision",
    "omni": "omni",
    "embed": "embedding",
    "embedding": "embedding",
    "embeddings": "embedding",
    "bge": "embedding",
    "gte": "embedding",
    "e5": "embedding",
    "minilm": "embedding",
    "mpnet": "embedding",
    "sentence": "embedding",
    "rerank": "rerank",
    "reranker": "rerank",
    "guard": "guard",
    "llamaguard": "guard",
    "shieldgemma": "guard",
    "safeguard": "guard",
    "paraphrase": "paraphrase",
    "multilingual": "multilingual",
    "scout": "scout",
    "ner": "ner",
    "stt": "stt",
    "asr": "stt",
    "whisper": "stt",
    "tts": "tts",
    "kokoro": "tts",
    "bark": "tts",
    "parler": "tts",
    "outetts": "tts",
}


def name_tags(name):
    """Tags a model hub name carries: purpose, size, quantization, version.

    ``name`` may be a file name or a directory path; extensions and split
    suffixes are ignored.
    """
    base = os.path.basename(os.path.normpath(name)) if name else ""
    base = _strip_model_ext(base)
    match = _SPLIT_RE.match(base + ".gguf") or _SHARD_RE.match(base + ".safetensors")
    if match:
        base = match.group("base")
    tags = {"purpose": [], "size_label": None, "quant_label": None, "version": None}
    if not base:
        return tags
    work = base

    # quantization hints (removed so they do not read as versions or sizes)
    best = None
    for rank, (pattern, label) in enumerate(_QUANT_PATTERNS):
        for m in pattern.finditer(work):
            if label is None:
                text = m.group(1).upper()
            elif "{0}" in label:
                text = label.format(m.group(1).replace("_", "."))
            else:
                text = label
            if best is None or rank < best[0]:
                best = (rank, text)
        work = pattern.sub(" ", work)
    if best:
        tags["quant_label"] = best[1]

    # sizes
    m = _MOE_SIZE.search(work)
    if m:
        tags["size_label"] = f"{m.group(1)}x{m.group(2)}{m.group(3).upper()}"
        work = work[: m.start()] + " " + work[m.end() :]
    else:
        m = _SIZE.search(work)
        if m:
            label = m.group(1) + m.group(2).upper()
            if m.group(3):
                label += "-" + m.group(3).upper()
            tags["size_label"] = label
            work = work[: m.start()] + " " + work[m.end() :]
        else:
            m = _EFFECTIVE_SIZE.search(work)
            if m:
                tags["size_label"] = m.group(1).upper()
                work = work[: m.start()] + " " + work[m.end() :]
    work = _CONTEXT_HINT.sub(" ", work)
    work = _DATE_HINT.sub(" ", work)

    tokens = [t for t in re.split(r"[-_\s]+|(?<!\d)\.|\.(?!\d)", work) if t]
    lowered = [t.lower() for t in tokens]

    if tags["size_label"] is None:
        for token in lowered:
            if token in _WORD_SIZES:
                tags["size_label"] = token
                break
        else:
            if "base" in lowered and "instruct" not in lowered:
                # bert-base-uncased: "base" is a size when no number gives one
                tags["size_label"] = "base"

    # versions: an explicit vN wins, then a number glued to the family name, then a bare number
    m = _V_VERSION.search(work)
    if m:
        tags["version"] = "v" + m.group(1)
    else:
        m = _FAMILY_VERSION.search(work)
        if m:
            tags["version"] = m.group(1)
        else:
            m = _BARE_VERSION.search(work)
            if m:
                tags["version"] = m.group(1)

    purposes = []
    for token in lowered:
        purpose = _PURPOSE_WORDS.get(token)
        if purpose is None:
            stripped = token.rstrip("0123456789.")
            purpose = _PURPOSE_WORDS.get(stripped)
            if (
                purpose is None
                and (token.startswith("code") or token.endswith("coder"))
                and token not in ("decoder", "encoder")
            ):
                purpose = "code"
            if purpose is None and "guard" in token:
                purpose = "guard"
            if purpose is None and token.startswith("llava"):
                purpose = "vision"
        if purpose == "base" and tags["size_label"] == "base":
            continue
        if purpose and purpose not in purposes:
            purposes.append(purpose)
    tags["purpose"] = purposes
    return tags


def _finish_tags(result, size_hint=None):
    tags = name_tags(result["name"] or result["path"])
    if result["format"] in ("gguf", "vocab-only"):
        # the file name carries the quant label; general.name may carry the rest
        file_tags = name_tags(os.path.basename(result["files"][0]) if result["files"] else result["path"])
        tags = file_tags
        if result["name"]:
            meta_tags = name_tags(result["name"])
            for key in ("size_label", "version"):
                if tags[key] is None:
                    tags[key] = meta_tags[key]
            for purpose in meta_tags["purpose"]:
                if purpose not in tags["purpose"]:
                    tags["purpose"].append(purpose)
    if tags["size_label"] is None and isinstance(size_hint, str) and size_hint:
        tags["size_label"] = size_hint
    arch = (result.get("architecture") or "").lower()
    extra = []
    if result["format"] == "sentence-transformers" or arch in EMBEDDING_ARCHITECTURES:
        extra.append("embedding")
    if result.get("is_projector"):
        extra.append("vision")
    if arch.startswith("whisper"):
        extra.append("stt")
    for purpose in extra:
        if purpose not in tags["purpose"]:
            tags["purpose"].append(purpose)
    if tags["quant_label"] is None and result["format"] in ("gptq", "awq", "exl2", "exl3"):
        tags["quant_label"] = result["format"].upper()
    result["name_tags"] = tags


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def _inspect_file(path, ctx, result):
    lower = path.lower()
    head = _sniff(path, ctx)
    if head[:4] == GGUF_MAGIC:
        return inspect_gguf(path, ctx, result)
    if head[:4] in LEGACY_GGML_MAGICS:
        raise ModelError(
            f"{path} is a legacy GGML file (before GGUF): llama.cpp no longer loads it; convert it to GGUF"
        )
    if lower.endswith(".gguf"):
        raise ModelError(f"{path}: bad magic: the file does not start with GGUF")
    if lower.endswith(".safetensors"):
        return inspect_safetensors_file(path, ctx, result)
    if lower.endswith(PYTORCH_EXTENSIONS):
        return inspect_pytorch_file(path, ctx, result, head)
    if len(head) == 8:
        length = struct.unpack("<Q", head)[0]
        if 2 <= length <= MAX_SAFETENSORS_HEADER:
            peek = _sniff(path, ctx, 9)
            if peek[8:9] == b"{":
                return inspect_safetensors_file(path, ctx, result)
    if lower.endswith(".json"):
        raise ModelError(f"{path} is a JSON file, not a model: give the model directory that holds it")
    raise ModelError(f"{path} is not a model file: it is neither GGUF, safetensors nor a PyTorch checkpoint")


def inspect_path(path):
    """Inspect one model path (file or directory). Never raises.

    Problems specific to the path come back in the result as ``error`` with
    ``complete: false`` and ``format: unknown``.
    """
    result = _new_result(path)
    ctx = _Ctx()
    real = os.path.expanduser(path) if isinstance(path, str) else path
    size_hint = None
    try:
        if not isinstance(real, str) or not real:
            raise ModelError(f"the model path must be a non-empty string, got {path!r}")
        if not os.path.lexists(real):
            raise ModelError(f"{path} does not exist")
        if not os.path.exists(real):
            raise ModelError(f"{path} is a broken symbolic link")
        if os.path.isdir(real):
            if _dir_has_gguf(real):
                target, projectors = _pick_gguf(real)
                inspect_gguf(target, ctx, result)
                if projectors:
                    result["projector"] = projectors[0]
            else:
                inspect_hf_dir(real, ctx, result)
        elif os.path.isfile(real):
            _inspect_file(real, ctx, result)
        else:
            raise ModelError(f"{path} is neither a regular file nor a directory")
        size_hint = result.pop("_size_label_hint", None)
    except ModelError as exc:
        result = _error_result(path, str(exc))
    except OSError as exc:
        where = exc.filename or path
        result = _error_result(path, f"cannot read {where}: {exc.strerror or exc}")
    except Exception as exc:  # a malformed file must not take the other paths down
        result = _error_result(path, f"could not inspect {path}: {type(exc).__name__}: {exc}")
    result["bytes_read"] = ctx.bytes_read
    if result["error"] is None:
        _finish_tags(result, size_hint)
        if not result["complete"]:
            result["servable"] = False
    else:
        result["name_tags"] = name_tags(path if isinstance(path, str) else "")
    return result


def _error_result(path, message):
    result = _new_result(path)
    if isinstance(path, str) and path:
        result["name"] = _strip_model_ext(os.path.basename(os.path.normpath(path)))
    result["error"] = message
    result["reasons"] = [message]
    return result


def inspect_paths(paths):
    """Inspect several paths; returns a dict keyed by each path as given."""
    return {path: inspect_path(path) for path in paths}
