"""Part of the STAND-IN for text-generation-webui v4.7.3 (tests/standins/textgen-webui):
its llama.cpp loader, which starts the REAL llama-server the way upstream does.

Upstream reference: oobabooga/text-generation-webui, tag v4.7.3 (commit
1dcde41d03d13fc768316f4d2256a8a6dd044268):

- modules/llama_cpp_server.py, class ``LlamaServer``: the binary comes from
  ``llama_cpp_binaries.get_binary_path()`` (``ik_llama_cpp_binaries`` with ``--ik``);
  the port is api_port+5 when free, otherwise one the OS assigns; the command line is
  ``--model --batch-size --ubatch-size --port --no-webui --flash-attn on``, then the
  context/GPU-layer flags (``--ctx-size`` when ctx_size > 0, ``--gpu-layers N --fit
  off`` or ``--fit on --fit-ctx 8192 [--fit-target]``) and the optional flags built
  below in the same order; LD_LIBRARY_PATH gets the binary's directory; llama-server
  binds its own default host, 127.0.0.1; startup polls ``GET /health`` once a second
  until 200, failing when the process exits; then ``GET /v1/models`` (n_vocab) and
  ``GET /props`` (bos_token, n_ctx). Text goes through ``POST /tokenize`` (add_special
  = add_bos_token, off when the text starts with the BOS token) and a streamed
  ``POST /completion`` with the token ids as prompt, ``n_predict``, ``cache_prompt``
  and the sampler values; ``stop()`` terminates the process (kill after 5 s);
- modules/shared.py: the defaults of the llama.cpp flags (``DEFAULTS`` below);
- modules/models.py, ``llama_cpp_server_loader``: a directory model loads its first
  ``*.gguf`` (sorted); a failure is logged and leaves no model loaded.

Not reproduced: multimodal prompts, logits/logprobs, ik_llama.cpp's flag patching, the
sampler-priority list, DRY/XTC and the other samplers llama-server is not asked for
here. Standard library only.
"""

import glob
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request

VALID_CACHE_TYPES = {"fp16", "q8_0", "q4_0"}
# llama-server is on the loopback: never through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# modules/shared.py (v4.7.3) defaults of the flags the llama.cpp loader reads. The
# stand-in's parser is built from the pinned flag table, which holds no defaults.
DEFAULTS = {
    "api_port": 5000,
    "ctx_size": 0,
    "cache_type": "fp16",
    "model_draft": None,
    "draft_max": 4,
    "gpu_layers_draft": 256,
    "device_draft": None,
    "ctx_size_draft": 0,
    "spec_type": "none",
    "spec_ngram_size_n": 24,
    "spec_ngram_size_m": 48,
    "spec_ngram_min_hits": 1,
    "gpu_layers": -1,
    "mmproj": None,
    "tensor_split": None,
    "split_mode": "layer",
    "batch_size": 1024,
    "ubatch_size": 1024,
    "threads": 0,
    "threads_batch": 0,
    "parallel": 1,
    "fit_target": "512",
    "extra_flags": None,
}


def log(msg):
    sys.stderr.write(f"[textgen-standin] {msg}\n")
    sys.stderr.flush()


def setting(args, name):
    value = getattr(args, name, None)
    return DEFAULTS.get(name) if value is None else value


def find_model_file(path):
    """A file is the model; in a directory, the first ``*.gguf`` in sorted order."""
    if os.path.isfile(path):
        return path
    found = sorted(glob.glob(os.path.join(glob.escape(path), "*.gguf")))
    if not found:
        raise FileNotFoundError(f"No .gguf models found in the directory: {path}")
    return found[0]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", port))
            return True
        except OSError:
            return False


def choose_port(api_port):
    """api_port + 5 when it is free, otherwise a port the OS assigns (as upstream)."""
    if port_is_free(api_port + 5):
        return api_port + 5
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def extra_flag_args(extra_flags):
    """``--extra-flags``: the literal form (``"--jinja --rpc h:p"``) or the legacy
    ``flag1=value1,flag2`` form, where names of three characters or less get one dash
    unless they are long-only (rpc, fit, pos, ppl)."""
    text = extra_flags.strip()
    for quote in ('"', "'"):
        if len(text) >= 2 and text.startswith(quote) and text.endswith(quote):
            text = text[1:-1].strip()
            break
    if text.startswith("-"):
        return shlex.split(text)
    long_only = {"rpc", "fit", "pos", "ppl"}
    out = []
    for item in text.split(","):
        item = item.strip()
        flag, sep, value = item.partition("=")
        flag = flag.strip()
        dash = "-" if len(flag) <= 3 and flag not in long_only else "--"
        out += [dash + flag, value.strip()] if sep else [dash + flag]
    return out


def build_command(server_path, model_file, port, args, user_data_dir, model_dir):
    """llama-server's command line as LlamaServer._start_server builds it in v4.7.3."""

    def s(name):
        return setting(args, name)

    cmd = [
        server_path,
        "--model",
        model_file,
        "--batch-size",
        str(s("batch_size")),
        "--ubatch-size",
        str(s("ubatch_size")),
        "--port",
        str(port),
        "--no-webui",
        "--flash-attn",
        "on",
    ]
    if s("ctx_size") > 0:
        cmd += ["--ctx-size", str(s("ctx_size"))]
    elif s("gpu_layers") >= 0:
        cmd += ["--ctx-size", "8192"]
    if s("gpu_layers") >= 0:
        cmd += ["--gpu-layers", str(s("gpu_layers")), "--fit", "off"]
    else:
        cmd += ["--fit", "on", "--fit-ctx", "8192"]
        if s("fit_target"):
            cmd += ["--fit-target", s("fit_target")]
    if s("threads") > 0:
        cmd += ["--threads", str(s("threads"))]
    if s("threads_batch") > 0:
        cmd += ["--threads-batch", str(s("threads_batch"))]
    if getattr(args, "cpu_moe", False):
        cmd.append("--cpu-moe")
    if getattr(args, "no_mmap", False):
        cmd.append("--no-mmap")
    if getattr(args, "mlock", False):
        cmd.append("--mlock")
    if s("tensor_split"):
        cmd += ["--tensor-split", s("tensor_split")]
    if getattr(args, "numa", False):
        cmd += ["--numa", "distribute"]
    if getattr(args, "no_kv_offload", False):
        cmd.append("--no-kv-offload")
    if s("split_mode") != "layer":
        cmd += ["--split-mode", s("split_mode")]
    cache_type = s("cache_type")
    if cache_type != "fp16" and cache_type in VALID_CACHE_TYPES:
        cmd += ["--cache-type-k", cache_type, "--cache-type-v", cache_type]
    if s("mmproj") not in (None, "None"):
        path = s("mmproj")
        if not os.path.exists(path):
            path = os.path.join(user_data_dir, "mmproj", s("mmproj"))
        if os.path.exists(path):
            cmd += ["--mmproj", path]
    if s("model_draft") not in (None, "None"):
        draft = s("model_draft")
        if not os.path.exists(draft):
            draft = os.path.join(model_dir, draft)
        cmd += ["--model-draft", find_model_file(draft)]
        if s("draft_max") > 0:
            cmd += ["--draft-max", str(s("draft_max"))]
        if s("gpu_layers_draft") > 0:
            cmd += ["--gpu-layers-draft", str(s("gpu_layers_draft"))]
        if s("device_draft"):
            cmd += ["--device-draft", s("device_draft")]
        if s("ctx_size_draft") > 0:
            cmd += ["--ctx-size-draft", str(s("ctx_size_draft"))]
    if s("spec_type") != "none":
        cmd += ["--spec-type", s("spec_type"), "--draft-max", str(s("draft_max")), "--draft-min", "48"]
        cmd += ["--spec-ngram-size-n", str(s("spec_ngram_size_n"))]
        cmd += ["--spec-ngram-size-m", str(s("spec_ngram_size_m"))]
        cmd += ["--spec-ngram-min-hits", str(s("spec_ngram_min_hits"))]
    cmd += ["--parallel", str(s("parallel"))]
    if getattr(args, "streaming_llm", False):
        cmd += ["--cache-reuse", "1", "--swa-full"]
    if s("extra_flags"):
        cmd += extra_flag_args(s("extra_flags"))
    return cmd


LOG_PREFIX = re.compile(r"^(?:[0-9.]+ )?[IWED] ")


def forward_stderr(pipe):
    """Pass llama-server's log on without the per-request noise upstream filters out
    (filter_stderr_with_progress: lines from ``srv ``/``slot ``, health-check requests)."""
    for raw in iter(pipe.readline, b""):
        line = LOG_PREFIX.sub("", raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        if line and not (line.startswith(("srv ", "slot ")) or "request: GET /health" in line):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    pipe.close()


class LlamaServer:
    def __init__(self, model_file, args, user_data_dir, model_dir):
        import llama_cpp_binaries  # installed by one_click.py, as upstream's requirements do

        self.server_path = llama_cpp_binaries.get_binary_path()
        self.model_file = model_file
        self.port = choose_port(setting(args, "api_port"))
        self.bos_token = "<s>"
        self.vocabulary_size = None
        self.n_ctx = None
        self.last_prompt_token_count = 0
        self.cmd = build_command(self.server_path, model_file, self.port, args, user_data_dir, model_dir)
        env = dict(os.environ)
        lib_dir = os.path.dirname(self.server_path)
        env["LD_LIBRARY_PATH"] = (
            f"{env['LD_LIBRARY_PATH']}:{lib_dir}" if env.get("LD_LIBRARY_PATH") else lib_dir
        )
        log("llama-server command-line flags: " + " ".join(self.cmd[1:]))
        self.process = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, env=env)
        threading.Thread(target=forward_stderr, args=(self.process.stderr,), daemon=True).start()
        while True:
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise RuntimeError(f"Server process terminated unexpectedly with exit code: {code}")
            try:
                if self.request("GET", "/health", timeout=5) is not None:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(1)
        models = self.request("GET", "/v1/models")
        if models.get("data"):
            self.vocabulary_size = models["data"][0].get("meta", {}).get("n_vocab")
        props = self.request("GET", "/props")
        self.bos_token = props.get("bos_token", self.bos_token)
        self.n_ctx = props.get("default_generation_settings", {}).get("n_ctx") or None

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, payload=None, timeout=600):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with OPENER.open(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def encode(self, text, add_bos_token=False):
        if self.bos_token and text.startswith(self.bos_token):
            add_bos_token = False
        return self.request("POST", "/tokenize", {"content": text, "add_special": add_bos_token}).get(
            "tokens", []
        )

    def decode(self, token_ids):
        return self.request("POST", "/detokenize", {"tokens": token_ids}).get("content", "")

    def apply_template(self, messages):
        """The chat prompt, rendered by llama-server with the model's own chat template."""
        return self.request("POST", "/apply-template", {"messages": messages})["prompt"]

    def generate(self, prompt, params):
        """Upstream's generate_with_streaming: tokenize, then a streamed /completion."""
        token_ids = self.encode(prompt, add_bos_token=params.get("add_bos_token", True))
        self.last_prompt_token_count = len(token_ids)
        payload = {
            "temperature": params["temperature"],
            "top_k": params["top_k"],
            "top_p": params["top_p"],
            "min_p": params["min_p"],
            "typical_p": params["typical_p"],
            "repeat_penalty": params["repetition_penalty"],
            "presence_penalty": params["presence_penalty"],
            "frequency_penalty": params["frequency_penalty"],
            "seed": params["seed"],
            "prompt": token_ids,
            "n_predict": params["max_new_tokens"],
            "stream": True,
            "cache_prompt": True,
        }
        if params.get("stop"):
            payload["stop"] = params["stop"]
        req = urllib.request.Request(
            self.url("/completion"), data=json.dumps(payload).encode(), method="POST"
        )
        req.add_header("Content-Type", "application/json")
        text = ""
        with OPENER.open(req, timeout=600) as resp:
            for raw in resp:
                line = raw.decode("utf-8").strip()
                if not line:
                    continue
                if line.startswith("data: "):
                    line = line[len("data: ") :]
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    continue
                text += data.get("content", "") or ""
                if data.get("stop", False):
                    break
        return text

    def stop(self):
        if self.process:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
