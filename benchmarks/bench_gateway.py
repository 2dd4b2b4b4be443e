"""Benchmark the latency and throughput the lab's gateway (LiteLLM's proxy) adds.

One run on this machine, on loopback: llama-server serves the lab's tiny model
($AILAB_CACHE/models/tiny-llama-F32.gguf, context 512) with the flags the planner
renders for an instance (upstream's slots and threads, --metrics, the instance's key in
--api-key-file), and LiteLLM's proxy runs in front of it as the gateway role deploys it: the role's
own templates/etc/ailab-gateway/config.yaml.j2 rendered with one route to that
llama-server (and its key), the role's files/keyauth.py beside it as custom_auth, and
the unit's environment (LITELLM_LOCAL_MODEL_COST_MAP=True, HF_HUB_OFFLINE=1,
LITELLM_MASTER_KEY, LITELLM_CLIENT_KEYS_FILE; a state folder as working directory and
HOME). Clients use a client key, as the lab's users do. The gateway is ready when its
/v1/models lists the route.

TTFT: after one warm-up request each way, N streamed /v1/completions requests straight
to llama-server and N through the gateway, in pairs whose order alternates (fixed
prompt, max_tokens, temperature 0, a fixed seed); TTFT is the time from sending the
request to the first streamed chunk that carries text. Medians and the ratio
gateway / direct (above 1: what the gateway adds). The prompt is the same every time, so
llama-server reuses its KV cache and TTFT is mostly the serving path, which is what the
gateway adds to.

Throughput: C client threads (stdlib http.client, one kept-alive connection each) send
non-streamed /v1/completions requests (small max_tokens) for D seconds through the
gateway, then the same straight to llama-server; completed requests (200 with text) and
errors are counted, completions/s is the completed requests over the time from the start
to the last client's end (no request starts after D seconds), with the ratio
gateway / direct (below 1: the gateway's cost). The clients, LiteLLM and llama-server
share this machine's CPUs, so this is the gateway's cost where it shares a host with
its model, as on a small lab host.

Everything is bounded: a timeout on every request, on readiness and on the whole run
(--max-seconds), and both servers are stopped in a finally. LiteLLM is installed from
the wheelhouse tests/fixtures/build_gateway_wheelhouse.sh packs
($AILAB_CACHE/gateway/litellm-<version>-wheels.tar.gz, the version the gateway role
pins) with pip --no-index into its own venv, $AILAB_CACHE/gateway-bench-venv (under a
lock, reused while the version and the archive are the same), never the project's.
llama-server comes from $AILAB_CACHE/llama-server/llama-<tag>-bin-ubuntu-x64.tar.gz, as
in bench_llama_server.py. Plain http: the gateway's TLS is not measured.

Run: .venv/bin/python benchmarks/bench_gateway.py [--requests 20] [--duration 30] [--clients 8] [--max-tokens 8]
Target: none; the cost of the gateway as ratios. The versions, both command lines, the
rendered config (keys redacted), N, every TTFT request, the load's counts and latency
percentiles and the 1-min load average around each phase are recorded.
Writes benchmarks/results/gateway.json and gateway.md.
"""

import argparse
import contextlib
import datetime
import fcntl
import http.client
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

import jinja2
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_llama_server import (  # noqa: E402
    CACHE,
    CTX,
    HOST,
    MODEL,
    PROMPT,
    ROOT,
    SEED,
    free_port,
    machine_info,
    ratio,
    role_tag,
    run_quiet,
    sha256,
    tail,
    wait_ready,
)

ROLE = os.path.join(ROOT, "roles", "gateway")
VENV = os.path.join(CACHE, "gateway-bench-venv")
ROUTE = "tiny-llama"
SERVED = os.path.basename(MODEL)  # llama-server's --alias: the file name, as the planner sets it
REQUEST_TIMEOUT = 60
ROUTE_TIMEOUT = 120


def litellm_pin():
    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as fh:
        return str(yaml.safe_load(fh)["gateway_litellm_version"])


def prepare_litellm(python, version):
    """Install litellm[proxy]==version from the wheelhouse into the bench's own venv.

    Returns (venv folder, facts about the archive and the install)."""
    archive = os.path.join(CACHE, "gateway", f"litellm-{version}-wheels.tar.gz")
    if not os.path.isfile(archive):
        raise SystemExit(f"{archive} is missing (tests/fixtures/build_gateway_wheelhouse.sh packs it)")
    with open(archive + ".sha256", encoding="utf-8") as fh:
        digest = fh.read().strip()
    wanted = f"litellm[proxy]=={version} {digest}"
    marker = os.path.join(VENV, ".installed")
    facts = {"wheelhouse": os.path.basename(archive), "wheelhouse_sha256": digest, "installed_now": False}
    os.makedirs(os.path.dirname(VENV), exist_ok=True)
    with open(VENV + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = None
        with contextlib.suppress(OSError), open(marker, encoding="utf-8") as fh:
            installed = fh.read().strip()
        if installed != wanted:
            print(f"installing litellm[proxy]=={version} from {archive} into {VENV}", file=sys.stderr)
            shutil.rmtree(VENV, ignore_errors=True)
            run_quiet([python, "-m", "venv", VENV], "python -m venv")
            start = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="bench-gateway-wheels-") as wheels:
                with tarfile.open(archive) as tar:
                    tar.extractall(wheels, filter="tar")
                run_quiet(
                    [
                        os.path.join(VENV, "bin", "pip"), "install", "--quiet", "--disable-pip-version-check",
                        "--no-index", "--find-links", os.path.join(wheels, "wheels"),
                        f"litellm[proxy]=={version}",
                    ],
                    "pip install litellm[proxy]",
                )  # fmt: skip
            facts.update(installed_now=True, install_seconds=round(time.monotonic() - start, 1))
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write(wanted + "\n")
    return facts


def render_config(api_base, api_key):
    """The role's config.yaml.j2 with one route, rendered as Ansible would (its filters)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # the template module's default
        keep_trailing_newline=True,
    )
    env.filters["comment"] = lambda text: "#\n" + "".join(f"# {line}\n" for line in text.splitlines()) + "#"
    env.filters["to_json"] = json.dumps
    template = env.get_template("etc/ailab-gateway/config.yaml.j2")
    routes = [{"name": ROUTE, "model": SERVED, "api_base": api_base, "api_key": api_key}]
    return template.render(ansible_managed="Rendered by benchmarks/bench_gateway.py", gateway_routes=routes)


def start(cmd, log, env=None, cwd=None):
    with open(log, "w") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def stop(proc):
    """Stop a server this run started (its process group), waiting at most 15 s, then kill it."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def rss_mib(pid):
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def server_props(port, key):
    """llama-server's /props: its slots and context, as it runs."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/props", headers={"Authorization": f"Bearer {key}"})
        props = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return {
        "total_slots": props.get("total_slots"),
        "n_ctx": (props.get("default_generation_settings") or {}).get("n_ctx"),
    }


def cpu_seconds(pids):
    """(busy CPU seconds of the whole machine, CPU seconds of this process and of pids)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat", encoding="utf-8") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    ours = 0
    for pid in ("self", *pids):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            ours += sum(int(x) for x in fh.read().rsplit(")", 1)[1].split()[11:13])
    return busy / tick, ours / tick


def others_share(before, after, wall):
    """The share of the machine's CPU time that processes other than this run's used."""
    other = (after[0] - before[0]) - (after[1] - before[1])
    return round(max(0.0, other) / (wall * (os.cpu_count() or 1)), 3)


def wait_route(port, key, proc, log):
    """Until the gateway's /v1/models (with a client key) lists the route."""
    deadline = time.monotonic() + ROUTE_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited ({proc.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200 and ROUTE in [m.get("id") for m in json.loads(body).get("data", [])]:
                return
        time.sleep(0.2)
    raise SystemExit(f"the gateway did not list {ROUTE} in {ROUTE_TIMEOUT} s:\n{tail(log)}")


def completion_body(model, max_tokens, stream):
    return json.dumps(
        {
            "model": model,
            "prompt": PROMPT,
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": SEED,
            "stream": stream,
        }
    )


def streamed_ttft(target, max_tokens):
    """One streamed /v1/completions request; the ms to the first chunk with text, and in all."""
    conn = http.client.HTTPConnection(HOST, target["port"], timeout=REQUEST_TIMEOUT)
    try:
        sent = time.perf_counter()
        conn.request(
            "POST", "/v1/completions", completion_body(target["model"], max_tokens, True), target["headers"]
        )
        resp = conn.getresponse()
        if resp.status != 200:
            raise SystemExit(
                f"{target['name']}: /v1/completions answered {resp.status}: {resp.read()[:500]!r}"
            )
        first, chunks = None, 0
        for raw in iter(resp.readline, b""):
            if not raw.startswith(b"data:"):
                continue
            data = raw[5:].strip()
            if data == b"[DONE]":
                break
            if any(c.get("text") for c in json.loads(data).get("choices") or []):
                chunks += 1
                first = first or time.perf_counter()
        done = time.perf_counter()
    finally:
        conn.close()
    if first is None:
        raise SystemExit(f"{target['name']}: the stream carried no text")
    return {
        "ttft_ms": round((first - sent) * 1000, 3),
        "total_ms": round((done - sent) * 1000, 3),
        "text_chunks": chunks,
    }


def client_loop(target, body, stop_at, out):
    """One load client: non-streamed requests on a kept-alive connection until stop_at."""
    conn = None
    while time.monotonic() < stop_at:
        if conn is None:
            conn = http.client.HTTPConnection(HOST, target["port"], timeout=REQUEST_TIMEOUT)
        sent = time.perf_counter()
        try:
            conn.request("POST", "/v1/completions", body, target["headers"])
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 200 and any(c.get("text") for c in json.loads(data).get("choices") or []):
                out["latencies_ms"].append((time.perf_counter() - sent) * 1000)
                continue
            kind = f"http {resp.status}" if resp.status != 200 else "no text"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            kind = type(exc).__name__
            conn.close()
            conn = None
        out["errors"][kind] = out["errors"].get(kind, 0) + 1
    if conn is not None:
        conn.close()


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] if ordered else None


def load(target, clients, duration, max_tokens, pids):
    """C clients for `duration` seconds against one target; completions/s and the spread."""
    body = completion_body(target["model"], max_tokens, False)
    outs = [{"latencies_ms": [], "errors": {}} for _ in range(clients)]
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds(pids)
    began = time.monotonic()
    stop_at = began + duration
    threads = [
        threading.Thread(target=client_loop, args=(target, body, stop_at, o), daemon=True) for o in outs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A request started just before the end may take up to its timeout.
        thread.join(timeout=max(0.0, stop_at - time.monotonic()) + REQUEST_TIMEOUT + 5)
    wall = time.monotonic() - began
    others = others_share(cpu_before, cpu_seconds(pids), wall)
    if any(t.is_alive() for t in threads):
        raise SystemExit(f"{target['name']}: a load client did not finish")
    lat = [x for o in outs for x in o["latencies_ms"]]
    errors = {}
    for o in outs:
        for kind, n in o["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    return {
        "clients": clients,
        "duration_s": duration,
        "wall_s": round(wall, 3),
        "completed": len(lat),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "completions_per_s": round(len(lat) / wall, 2),
        "completed_per_client": [len(o["latencies_ms"]) for o in outs],
        "latency_ms": {
            p: round(percentile(lat, q), 1) if lat else None
            for p, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        },
        "loadavg_1min_before": round(load_before, 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "other_processes_cpu_share": others,
    }


def median_of(runs, key):
    return round(statistics.median(r[key] for r in runs), 3)


def on_alarm(signum, frame):
    raise SystemExit("the run went past --max-seconds")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=20, help="timed streamed requests each way (after one warm-up)"
    )
    parser.add_argument("--duration", type=float, default=30, help="seconds of load each way")
    parser.add_argument("--clients", type=int, default=8, help="concurrent load clients")
    parser.add_argument("--max-tokens", type=int, default=8, help="max_tokens of every request")
    parser.add_argument("--max-seconds", type=int, default=900, help="bound on the whole run")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    tag = role_tag()
    archive = os.path.join(CACHE, "llama-server", f"llama-{tag}-bin-ubuntu-x64.tar.gz")
    for path, maker in ((MODEL, "make_tiny_gguf.py makes it"), (archive, "build_llama_server.sh builds it")):
        if not os.path.isfile(path):
            raise SystemExit(f"{path} is missing (tests/fixtures/{maker})")
    version = litellm_pin()
    install = prepare_litellm(sys.executable, version)
    vpython = os.path.join(VENV, "bin", "python")
    litellm_version = run_quiet(
        [vpython, "-c", "import importlib.metadata as m; print(m.version('litellm'))"], "litellm version"
    ).strip()
    if litellm_version != version:
        raise SystemExit(f"{VENV} has litellm {litellm_version}, the role pins {version}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.max_seconds)
    server = gateway = None
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="tar")
            binary = os.path.join(scratch, f"llama-{tag}", "llama-server")
            proc = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, check=True, timeout=30
            )
            server_version = " ".join((proc.stdout + proc.stderr).split())

            instance_key = secrets.token_urlsafe(24)
            master_key = secrets.token_urlsafe(24)
            client_key = secrets.token_urlsafe(24)
            key_file = os.path.join(scratch, "api-key")
            with open(key_file, "w", encoding="utf-8") as fh:
                fh.write(instance_key + "\n")
            port = free_port()
            # As the planner renders an instance (serving_plan._render_llamacpp): upstream's
            # slots and threads, /metrics, the key in a file; the context the tiny model needs.
            server_cmd = [
                binary,
                "--model", MODEL,
                "--host", HOST,
                "--port", str(port),
                "--ctx-size", str(CTX),
                "--n-gpu-layers", "0",
                "--alias", SERVED,
                "--metrics",
                "--api-key-file", key_file,
            ]  # fmt: skip
            server_log = os.path.join(scratch, "llama-server.log")
            began = time.monotonic()
            server = start(server_cmd, server_log)
            wait_ready(server, port, "/health", server_log)
            server_ready = time.monotonic() - began
            props = server_props(port, instance_key)

            # The gateway as the role lays it out: config, keyauth.py and client keys in one
            # folder, a state folder as working directory and HOME, the unit's environment.
            etc = os.path.join(scratch, "etc-ailab-gateway")
            state = os.path.join(scratch, "var-lib-ailab-gateway")
            os.makedirs(etc)
            os.makedirs(state)
            config = render_config(f"http://{HOST}:{port}/v1", instance_key)
            with open(os.path.join(etc, "config.yaml"), "w", encoding="utf-8") as fh:
                fh.write(config)
            shutil.copy(os.path.join(ROLE, "files", "keyauth.py"), os.path.join(etc, "keyauth.py"))
            with open(os.path.join(etc, "client-keys.json"), "w", encoding="utf-8") as fh:
                json.dump({client_key: "bench"}, fh)
            gport = free_port()
            gateway_cmd = [
                os.path.join(VENV, "bin", "litellm"),
                "--config", os.path.join(etc, "config.yaml"),
                "--host", HOST,
                "--port", str(gport),
            ]  # fmt: skip
            gateway_env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "HOME": state,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "HF_HUB_OFFLINE": "1",
                "LITELLM_CLIENT_KEYS_FILE": os.path.join(etc, "client-keys.json"),
                "LITELLM_MASTER_KEY": master_key,
            }
            gateway_log = os.path.join(scratch, "gateway.log")
            began = time.monotonic()
            gateway = start(gateway_cmd, gateway_log, env=gateway_env, cwd=state)
            wait_ready(gateway, gport, "/health/liveliness", gateway_log)
            wait_route(gport, client_key, gateway, gateway_log)
            gateway_ready = time.monotonic() - began

            targets = {
                "direct": {
                    "name": "direct",
                    "port": port,
                    "model": SERVED,
                    "headers": {
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {instance_key}",
                    },
                },
                "gateway": {
                    "name": "gateway",
                    "port": gport,
                    "model": ROUTE,
                    "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {client_key}"},
                },
            }
            print(f"TTFT: {args.requests} streamed requests each way", file=sys.stderr)
            load_before = os.getloadavg()[0]
            pids = (server.pid, gateway.pid)
            cpu_before, ttft_began = cpu_seconds(pids), time.monotonic()
            warmup = {name: streamed_ttft(t, args.max_tokens) for name, t in targets.items()}
            ttft = {"direct": [], "gateway": []}
            for i in range(args.requests):
                # Alternate which goes first in each pair, so drifting load falls on both.
                for name in ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct"):
                    ttft[name].append(streamed_ttft(targets[name], args.max_tokens))
            ttft_load = (round(load_before, 2), round(os.getloadavg()[0], 2))
            ttft_others = others_share(cpu_before, cpu_seconds(pids), time.monotonic() - ttft_began)
            loads = {}
            for name in ("gateway", "direct"):
                print(f"load: {args.clients} clients for {args.duration:g} s, {name}", file=sys.stderr)
                loads[name] = load(targets[name], args.clients, args.duration, args.max_tokens, pids)
            gateway_rss = rss_mib(gateway.pid)
        finally:
            signal.alarm(0)
            stop(gateway)
            stop(server)

    ratios = {
        "ttft_gateway_over_direct": ratio(
            median_of(ttft["gateway"], "ttft_ms"), median_of(ttft["direct"], "ttft_ms")
        ),
        "total_gateway_over_direct": ratio(
            median_of(ttft["gateway"], "total_ms"), median_of(ttft["direct"], "total_ms")
        ),
        "completions_per_s_gateway_over_direct": ratio(
            loads["gateway"]["completions_per_s"], loads["direct"]["completions_per_s"]
        ),
    }
    summary = {
        name: {
            "median_ttft_ms": median_of(runs, "ttft_ms"),
            "best_ttft_ms": min(r["ttft_ms"] for r in runs),
            "median_total_ms": median_of(runs, "total_ms"),
        }
        for name, runs in ttft.items()
    }
    added_ms = round(summary["gateway"]["median_ttft_ms"] - summary["direct"]["median_ttft_ms"], 3)
    redacted = config.replace(instance_key, "<instance key>")
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
        "model": SERVED,
        "model_sha256": sha256(MODEL),
        "versions": {
            "litellm": litellm_version,
            "llama_server": server_version,
            "llama_server_archive": os.path.basename(archive),
        },
        "litellm_install": install,
        "settings": {
            "prompt": PROMPT,
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "seed": SEED,
            "requests_each_way": args.requests,
            "clients": args.clients,
            "duration_s": args.duration,
            "request_timeout_s": REQUEST_TIMEOUT,
            "endpoint": "/v1/completions",
            "gateway_key": "a client key (keyauth.py)",
            "tls": False,
        },
        "commands": {
            "llama_server": [os.path.basename(binary)]
            + [
                a.replace(MODEL, "$AILAB_CACHE/models/" + SERVED).replace(key_file, "<key file>")
                for a in server_cmd[1:]
            ],
            "gateway": ["litellm", "--config", "config.yaml", *gateway_cmd[3:]],
            "gateway_environment": sorted(k for k in gateway_env if k not in ("PATH", "LANG", "HOME")),
        },
        "gateway_config": redacted,
        "llama_server_props": props,
        "ready_seconds": {"llama_server": round(server_ready, 2), "gateway": round(gateway_ready, 2)},
        "gateway_rss_mib_after_load": gateway_rss,
        "ttft": {
            "summary": summary,
            "gateway_adds_ms": added_ms,
            "loadavg_1min_before_after": list(ttft_load),
            "other_processes_cpu_share": ttft_others,
            "warmup": warmup,
            "requests": ttft,
        },
        "load": loads,
        "ratios": ratios,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gateway.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    text = markdown(args, result)
    with open(os.path.join(args.out, "gateway.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text, end="")
    return 0


def markdown(args, result):
    s, ld, r, mach = result["ttft"]["summary"], result["load"], result["ratios"], result["machine"]
    d, g = s["direct"], s["gateway"]
    lines = [
        "# The gateway's added latency and throughput",
        "",
        "`.venv/bin/python benchmarks/bench_gateway.py` (`make bench`): the tiny model "
        f"({result['model']}) served by llama-server with an instance's flags (context {CTX}, "
        f"{result['llama_server_props']['total_slots']} slots, its own key) and LiteLLM {result['versions']['litellm']}'s proxy in front of it as the gateway role "
        "deploys it (the role's config template with one route, keyauth.py, the unit's environment, "
        "a client key), both on loopback of this machine, plain http, one run. "
        f"TTFT: {args.requests} streamed /v1/completions requests each way after one warm-up, in "
        "pairs of alternating order (fixed prompt, max_tokens "
        f"{args.max_tokens}, temperature 0); request sent to the first chunk with text. Load: "
        f"{args.clients} client threads, one kept-alive connection each, non-streamed "
        f"/v1/completions (max_tokens {args.max_tokens}) for {args.duration:g} s, through the gateway "
        "then direct; completions/s = completed requests over the time to the last client's end.",
        "",
        "| measure | direct | through the gateway | gateway / direct |",
        "| --- | ---: | ---: | ---: |",
        f"| median TTFT (ms) | {d['median_ttft_ms']:.1f} | {g['median_ttft_ms']:.1f} "
        f"| {r['ttft_gateway_over_direct']} |",
        f"| best TTFT (ms) | {d['best_ttft_ms']:.1f} | {g['best_ttft_ms']:.1f} | |",
        f"| median whole streamed request (ms) | {d['median_total_ms']:.1f} | {g['median_total_ms']:.1f} "
        f"| {r['total_gateway_over_direct']} |",
        f"| completions/s, {args.clients} clients | {ld['direct']['completions_per_s']} "
        f"| {ld['gateway']['completions_per_s']} | {r['completions_per_s_gateway_over_direct']} |",
        f"| completed / errors | {ld['direct']['completed']} / {ld['direct']['errors']} "
        f"| {ld['gateway']['completed']} / {ld['gateway']['errors']} | |",
        f"| load latency p50 / p99 (ms) | {ld['direct']['latency_ms']['p50']} / {ld['direct']['latency_ms']['p99']} "
        f"| {ld['gateway']['latency_ms']['p50']} / {ld['gateway']['latency_ms']['p99']} | |",
        f"| CPU share of other processes during the load | {ld['direct']['other_processes_cpu_share']:.0%} "
        f"| {ld['gateway']['other_processes_cpu_share']:.0%} | |",
        "",
        f"The gateway adds {result['ttft']['gateway_adds_ms']:.1f} ms to the median TTFT. It was ready "
        f"{result['ready_seconds']['gateway']} s after its start and held "
        f"{result['gateway_rss_mib_after_load']} MiB (RSS) after the load.",
        "",
        "TTFT per request (ms), in order:",
        "",
    ]
    for name, runs in result["ttft"]["requests"].items():
        lines.append(f"- {name}: " + ", ".join(f"{x['ttft_ms']:.1f}" for x in runs))
    lines += [
        "",
        f"Versions: LiteLLM {result['versions']['litellm']} ({result['litellm_install']['wheelhouse']}, "
        "in its own venv); llama-server "
        f"`{result['versions']['llama_server']}` ({result['versions']['llama_server_archive']}).",
        "",
        f"{result['date']}, {mach['cpus']} CPUs ({mach['cpu_model']}), {mach['machine']}, "
        f"Python {mach['python']}. The clients, LiteLLM and llama-server share these CPUs. Ratios: "
        "TTFT above 1 is what the gateway adds; completions/s below 1 is what it costs.",
    ]
    others = {
        "TTFT": result["ttft"]["other_processes_cpu_share"],
        "direct load": ld["direct"]["other_processes_cpu_share"],
        "gateway load": ld["gateway"]["other_processes_cpu_share"],
    }
    lines.append(
        "\nOther processes on this machine used "
        + ", ".join(f"{v:.0%} in the {k} phase" for k, v in others.items())
        + " of its CPU time (from /proc: all busy time less this run's processes)."
    )
    if max(others.values()) > 0.1:
        lines.append("Caution: other work shared the CPUs, so the figures vary; rerun on an idle machine.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
