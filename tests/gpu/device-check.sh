#!/usr/bin/env bash
# The check a real NVIDIA GPU allows (issue 12), on a lent device machine: no systemd,
# root, no network, 16 cores, at most 10 minutes. Prepare its inputs here first with
# tests/gpu/prepare.sh (writes .cache/device/), then run it there from the repository
# root, carrying .cache/device:
#
#   tests/gpu/device-check.sh            # prints everything; copies the logs to $OUT
#
# A dry run of the same steps on a machine without a GPU (to check the script itself):
#   LLAMA_SERVER_BIN=<a CPU llama-server> SHAPE=tiny tests/gpu/device-check.sh
#
# 1. builds llama-server for CUDA from the pinned llama.cpp source (GGML_CUDA, the
#    card's own architecture), as the llamacpp backend's GPU variant needs it;
# 2. runs the project's GPU detection (plugins/module_utils/gpu_detect.py) on the
#    real card and its real nvidia-smi, and the verify filter on what it found;
# 3. writes a random-weight GGUF of Llama-2-7B's real shape (F16, about 13 GB) with
#    tests/fixtures/make_tiny_gguf.py, inspects it (model_inspect.py) and plans a
#    llamacpp instance for it (serving_plan.py), as the preflight would;
# 4. starts llama-server with the planned arguments, waits for /health, asks for a
#    completion, and prints detected VRAM, planned VRAM and the VRAM nvidia-smi
#    measures while it serves, side by side.
set -euo pipefail
root=$(pwd)
prep="$root/.cache/device"
work=${DEVICE_CHECK_WORK:-/tmp/device-check}
out=${OUT:-$work/out}
port=18080
shape=${SHAPE:-7b}
gguf="$work/llama-$shape-shape.gguf"
server_bin=${LLAMA_SERVER_BIN:-$work/build/bin/llama-server}
smi() { if command -v nvidia-smi >/dev/null; then nvidia-smi "$@"; else echo "(no nvidia-smi: dry run)"; fi; }
mkdir -p "$work" "$out"
exec > >(tee "$out/device-check.log") 2>&1
step() { printf '\n== %s (%s s)\n' "$1" "$SECONDS"; }
[[ -f "$prep/llama.cpp-src.tar.gz" && -f "$prep/vocab.gguf" ]] || {
  echo "missing $prep: run tests/gpu/prepare.sh on the development machine first" >&2
  exit 2
}

step "the card, as nvidia-smi reports it"
smi
smi --query-gpu=pci.bus_id,name,memory.total,driver_version --format=csv,noheader,nounits
ls -l /sys/bus/pci/devices/ 2>&1 | head -5 || true
cat /proc/driver/nvidia/version 2>&1 || true

step "build llama-server for CUDA"
if [[ ! -x "$server_bin" ]]; then
  rm -rf "$work/src" && mkdir -p "$work/src"
  tar -xzf "$prep/llama.cpp-src.tar.gz" -C "$work/src"
  cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-native}" -DGGML_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=ON >"$work/configure.log"
  timeout 420 cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log" \
    || { tail -40 "$work/build.log"; exit 1; }
fi
"$server_bin" --version

step "write a $shape-shaped GGUF"
[[ -d "$work/src/gguf-py" ]] || { mkdir -p "$work/src" && tar -xzf "$prep/llama.cpp-src.tar.gz" -C "$work/src" ./gguf-py; }
PYTHONPATH="$work/src/gguf-py" python3 tests/fixtures/make_tiny_gguf.py --shape "$shape" \
  --vocab "$prep/vocab.gguf" --output "$gguf"
ls -l "$gguf"

step "detect, inspect, plan, verify (the project's own code)"
python3 - "$work" "$port" "$gguf" <<'PY' | tee "$work/plan.json.log"
import json, os, shutil, subprocess, sys
sys.path.insert(0, "plugins/module_utils")
sys.path.insert(0, "plugins/filter")
import gpu_detect, model_inspect, serving_plan, verify

work, port = sys.argv[1], int(sys.argv[2])
def run(args):
    p = subprocess.run(args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr
gpu = gpu_detect.gpu_facts("/", run=run, which=shutil.which)
print("gpu_facts:", json.dumps(gpu, indent=1))
model = sys.argv[3]
facts = model_inspect.inspect_paths([model])
mem = int(open("/proc/meminfo").read().split()[1]) // 1024
inst = {"name": "probe", "backend": "llamacpp", "model": model, "port": port, "ctx_size": 4096, "bind": "127.0.0.1"}
plan = serving_plan.plan_host("device", [inst], facts, gpu, mem)
print("\n".join(serving_plan.plan_table(plan)))
print("errors:", plan["errors"], "warnings:", plan["warnings"])
p = plan["instances"][0]
print("reasons:", json.dumps(p["reasons"], indent=1))
print("verify_gpu_driver:", json.dumps(verify.verify_gpu_driver(gpu), indent=1))
json.dump({"gpu": gpu, "plan": p}, open(os.path.join(work, "plan.json"), "w"), indent=1)
PY

step "serve the plan with the CUDA llama-server"
mapfile -t args < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["plan"]["args"]))' "$work/plan.json")
echo "llama-server ${args[*]}"
"$server_bin" "${args[@]}" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { tail -40 "$work/server.log"; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "Hello", "max_tokens": 16}' | head -c 400; echo
measured=$(smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F', ' -v p=$server '$1 == p {print $2}')
total_used=$(smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
grep -E "offloaded|CUDA0 (model|KV|compute) buffer size" "$work/server.log" || true

step "side by side"
python3 - "$work/plan.json" "${measured:-}" "$total_used" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{'detected VRAM (gpu_facts)':32} {d['gpu']['total_vram_mib']} MiB ({d['gpu']['vendor']}, {len(d['gpu']['devices'])} device(s))")
print(f"{'planned VRAM (serving_plan)':32} {d['plan']['estimated_vram_mib']} MiB, gpu_layers {d['plan']['gpu_layers']}, device {d['plan']['device']}")
print(f"{'measured, llama-server process':32} {sys.argv[2] or 'not listed'} MiB")
print(f"{'measured, whole GPU in use':32} {sys.argv[3]} MiB")
PY
cp "$work/server.log" "$work/build.log" "$work/plan.json" "$out/" 2>/dev/null || true
echo "done in $SECONDS s"
