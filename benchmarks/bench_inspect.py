"""Benchmark model inspection: header-only reading against gguf's GGUFReader.

Builds, in a temporary directory:
- a GGUF shaped like Qwen2.5-7B Q4_K_M (152,064-token vocabulary, 151,387
  merges, 339 tensor infos), extended to its full size sparsely, so no tensor
  data is written;
- 100 safetensors files with Llama-like headers (small tensors).

Then times model_inspect.inspect_path on each (best of N runs) and
gguf.GGUFReader on the same GGUF in the same run, and writes
benchmarks/results/inspect.json and inspect.md.

Run: .venv/bin/python benchmarks/bench_inspect.py
Targets: at least 50x faster than GGUFReader; bytes read at most header + 4 MiB.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))
sys.path.insert(0, os.path.join(ROOT, "tests", "unit"))

import gguf  # noqa: E402
import model_inspect  # noqa: E402
import numpy as np  # noqa: E402
from fixtures_models import (  # noqa: E402
    llama_safetensors_tensors,
    params_of,
    qwen7b_tensors,
    write_gguf,
    write_safetensors,
)

MiB = 1024 * 1024
TARGET_RATIO = 50.0
TARGET_EXTRA_BYTES = 4 * MiB
N_TOKENS = 152064
N_MERGES = 151387
N_SAFETENSORS = 100


def best_of(runs, func):
    best = None
    value = None
    for _ in range(runs):
        start = time.perf_counter()
        value = func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, value


def build_gguf(directory):
    path = os.path.join(directory, "Qwen2.5-7B-Instruct-Q4_K_M.gguf")
    tensors = qwen7b_tensors()
    write_gguf(
        path,
        arch="qwen2",
        name="Qwen2.5 7B Instruct",
        tensors=tensors,
        file_type=15,
        n_tokens=N_TOKENS,
        n_merges=N_MERGES,
        context_length=32768,
        block_count=28,
        embedding_length=3584,
        head_count=28,
        head_count_kv=4,
    )
    return path, params_of(tensors), len(tensors)


def build_safetensors(directory):
    paths = []
    tensors = llama_safetensors_tensors(layers=32, hidden=16, vocab=64, ffn=32, dtype=np.float16)
    for i in range(N_SAFETENSORS):
        path = os.path.join(directory, f"model-{i:03d}.safetensors")
        write_safetensors(path, tensors, metadata={"format": "pt"})
        paths.append(path)
    return paths, len(tensors)


def bench_gguf(path, expected_params, runs, reader_runs):
    ours_s, result = best_of(runs, lambda: model_inspect.inspect_path(path))
    header = model_inspect.read_gguf_header(path)
    reader_s, reader = best_of(reader_runs, lambda: gguf.GGUFReader(path))
    reader_params = sum(int(t.n_elements) for t in reader.tensors)
    assert result["error"] is None and result["complete"], result["reasons"]
    assert result["params"] == expected_params == reader_params
    assert header["data_offset"] == reader.data_offset
    ratio = reader_s / ours_s
    bytes_read = result["bytes_read"]
    return {
        "file": os.path.basename(path),
        "file_size_bytes": result["size_bytes"],
        "header_bytes": header["header_end"],
        "data_offset": header["data_offset"],
        "tensors": result["tensor_count"],
        "vocab_size": result["vocab_size"],
        "merges": N_MERGES,
        "params": result["params"],
        "inspect_seconds": round(ours_s, 4),
        "inspect_bytes_read": bytes_read,
        "inspect_extra_bytes_over_header": bytes_read - header["data_offset"],
        "ggufreader_seconds": round(reader_s, 3),
        "speedup": round(ratio, 1),
        "runs": {"inspect": runs, "ggufreader": reader_runs},
        "target_speedup": TARGET_RATIO,
        "target_max_bytes_read": header["data_offset"] + TARGET_EXTRA_BYTES,
        "meets_speed_target": ratio >= TARGET_RATIO,
        "meets_bytes_target": bytes_read <= header["data_offset"] + TARGET_EXTRA_BYTES,
    }


def bench_safetensors(paths, n_tensors, runs):
    def inspect_all():
        return [model_inspect.inspect_path(p) for p in paths]

    total_s, results = best_of(runs, inspect_all)
    assert all(r["error"] is None and r["complete"] for r in results)
    bytes_read = [r["bytes_read"] for r in results]
    headers = [r["header_bytes"] for r in results]
    sizes = [r["size_bytes"] for r in results]
    return {
        "files": len(paths),
        "tensors_per_file": n_tensors,
        "header_bytes_per_file": max(headers),
        "file_size_bytes_per_file": max(sizes),
        "inspect_seconds_total": round(total_s, 4),
        "inspect_seconds_per_model": round(total_s / len(paths), 6),
        "bytes_read_per_model_max": max(bytes_read),
        "bytes_read_total": sum(bytes_read),
        "runs": runs,
        "meets_bytes_target": all(b <= h + TARGET_EXTRA_BYTES for b, h in zip(bytes_read, headers)),
    }


def write_markdown(path, data):
    g = data["gguf"]
    s = data["safetensors"]
    lines = [
        "# Model inspection benchmark",
        "",
        f"Generated by `benchmarks/bench_inspect.py` on {data['environment']['date']} "
        f"(Python {data['environment']['python']}, gguf {data['environment']['gguf']}, "
        f"{data['environment']['machine']}).",
        "",
        "## GGUF: 7B-like Q4_K_M header, sparse file",
        "",
        "| | value |",
        "|---|---|",
        f"| file size | {g['file_size_bytes']:,} bytes (sparse) |",
        f"| header (to aligned data offset) | {g['data_offset']:,} bytes |",
        f"| vocabulary / merges / tensors | {g['vocab_size']:,} / {g['merges']:,} / {g['tensors']} |",
        f"| parameters | {g['params']:,} |",
        f"| model_inspect (best of {g['runs']['inspect']}) | {g['inspect_seconds']:.4f} s |",
        f"| gguf.GGUFReader (best of {g['runs']['ggufreader']}) | {g['ggufreader_seconds']:.3f} s |",
        f"| speed-up | **{g['speedup']}x** (target >= {g['target_speedup']:.0f}x) |",
        f"| bytes read by model_inspect | {g['inspect_bytes_read']:,} "
        f"(header + {g['inspect_extra_bytes_over_header']:,}; limit header + 4 MiB) |",
        f"| targets met | speed: {g['meets_speed_target']}, bytes: {g['meets_bytes_target']} |",
        "",
        f"## safetensors: {s['files']} headers",
        "",
        "| | value |",
        "|---|---|",
        f"| tensors per file | {s['tensors_per_file']} |",
        f"| header per file | {s['header_bytes_per_file']:,} bytes |",
        f"| total (best of {s['runs']}) | {s['inspect_seconds_total']:.4f} s |",
        f"| per model | {s['inspect_seconds_per_model'] * 1000:.3f} ms |",
        f"| bytes read per model (max) | {s['bytes_read_per_model_max']:,} |",
        f"| bytes target met | {s['meets_bytes_target']} |",
        "",
    ]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of model_inspect (best is kept)")
    parser.add_argument("--reader-runs", type=int, default=3, help="runs of GGUFReader (best is kept)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-inspect-") as tmp:
        gguf_path, params, _n = build_gguf(tmp)
        st_dir = os.path.join(tmp, "safetensors")
        os.mkdir(st_dir)
        st_paths, n_tensors = build_safetensors(st_dir)
        data = {
            "environment": {
                "date": time.strftime("%Y-%m-%d"),
                "python": platform.python_version(),
                "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            },
            "gguf": bench_gguf(gguf_path, params, args.runs, args.reader_runs),
            "safetensors": bench_safetensors(st_paths, n_tensors, args.runs),
        }

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "inspect.json"), "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    write_markdown(os.path.join(args.out, "inspect.md"), data)
    g = data["gguf"]
    s = data["safetensors"]
    print(
        f"GGUF 7B header {g['data_offset']:,} bytes: model_inspect {g['inspect_seconds']:.4f} s, "
        f"GGUFReader {g['ggufreader_seconds']:.3f} s, {g['speedup']}x; "
        f"bytes read {g['inspect_bytes_read']:,} (header + {g['inspect_extra_bytes_over_header']:,})"
    )
    print(
        f"safetensors x{s['files']}: {s['inspect_seconds_per_model'] * 1000:.3f} ms per model, "
        f"max {s['bytes_read_per_model_max']:,} bytes read per model"
    )
    ok = g["meets_speed_target"] and g["meets_bytes_target"] and s["meets_bytes_target"]
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def _dist_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
