"""Benchmark the serving planner: 5 hosts x 20 instances, planned as plan.yml plans them.

Each host has one NVIDIA GPU (24 GiB) and 64 GiB of RAM; its 20 instances mix the three
backends over GGUF (a Qwen2.5-7B-like Q4_K_M) and safetensors models, with user flags,
cache types and the partial_offload allowance, so the ledger, the flag checks and every
renderer run. The model facts are given (inspection has its own benchmark,
bench_inspect.py): what is timed is serving_plan.plan_host for the 5 hosts together,
best of N runs, and the plan table (serving_plan.plan_table), as the deploy prints it.

Run: .venv/bin/python benchmarks/bench_plan.py
Target: under 1 s for the 5 x 20 instances (on top of inspection).
Writes benchmarks/results/plan.json and plan.md.
"""

import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))

import serving_plan  # noqa: E402

MIB = 1024 * 1024
TARGET_SECONDS = 1.0
HOSTS = 5
INSTANCES = 20
GPU = {
    "vendor": "nvidia",
    "total_vram_mib": 24576,
    "devices": [{"vendor": "nvidia", "pci_slot": "0000:01:00.0"}],
}
ROOT_DIR = "/media/data/models"


def gguf_model(i):
    return {
        "format": "gguf",
        "name": f"Qwen2.5-7B-Instruct-{i}",
        "architecture": "qwen2",
        "params": 7_615_616_512,
        "quantization": {"name": "Q4_K_M", "bits": 4.9},
        "context_length": 32768,
        "layers": 28,
        "heads": 28,
        "kv_heads": 4,
        "key_length": 128,
        "value_length": 128,
        "embedding_length": 3584,
        "size_bytes": 4683 * MIB,
        "complete": True,
        "servable": True,
        "is_projector": False,
        "trust_remote_code_required": False,
        "name_tags": {"purpose": ["instruct"], "size_label": "7B", "quant_label": "Q4_K_M"},
        "reasons": [],
        "error": None,
    }


def hf_model(i):
    model = gguf_model(i)
    model.update(format="safetensors", quantization={"name": "BF16", "bits": 16.0}, size_bytes=15_231_233_024)
    return model


def host_inputs(h):
    instances, models = [], {}
    for i in range(INSTANCES):
        kind = i % 4
        name = f"m{i}"
        if kind == 3:
            models[f"{ROOT_DIR}/{name}"] = hf_model(i)
            inst = {
                "name": f"tg{i}",
                "backend": "textgen",
                "model": name,
                "port": 7000 + i,
                "api_port": 8000 + 10 * i,
            }
        else:
            models[f"{ROOT_DIR}/{name}.gguf"] = gguf_model(i)
            inst = {"model": f"{name}.gguf", "partial_offload": True}
            if kind == 0:
                inst.update(name=f"ll{i}", backend="llamacpp", port=9000 + i, flags=["-ctk q8_0 -ctv q8_0"])
            elif kind == 1:
                inst.update(
                    name=f"ol{i}",
                    backend="ollama",
                    port=11400 + i,
                    env={"OLLAMA_KV_CACHE_TYPE": "q8_0", "OLLAMA_FLASH_ATTENTION": "1"},
                )
            else:
                inst.update(
                    name=f"tg{i}",
                    backend="textgen",
                    port=7000 + i,
                    api_port=8000 + 10 * i,
                    flags=["--cache-type q8_0"],
                )
        instances.append(inst)
    return f"host{h}", instances, models


def plan_all(inputs):
    plans = [
        serving_plan.plan_host(host, instances, models, GPU, 65536, (), ROOT_DIR, "127.0.0.1")
        for host, instances, models in inputs
    ]
    return plans, serving_plan.plan_table(plans)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    inputs = [host_inputs(h) for h in range(HOSTS)]
    best = None
    for _ in range(args.runs):
        start = time.perf_counter()
        plans, table = plan_all(inputs)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    planned = sum(len(p["instances"]) for p in plans)
    refused = sum(1 for p in plans for i in p["instances"] if i["refused"])
    result = {
        "hosts": HOSTS,
        "instances_per_host": INSTANCES,
        "instances_planned": planned,
        "instances_refused": refused,
        "table_lines": len(table),
        "best_seconds": round(best, 4),
        "target_seconds": TARGET_SECONDS,
        "met": best < TARGET_SECONDS,
        "runs": args.runs,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "plan.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)
        fh.write("\n")
    with open(os.path.join(args.out, "plan.md"), "w", encoding="utf-8") as fh:
        fh.write(
            "# Planner benchmark\n\n"
            "`.venv/bin/python benchmarks/bench_plan.py` (`make bench`): serving_plan.plan_host for "
            f"{HOSTS} hosts x {INSTANCES} instances (three backends, GGUF and safetensors, cache types, "
            "the ledger with partial_offload) and the plan table, best of "
            f"{args.runs} runs, model facts given.\n\n"
            "| measure | value | target |\n| --- | ---: | ---: |\n"
            f"| planning time, {planned} instances | {best:.4f} s | < {TARGET_SECONDS:.0f} s |\n"
            f"| instances refused by the ledger (a 24 GiB card each) | {refused} | |\n\n"
            f"Python {result['python']}, {result['machine']}. Target {'met' if result['met'] else 'MISSED'}.\n"
        )
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
