#!/usr/bin/env python3
"""STAND-IN for the `ollama` binary, used by the tests where the real release archive
cannot be downloaded. It is NOT Ollama: it runs no model and does no inference.

What it reproduces, from Ollama's documented CLI and HTTP API (v0.32.x):
- `ollama serve`, configured only through the environment: OLLAMA_HOST (host:port;
  default 127.0.0.1:11434; "http://host" without a port means port 80), OLLAMA_MODELS
  (default ~/.ollama/models), OLLAMA_KEEP_ALIVE (-1 = forever), OLLAMA_MAX_LOADED_MODELS,
  OLLAMA_NOPRUNE (unused blobs are pruned at startup unless set);
- the models directory layout: blobs/sha256-<hex>, manifests/registry.ollama.ai/library/<name>/<tag>;
- `ollama create NAME -f Modelfile` (client side: hash the FROM file, HEAD/POST
  /api/blobs/sha256:<digest>, POST /api/create), `ollama list`, `ollama ps`, `ollama --version`;
- the HTTP API: GET/HEAD /, GET /api/version, GET /api/tags, POST /api/show, HEAD/POST
  /api/blobs/sha256:<digest>, POST /api/create, POST /api/generate, GET /api/ps.

What it does not: load weights, use a GPU, pull from a registry, templates, chat.
/api/generate answers with a fixed text that says it comes from this stand-in.
Standard library only.
"""

import datetime
import hashlib
import json
import os
import shlex
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

VERSION = "0.32.0"
STANDIN_NOTE = "stand-in for ollama (tests/standins/ollama): no inference performed"
MODEL_MEDIA = "application/vnd.ollama.image.model"
CONFIG_MEDIA = "application/vnd.docker.container.image.v1+json"
MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"


def parse_host(value):
    """OLLAMA_HOST -> (scheme, host, port), the way ollama's envconfig.Host does."""
    value = (value or "").strip().strip("\"'")
    scheme, hostport = "http", value
    default_port = 11434
    if "://" in value:
        scheme, hostport = value.split("://", 1)
        default_port = {"http": 80, "https": 443}.get(scheme, 11434)
    hostport = hostport.split("/", 1)[0]
    host, port = hostport, default_port
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end]
        if hostport[end + 1 : end + 2] == ":":
            port = int(hostport[end + 2 :])
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
        port = int(port_text) if port_text else default_port
    return scheme, host or "127.0.0.1", port


def models_dir():
    return os.environ.get("OLLAMA_MODELS") or os.path.join(os.path.expanduser("~"), ".ollama", "models")


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def split_name(name):
    name = name.split("/")[-1]
    if ":" in name:
        base, tag = name.rsplit(":", 1)
    else:
        base, tag = name, "latest"
    return base, tag


class Store:
    """The models directory: blobs and manifests, laid out as Ollama lays them out."""

    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs")
        self.manifests = os.path.join(root, "manifests", "registry.ollama.ai", "library")
        os.makedirs(self.blobs, exist_ok=True)
        os.makedirs(self.manifests, exist_ok=True)

    def blob_path(self, digest):
        return os.path.join(self.blobs, digest.replace(":", "-"))

    def has_blob(self, digest):
        return os.path.isfile(self.blob_path(digest))

    def put_blob(self, digest, stream, length):
        tmp = f"{self.blob_path(digest)}-partial-{os.getpid()}"
        sha = hashlib.sha256()
        remaining = length
        with open(tmp, "wb") as out:
            while remaining > 0:
                chunk = stream.read(min(1 << 20, remaining))
                if not chunk:
                    break
                sha.update(chunk)
                out.write(chunk)
                remaining -= len(chunk)
        if "sha256:" + sha.hexdigest() != digest:
            os.unlink(tmp)
            return False
        os.replace(tmp, self.blob_path(digest))
        return True

    def manifest_path(self, name):
        base, tag = split_name(name)
        return os.path.join(self.manifests, base, tag)

    def read_manifest(self, name):
        try:
            with open(self.manifest_path(name), "rb") as fh:
                raw = fh.read()
        except OSError:
            return None, None
        return json.loads(raw), "sha256:" + hashlib.sha256(raw).hexdigest()

    def write_json_blob(self, obj):
        raw = json.dumps(obj, sort_keys=True).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        with open(self.blob_path(digest), "wb") as fh:
            fh.write(raw)
        return digest, len(raw)

    def create(self, name, model_digest, extra):
        config = {"model_format": "gguf", "model_family": "unknown", "file_type": "unknown", "standin": True}
        config.update(extra)
        cdigest, csize = self.write_json_blob(config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA,
            "config": {"mediaType": CONFIG_MEDIA, "digest": cdigest, "size": csize},
            "layers": [
                {
                    "mediaType": MODEL_MEDIA,
                    "digest": model_digest,
                    "size": os.path.getsize(self.blob_path(model_digest)),
                }
            ],
        }
        path = self.manifest_path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as fh:
            json.dump(manifest, fh, sort_keys=True)
        os.replace(path + ".tmp", path)

    def models(self):
        out = []
        for base in sorted(os.listdir(self.manifests)):
            for tag in sorted(os.listdir(os.path.join(self.manifests, base))):
                name = f"{base}:{tag}"
                manifest, digest = self.read_manifest(name)
                if manifest:
                    out.append((name, manifest, digest))
        return out

    def prune(self):
        """What Ollama does at startup unless OLLAMA_NOPRUNE is set: drop unused blobs."""
        used = set()
        for _, manifest, _ in self.models():
            used.add(manifest["config"]["digest"])
            used.update(layer["digest"] for layer in manifest["layers"])
        for entry in os.listdir(self.blobs):
            if entry.replace("-", ":", 1) not in used:
                os.unlink(os.path.join(self.blobs, entry))


class State:
    def __init__(self, store):
        self.store = store
        self.loaded = {}  # name -> expires_at (None = never)
        self.lock = threading.Lock()
        self.max_loaded = int(os.environ.get("OLLAMA_MAX_LOADED_MODELS") or 3)
        self.keep_alive = os.environ.get("OLLAMA_KEEP_ALIVE", "5m")


def keep_alive_seconds(value):
    if value is None:
        return 300
    if isinstance(value, (int, float)):
        return None if value < 0 else float(value)
    text = str(value).strip()
    if text.startswith("-"):
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ollama-standin/" + VERSION
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write(f"[ollama-standin] {self.address_string()} {fmt % args}\n")

        def send_json(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_stream(self, items):
            body = b"".join(json.dumps(item).encode() + b"\n" for item in items)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def read_json(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw or b"{}")
            except ValueError:
                return None

        def do_HEAD(self):
            path = urlsplit(self.path).path
            if path == "/":
                self.send_response(200)
                self.send_header("Content-Length", "17")
                self.end_headers()
            elif path.startswith("/api/blobs/"):
                found = state.store.has_blob(path[len("/api/blobs/") :])
                self.send_response(200 if found else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/":
                body = b"Ollama is running"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif path == "/api/version":
                self.send_json(200, {"version": VERSION, "standin": STANDIN_NOTE})
            elif path == "/api/tags":
                self.send_json(200, {"models": [self.describe(n, m, d) for n, m, d in state.store.models()]})
            elif path == "/api/ps":
                self.expire()
                models = []
                with state.lock:
                    for name, expires in state.loaded.items():
                        manifest, digest = state.store.read_manifest(name)
                        if not manifest:
                            continue
                        item = self.describe(name, manifest, digest)
                        item["expires_at"] = (
                            "2318-08-09T00:00:00Z"
                            if expires is None
                            else datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).isoformat()
                        )
                        item["size_vram"] = 0
                        models.append(item)
                self.send_json(200, {"models": models})
            else:
                self.send_json(404, {"error": "404 page not found"})

        def do_POST(self):
            path = urlsplit(self.path).path
            if path.startswith("/api/blobs/"):
                digest = path[len("/api/blobs/") :]
                if not digest.startswith("sha256:") or len(digest) != 71:
                    self.send_json(400, {"error": "invalid digest format"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if state.store.put_blob(digest, self.rfile, length):
                    self.send_response(201)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_json(400, {"error": "digest mismatch"})
                return
            body = self.read_json()
            if body is None:
                self.send_json(400, {"error": "invalid JSON body"})
            elif path == "/api/create":
                self.create(body)
            elif path == "/api/show":
                self.show(body)
            elif path == "/api/generate":
                self.generate(body)
            else:
                self.send_json(404, {"error": "404 page not found"})

        def describe(self, name, manifest, digest):
            size = sum(layer["size"] for layer in manifest["layers"])
            return {
                "name": name,
                "model": name,
                "modified_at": now_iso(),
                "size": size,
                "digest": digest.split(":", 1)[1],
                "details": {
                    "format": "gguf",
                    "family": "unknown",
                    "parameter_size": "",
                    "quantization_level": "",
                },
            }

        def create(self, body):
            name = body.get("model") or body.get("name")
            files = body.get("files") or {}
            if not name or not files:
                self.send_json(400, {"error": "model and files are required"})
                return
            digest = list(files.values())[0]
            if not state.store.has_blob(digest):
                self.send_json(400, {"error": f"blob {digest} not found; upload it first"})
                return
            state.store.create(name, digest, {})
            statuses = [
                {"status": "parsing GGUF"},
                {"status": "using existing layer " + digest},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
            if body.get("stream") is False:
                self.send_json(200, statuses[-1])
            else:
                self.send_stream(statuses)

        def show(self, body):
            name = body.get("model") or body.get("name") or ""
            manifest, digest = state.store.read_manifest(name)
            if not manifest:
                self.send_json(404, {"error": f"model '{name}' not found"})
                return
            base, tag = split_name(name)
            blob = state.store.blob_path(manifest["layers"][0]["digest"])
            modelfile = (
                '# Modelfile generated by "ollama show"\n'
                "# To build a new Modelfile based on this, replace FROM with:\n"
                f"# FROM {base}:{tag}\n\nFROM {blob}\n"
            )
            self.send_json(
                200,
                {
                    "modelfile": modelfile,
                    "parameters": "",
                    "template": "{{ .Prompt }}",
                    "details": {"format": "gguf", "family": "unknown"},
                    "model_info": {"general.standin": STANDIN_NOTE},
                    "modified_at": now_iso(),
                },
            )

        def expire(self):
            with state.lock:
                for name, expires in list(state.loaded.items()):
                    if expires is not None and expires < time.time():
                        del state.loaded[name]

        def generate(self, body):
            name = body.get("model") or ""
            base, tag = split_name(name)
            manifest, _ = state.store.read_manifest(name)
            if not manifest:
                self.send_json(404, {"error": f"model '{base}' not found, try pulling it first"})
                return
            keep = keep_alive_seconds(body.get("keep_alive", state.keep_alive))
            with state.lock:
                full = f"{base}:{tag}"
                state.loaded.pop(full, None)
                while len(state.loaded) >= state.max_loaded:
                    state.loaded.pop(next(iter(state.loaded)))
                state.loaded[full] = None if keep is None else time.time() + keep
                if keep == 0:
                    del state.loaded[full]
            prompt = body.get("prompt") or ""
            done = {"model": name, "created_at": now_iso(), "response": "", "done": True}
            if not prompt:
                done["done_reason"] = "load" if keep != 0 else "unload"
                self.send_json(200, done)
                return
            text = f"[{STANDIN_NOTE}]"
            done.update({"done_reason": "stop", "eval_count": 1, "prompt_eval_count": len(prompt.split())})
            if body.get("stream") is False:
                done["response"] = text
                self.send_json(200, done)
            else:
                self.send_stream(
                    [{"model": name, "created_at": now_iso(), "response": text, "done": False}, done]
                )

    return Handler


def serve():
    _, host, port = parse_host(os.environ.get("OLLAMA_HOST"))
    store = Store(models_dir())
    if not os.environ.get("OLLAMA_NOPRUNE"):
        store.prune()
    state = State(store)
    server = ThreadingHTTPServer((host, port), make_handler(state))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    sys.stderr.write(f"[ollama-standin] {STANDIN_NOTE}; listening on {host}:{port}, models in {store.root}\n")
    sys.stderr.flush()
    server.serve_forever()
    return 0


def client_base():
    scheme, host, port = parse_host(os.environ.get("OLLAMA_HOST"))
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def request(method, path, body=None, data=None, length=None):
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if length is not None:
        headers["Content-Length"] = str(length)
    req = urllib.request.Request(client_base() + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def parse_modelfile(path):
    source = None
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = shlex.split(line)
            if parts[0].upper() == "FROM" and len(parts) > 1:
                source = parts[1]
    if source is None:
        raise SystemExit("Error: no FROM line")
    if not os.path.isabs(source):
        source = os.path.join(os.path.dirname(os.path.abspath(path)), source)
    return source


def create(args):
    if not args or args[0].startswith("-"):
        raise SystemExit("Error: accepts 1 arg(s), received 0")
    name, modelfile = args[0], "Modelfile"
    if "-f" in args:
        modelfile = args[args.index("-f") + 1]
    source = parse_modelfile(modelfile)
    if not os.path.isfile(source):
        raise SystemExit(f"Error: no such file: {source}")
    sha = hashlib.sha256()
    with open(source, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    digest = "sha256:" + sha.hexdigest()
    print("gathering model components")
    status, _ = request("HEAD", "/api/blobs/" + digest)
    if status != 200:
        print(f"copying file {digest} 100%")
        with open(source, "rb") as fh:
            status, raw = request("POST", "/api/blobs/" + digest, data=fh, length=os.path.getsize(source))
        if status not in (200, 201):
            raise SystemExit("Error: " + raw.decode(errors="replace"))
    status, raw = request("POST", "/api/create", {"model": name, "files": {os.path.basename(source): digest}})
    if status != 200:
        raise SystemExit("Error: " + raw.decode(errors="replace"))
    for line in raw.decode().splitlines():
        item = json.loads(line)
        if "error" in item:
            raise SystemExit("Error: " + item["error"])
        print(item.get("status", ""))
    return 0


def list_models(path, key):
    status, raw = request("GET", path)
    if status != 200:
        raise SystemExit(f"Error: {raw.decode(errors='replace')}")
    print("NAME\tID\tSIZE")
    for item in json.loads(raw)[key]:
        print("{}\t{}\t{}".format(item["name"], item["digest"][:12], item["size"]))
    return 0


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("Usage: ollama serve | create NAME -f Modelfile | list | ps | --version\n" + STANDIN_NOTE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-v", "--version"):
        print(f"ollama version is {VERSION}")
        print(f"Warning: {STANDIN_NOTE}", file=sys.stderr)
        return 0
    if cmd in ("serve", "start"):
        return serve()
    if cmd == "create":
        return create(rest)
    if cmd in ("list", "ls"):
        return list_models("/api/tags", "models")
    if cmd == "ps":
        return list_models("/api/ps", "models")
    print(f"Error: unknown command {cmd!r} for ollama ({STANDIN_NOTE})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
