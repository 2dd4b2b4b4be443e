"""Benchmark llama.cpp's own llama-server against llama-cpp-python's OpenAI server.

Both serve the lab's tiny model ($AILAB_CACHE/models/tiny-llama-F32.gguf) on this
machine, in this run, on loopback, with the same context (512), threads (2), batch sizes
(512), one slot and no flash attention. A round starts one server, waits for readiness,
sends one warm-up request, then N streamed /v1/completions requests (fixed prompt,
max_tokens, temperature 0, repeat_penalty 1 since llama-cpp-python defaults to 1.1, a
fixed seed), and stops it before the other server starts; rounds alternate which server
goes first, so load that drifts on the machine falls on both. TTFT is the time from
sending the request to the first streamed chunk that carries text; generation tok/s is
the tokens after the first over the time after the first (to the last chunk with text;
tokens from the usage field where the stream gives one, else the chunks with text).
Medians over all timed requests are reported, and the fastest request, with the ratios
llama-server / llama-cpp-python (TTFT: below 1 is faster; tok/s: above 1 is faster).

The prompt is the same every time, so both servers reuse its KV cache after the
warm-up (llama-server's cache_prompt, llama-cpp-python's prefix match): TTFT is the
serving path plus little prompt work, as for a chat that resends its history.

llama-server comes from the release-layout archive tests/fixtures/build_llama_server.sh
makes ($AILAB_CACHE/llama-server/llama-<tag>-bin-ubuntu-x64.tar.gz, unpacked into a
temporary folder). llama-cpp-python is built once per machine from the sdist of the same
llama.cpp source ($AILAB_CACHE/sdist/llama_cpp_python-<version>.tar.gz) into a wheel under
$AILAB_CACHE/wheelhouse/, with the archive's portable CMake flags (GGML_NATIVE=OFF, no
AVX; several minutes on 2 cores, under a lock), and installed with its `server` extra
into its own venv, $AILAB_CACHE/bench-venv, never the project's.

Run: .venv/bin/python benchmarks/bench_llama_server.py [--rounds 3] [--requests 5] [--max-tokens 64]
Target: none; a comparison. Both servers' versions, the flags, N and every request's
numbers (with the 1-min load average around each round) are recorded.
Writes benchmarks/results/llama-server.json and llama-server.md.
"""

import argparse
import contextlib
import datetime
import fcntl
import glob
import hashlib
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CACHE = os.environ.get("AILAB_CACHE", "/var/cache/ailab")
LLAMACPP_PYTHON_VERSION = os.environ.get("LLAMACPP_PYTHON_VERSION", "0.3.36")
MODEL = os.path.join(CACHE, "models", "tiny-llama-F32.gguf")
HOST = "127.0.0.1"
CTX = 512
THREADS = 2
BATCH = 512
SEED = 42
PROMPT = "Once upon a time, in a small village at the edge of the forest, there lived"
# The same portable build as tests/fixtures/build_llama_server.sh (x86-64-v2, no AVX),
# so the two servers run the same kernels.
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF "
    "-DGGML_BMI2=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
)
READY_TIMEOUT = 120
REQUEST_TIMEOUT = 120


def role_tag():
    """The llama-server tag the llamacpp_server role pins (the archive is named by it)."""
    path = os.path.join(ROOT, "roles", "llamacpp_server", "defaults", "main.yml")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("llamacpp_server_version:"):
                return line.split(":", 1)[1].split("#")[0].strip().strip("\"'")
    raise SystemExit(f"no llamacpp_server_version in {path}")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_quiet(cmd, what, env=None):
    """Run a command, keeping its output in memory; show its tail only when it fails."""
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:])
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return proc.stdout


def prepare_llama_cpp_python(python):
    """Build the llama-cpp-python wheel once (cached) and install it into the bench venv.

    Returns (venv python, facts about the wheel and its build)."""
    sdist = os.path.join(CACHE, "sdist", f"llama_cpp_python-{LLAMACPP_PYTHON_VERSION}.tar.gz")
    if not os.path.isfile(sdist):
        raise SystemExit(f"{sdist} is missing (tests/fixtures/make_tiny_gguf.py downloads it)")
    wheelhouse = os.path.join(CACHE, "wheelhouse")
    venv = os.path.join(CACHE, "bench-venv")
    os.makedirs(wheelhouse, exist_ok=True)
    pattern = os.path.join(wheelhouse, f"llama_cpp_python-{LLAMACPP_PYTHON_VERSION}-*.whl")
    flags_file = os.path.join(wheelhouse, f"llama_cpp_python-{LLAMACPP_PYTHON_VERSION}.cmake-args")
    vpython = os.path.join(venv, "bin", "python")
    facts = {"sdist": os.path.basename(sdist), "cmake_args": CMAKE_ARGS, "wheel_built_now": False}
    with open(os.path.join(wheelhouse, f"llama_cpp_python-{LLAMACPP_PYTHON_VERSION}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(vpython):
            run_quiet([python, "-m", "venv", venv], "python -m venv")
        wheels = sorted(glob.glob(pattern))
        built_with = None
        if os.path.isfile(flags_file):
            with open(flags_file, encoding="utf-8") as fh:
                built_with = json.load(fh)
        if not wheels or not built_with or built_with.get("cmake_args") != CMAKE_ARGS:
            for stale in wheels:
                os.remove(stale)
            print(f"building llama-cpp-python {LLAMACPP_PYTHON_VERSION} (minutes)", file=sys.stderr)
            env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS)
            env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
            with tempfile.TemporaryDirectory() as scratch:
                start = time.monotonic()
                run_quiet(
                    [vpython, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", scratch, sdist],
                    "pip wheel llama-cpp-python",
                    env,
                )
                seconds = time.monotonic() - start
                built = glob.glob(os.path.join(scratch, "*.whl"))
                if len(built) != 1:
                    raise SystemExit(f"pip wheel left {built}")
                wheel = os.path.join(wheelhouse, os.path.basename(built[0]))
                shutil.move(built[0], wheel + ".tmp")
                os.replace(wheel + ".tmp", wheel)
            built_with = {
                "cmake_args": CMAKE_ARGS,
                "build_seconds": round(seconds, 1),
                "build_cpus": os.cpu_count(),
                "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "sha256": sha256(wheel),
            }
            with open(flags_file + ".tmp", "w", encoding="utf-8") as fh:
                json.dump(built_with, fh, indent=2)
            os.replace(flags_file + ".tmp", flags_file)
            facts["wheel_built_now"] = True
            wheels = [wheel]
        wheel = wheels[0]
        facts.update(
            wheel=os.path.basename(wheel),
            wheel_sha256=built_with.get("sha256") or sha256(wheel),
            wheel_build_seconds=built_with.get("build_seconds"),
            wheel_built=built_with.get("built"),
        )
        marker = os.path.join(venv, ".llama-cpp-python-wheel")
        installed = None
        if os.path.isfile(marker):
            with open(marker, encoding="utf-8") as fh:
                installed = fh.read().strip()
        if installed != facts["wheel_sha256"]:
            print(f"installing {facts['wheel']}[server] into {venv}", file=sys.stderr)
            # The wheel file itself, so no other build of the same version is picked.
            run_quiet(
                [vpython, "-m", "pip", "install", "--quiet", "--force-reinstall", f"{wheel}[server]"],
                "pip install llama-cpp-python[server]",
            )
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write(facts["wheel_sha256"] + "\n")
    return vpython, facts


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_ready(proc, port, path, log):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}) before it was ready:\n{tail(log)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"server not ready on port {port} in {READY_TIMEOUT} s:\n{tail(log)}")


def tail(path, size=3000):
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()[-size:]


def stream_completion(port, max_tokens):
    """One streamed /v1/completions request; returns its timings and what it produced."""
    body = json.dumps(
        {
            "prompt": PROMPT,
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": SEED,
            # llama-cpp-python's server defaults to 1.1, llama-server to 1.0 (off).
            "repeat_penalty": 1.0,
            "stream": True,
        }
    )
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"/v1/completions answered {resp.status}: {resp.read()[:500]!r}")
    first = last = None
    chunks, text, usage, finish = 0, [], None, None
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        event = json.loads(data)
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            finish = choice.get("finish_reason") or finish
            if choice.get("text"):
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
                chunks += 1
                text.append(choice["text"])
    conn.close()
    if first is None:
        raise SystemExit("the stream carried no text")
    tokens = (usage or {}).get("completion_tokens") or chunks
    gen = last - first
    return {
        "ttft_ms": round((first - start) * 1000, 3),
        "text_chunks": chunks,
        "usage_completion_tokens": (usage or {}).get("completion_tokens"),
        "tokens": tokens,
        "gen_seconds": round(gen, 6),
        "tok_per_s": round((tokens - 1) / gen, 2) if tokens > 1 and gen > 0 else None,
        "finish_reason": finish,
        "text": "".join(text),
    }


def run_server(name, cmd, env, ready_path, requests, max_tokens, scratch):
    """Start a server, wait for it, warm it up, time the requests, stop it: one round."""
    port = free_port()
    cmd = [arg.replace("{port}", str(port)) for arg in cmd]
    log = os.path.join(scratch, f"{name}.log")
    load_before = os.getloadavg()[0]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        start = time.monotonic()
        wait_ready(proc, port, ready_path, log)
        ready = time.monotonic() - start
        warmup = stream_completion(port, max_tokens)
        runs = [stream_completion(port, max_tokens) for _ in range(requests)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "ready_seconds": round(ready, 2),
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "warmup": warmup,
        "requests": runs,
    }


def summarize(cmd, rounds):
    """Medians (and bests) over every timed request of every round."""
    runs = [r for rnd in rounds for r in rnd["requests"]]
    rates = [r["tok_per_s"] for r in runs if r["tok_per_s"] is not None]
    return {
        "command": [os.path.basename(cmd[0])]
        + [a.replace(MODEL, "$AILAB_CACHE/models/tiny-llama-F32.gguf") for a in cmd[1:]],
        "rounds": rounds,
        "timed_requests": len(runs),
        "median_ttft_ms": round(statistics.median(r["ttft_ms"] for r in runs), 3),
        "median_tok_per_s": round(statistics.median(rates), 2) if rates else None,
        "best_ttft_ms": min(r["ttft_ms"] for r in runs),
        "best_tok_per_s": max(rates) if rates else None,
        "median_tokens": statistics.median(r["tokens"] for r in runs),
        "median_ready_seconds": statistics.median(rnd["ready_seconds"] for rnd in rounds),
        "max_loadavg_1min": max(max(rnd["loadavg_1min_before"], rnd["loadavg_1min_after"]) for rnd in rounds),
    }


def ratio(a, b, digits=3):
    return round(a / b, digits) if a and b else None


def machine_info():
    model = None
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=5, help="timed requests per server (after one warm-up)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="start-measure-stop rounds per server, alternating"
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    if not os.path.isfile(MODEL):
        raise SystemExit(f"{MODEL} is missing (tests/fixtures/make_tiny_gguf.py makes it)")
    tag = role_tag()
    archive = os.path.join(CACHE, "llama-server", f"llama-{tag}-bin-ubuntu-x64.tar.gz")
    if not os.path.isfile(archive):
        raise SystemExit(f"{archive} is missing (tests/fixtures/build_llama_server.sh builds it)")
    vpython, wheel_facts = prepare_llama_cpp_python(sys.executable)
    lcp_version = run_quiet(
        [vpython, "-c", "import llama_cpp; print(llama_cpp.__version__)"], "import llama_cpp"
    ).strip()

    with tempfile.TemporaryDirectory(prefix="bench-llama-server-") as scratch:
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="tar")
        binary = os.path.join(scratch, f"llama-{tag}", "llama-server")
        proc = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
        server_version = " ".join((proc.stdout + proc.stderr).split())
        common = {"ctx": CTX, "threads": THREADS, "batch": BATCH, "ubatch": BATCH, "slots": 1, "seed": SEED}
        llama_server_cmd = [
            binary,
            "--model", MODEL,
            "--host", HOST,
            "--port", "{port}",
            "--ctx-size", str(CTX),
            "--threads", str(THREADS),
            "--threads-batch", str(THREADS),
            "--batch-size", str(BATCH),
            "--ubatch-size", str(BATCH),
            "--parallel", "1",
            "--flash-attn", "off",
            "--seed", str(SEED),
            "--no-webui",
        ]  # fmt: skip
        lcp_cmd = [
            vpython, "-m", "llama_cpp.server",
            "--model", MODEL,
            "--host", HOST,
            "--port", "{port}",
            "--n_ctx", str(CTX),
            "--n_threads", str(THREADS),
            "--n_threads_batch", str(THREADS),
            "--n_batch", str(BATCH),
            "--n_ubatch", str(BATCH),
            "--flash_attn", "false",
            "--seed", str(SEED),
            "--verbose", "false",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "CONFIG_FILE")}
        plan = [
            ("llama-server", llama_server_cmd, "/health"),
            ("llama-cpp-python", lcp_cmd, "/v1/models"),
        ]
        rounds = {name: [] for name, _, _ in plan}
        for rnd in range(args.rounds):
            # Alternate which server goes first, so drifting load on the machine falls on both.
            for name, cmd, ready_path in plan if rnd % 2 == 0 else plan[::-1]:
                print(f"round {rnd + 1}/{args.rounds}: {name}", file=sys.stderr)
                rounds[name].append(
                    run_server(name, cmd, env, ready_path, args.requests, args.max_tokens, scratch)
                )
        servers = {name: summarize(cmd, rounds[name]) for name, cmd, _ in plan}
    ls, lcp = servers["llama-server"], servers["llama-cpp-python"]
    ratios = {
        "ttft_llama_server_over_llama_cpp_python": ratio(ls["median_ttft_ms"], lcp["median_ttft_ms"]),
        "tok_per_s_llama_server_over_llama_cpp_python": ratio(
            ls["median_tok_per_s"], lcp["median_tok_per_s"]
        ),
        "best_ttft_llama_server_over_llama_cpp_python": ratio(ls["best_ttft_ms"], lcp["best_ttft_ms"]),
        "best_tok_per_s_llama_server_over_llama_cpp_python": ratio(
            ls["best_tok_per_s"], lcp["best_tok_per_s"]
        ),
    }
    texts = {
        r["text"] for e in servers.values() for rnd in e["rounds"] for r in [rnd["warmup"], *rnd["requests"]]
    }
    same_text = len(texts) == 1
    for entry in servers.values():
        for rnd in entry["rounds"]:
            for r in [rnd["warmup"], *rnd["requests"]]:
                r.pop("text")
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
        "model": os.path.basename(MODEL),
        "model_sha256": sha256(MODEL),
        "versions": {
            "llama_server": server_version,
            "llama_server_archive": os.path.basename(archive),
            "llama_cpp_python": lcp_version,
        },
        "llama_cpp_python_wheel": wheel_facts,
        "settings": dict(
            common,
            prompt=PROMPT,
            max_tokens=args.max_tokens,
            temperature=0,
            repeat_penalty=1.0,
            requests_per_round=args.requests,
            rounds=args.rounds,
            flash_attn=False,
        ),
        "servers": servers,
        "ratios": ratios,
        "same_greedy_text": same_text,
        "greedy_texts": sorted(texts),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "llama-server.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    mach = result["machine"]
    build = (
        f"built in {wheel_facts['wheel_build_seconds']} s this run"
        if wheel_facts["wheel_built_now"]
        else f"cached wheel (built {wheel_facts['wheel_built']} in {wheel_facts['wheel_build_seconds']} s)"
    )
    n = args.rounds * args.requests
    lines = [
        "# llama-server against llama-cpp-python",
        "",
        "`.venv/bin/python benchmarks/bench_llama_server.py` (`make bench`): the tiny model "
        f"({result['model']}) served by llama.cpp's llama-server and by llama-cpp-python's OpenAI "
        f"server on this machine in one run; context {CTX}, {THREADS} threads, batch {BATCH}, one slot, "
        f"flash attention off. {args.rounds} rounds, alternating which server goes first; in each a "
        "server is started, waited for, warmed up with one request, sent "
        f"{args.requests} streamed /v1/completions requests and stopped before the other starts "
        f"(fixed prompt, max_tokens {args.max_tokens}, temperature 0, repeat_penalty 1, seed {SEED}). "
        f"Medians over the {n} timed requests per server; best = fastest single request. "
        "TTFT: request sent to the first chunk with text; tok/s: tokens after the first over the "
        "time after the first.",
        "",
        "| measure | llama-server | llama-cpp-python | llama-server / llama-cpp-python |",
        "| --- | ---: | ---: | ---: |",
        f"| median TTFT (ms) | {ls['median_ttft_ms']:.1f} | {lcp['median_ttft_ms']:.1f} "
        f"| {ratios['ttft_llama_server_over_llama_cpp_python']} |",
        f"| median generation tok/s | {ls['median_tok_per_s']:.0f} | {lcp['median_tok_per_s']:.0f} "
        f"| {ratios['tok_per_s_llama_server_over_llama_cpp_python']} |",
        f"| best TTFT (ms) | {ls['best_ttft_ms']:.1f} | {lcp['best_ttft_ms']:.1f} "
        f"| {ratios['best_ttft_llama_server_over_llama_cpp_python']} |",
        f"| best generation tok/s | {ls['best_tok_per_s']:.0f} | {lcp['best_tok_per_s']:.0f} "
        f"| {ratios['best_tok_per_s_llama_server_over_llama_cpp_python']} |",
        f"| median tokens per request | {ls['median_tokens']} | {lcp['median_tokens']} | |",
        f"| median ready after start (s) | {ls['median_ready_seconds']} | {lcp['median_ready_seconds']} | |",
        f"| highest 1-min load average | {ls['max_loadavg_1min']} | {lcp['max_loadavg_1min']} | |",
        "",
        "Per request, by round (TTFT ms / tok/s):",
        "",
    ]
    for name, entry in servers.items():
        for i, rnd in enumerate(entry["rounds"], 1):
            per = ", ".join(f"{r['ttft_ms']:.1f} / {r['tok_per_s']:.0f}" for r in rnd["requests"])
            lines.append(f"- {name}, round {i}: {per}")
    lines += [
        "",
        f"Versions: llama-server `{server_version}` ({result['versions']['llama_server_archive']}); "
        f"llama-cpp-python {lcp_version} ({wheel_facts['wheel']}, {build}, CMAKE_ARGS `{CMAKE_ARGS}`), "
        "in its own venv. The greedy outputs of every request of both servers "
        f"{'are the same text' if same_text else 'DIFFER'}.",
        "",
        f"{result['date']}, {mach['cpus']} CPUs ({mach['cpu_model']}), {mach['machine']}, "
        f"Python {mach['python']}. Ratios: TTFT below 1 and tok/s above 1 mean llama-server is faster.",
    ]
    busiest = max(e["max_loadavg_1min"] for e in servers.values())
    if busiest > (mach["cpus"] or 1):
        lines += [
            "",
            f"Caution: the 1-min load average reached {busiest} on {mach['cpus']} CPUs during the run: "
            "other work shared the CPUs, so single requests vary a lot; rerun on an idle machine.",
        ]
    with open(os.path.join(args.out, "llama-server.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
