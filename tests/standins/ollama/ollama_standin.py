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

The OpenAI-compatible API (LiteLLM's api_base http://<host>:<port>/v1), as ollama/ollama
v0.32.0 (tag v0.32.0, commit f1a0ffd6) serves it: server/routes.go registers
POST /v1/chat/completions (middleware.ChatMiddleware + ChatHandler), POST /v1/completions
(CompletionsMiddleware + GenerateHandler), GET /v1/models (ListMiddleware + ListHandler) and
GET /v1/models/:model (RetrieveMiddleware + ShowHandler). Mirrored:
- shapes, openai/openai.go: ToChatCompletion (object "chat.completion", system_fingerprint
  "fp_ollama", choices[0].message {role, content}, finish_reason = done_reason, usage),
  ToChunk (object "chat.completion.chunk", delta {role "assistant", content}), ToCompletion /
  ToCompleteChunk (object "text_completion", choices[0].text), ToUsage (prompt_tokens =
  prompt_eval_count, completion_tokens = eval_count), ToListCompletion ({"object": "list",
  "data": [...]}, data null when no model), ToModel (id = the name as asked, object "model",
  created = modified time, owned_by = model.ParseName(name).Namespace, i.e. "library");
  ids "chatcmpl-<0..998>" / "cmpl-<0..998>" (ChatMiddleware, CompletionsMiddleware);
- streaming, middleware/openai.go ChatWriter/CompleteWriter.writeResponse: text/event-stream of
  `data: <json>` events, one per response of the handler, the last with finish_reason, then
  (stream_options.include_usage) a usage event with empty choices (CompleteWriter also puts
  zero usage on every chunk), then `data: [DONE]`;
- errors, openai.NewError via BaseWriter.writeError: {"error": {"message", "type", "param":
  null, "code": null}}, type invalid_request_error (400), not_found_error (404), api_error;
  - body not JSON or a field of the wrong type: 400 with Go's decoder message (c.ShouldBindJSON
    in the middleware; an empty body is "EOF");
  - chat: no messages: 400 "[] is too short - 'messages'" (ChatMiddleware); bad content:
    "invalid message format", "invalid image input", "invalid message content type: <T>",
    "invalid tool call arguments", bad reasoning effort (openai.FromChatRequest);
  - chat: missing model: 400 "model is required"; unknown model: 404 "model '<model>' not
    found" (ChatHandler: writeModelRefParseError, GetModel -> os.IsNotExist); invalid name:
    400 "invalid model name" (errtypes.InvalidModelNameErrMsg); tools: 400 "<full name> does
    not support tools", reasoning effort other than "none": 400 "\"<model>\" does not support
    thinking" (scheduleRunner -> CheckCapabilities; the stand-in's template has neither);
  - completions: missing or unknown model: 404 "model '<model>' not found" (GenerateHandler);
    a non-string stop: 400 "invalid type for 'stop' field: <T>" (openai.FromCompleteRequest);
    suffix: 400 "<full name> does not support insert"; empty prompt: the load answer
    (text "", finish_reason "load");
  - retrieve: unknown: 404 "model '<model:tag>' not found" (ShowHandler, req.Model =
    DisplayShortest);
- names: types/model/name.go ParseName (a name without tag is name:latest; default host and
  namespace) and getExistingName (parts matched case-insensitively).
The generated text is the one fixed text /api/generate gives (answer()): streamed a word a
chunk, completion_tokens = the words (chunks) sent, max_tokens cuts it (finish_reason
"length"), prompt_tokens = the prompt's words. Not reproduced: :cloud/:local names, remote
models, stop sequences applied to the text, images (validated, then ignored), logprobs,
/v1/embeddings, /v1/responses, /v1/messages, images and audio routes.

What it does not: load weights, use a GPU, pull from a registry, templates, /api/chat.
/api/generate and the /v1 completions answer with a fixed text that says it comes from this
stand-in; an unknown model there is 404 "model '<model>' not found" (routes.go
GenerateHandler). Standard library only.
"""

import datetime
import hashlib
import json
import os
import random
import re
import shlex
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

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


DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
NAME_PART = {
    "host": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"),
    "namespace": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"),
    "model": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
}


def parse_name(raw):
    """types/model/name.go ParseName + IsValid: [host/][namespace/]model[:tag][@digest], empty
    parts defaulted (registry.ollama.ai, library, latest); None when a part is invalid."""
    text = raw.split("@", 1)[0]
    tag = ""
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        text, tag = text[:colon], text[colon + 1 :]
    host, namespace, model = "", "", text
    if "/" in text:
        rest, model = text.rsplit("/", 1)
        host, _, namespace = rest.rpartition("/")
    parts = {
        "host": host or DEFAULT_HOST,
        "namespace": namespace or DEFAULT_NAMESPACE,
        "model": model,
        "tag": tag or "latest",
    }
    if not all(NAME_PART[kind].fullmatch(value) for kind, value in parts.items()):
        return None
    return parts["host"], parts["namespace"], parts["model"], parts["tag"]


def display_shortest(raw):
    """Name.DisplayShortest: the default host and namespace are left out."""
    host, namespace, model, tag = parse_name(raw)
    prefix = "" if host == DEFAULT_HOST else host + "/"
    if prefix or namespace != DEFAULT_NAMESPACE:
        prefix += namespace + "/"
    return f"{prefix}{model}:{tag}"


def openai_model(name, modified):
    """openai.ToModel / ToListCompletion: owned_by is the name's namespace ("library")."""
    return {"id": name, "object": "model", "created": int(modified), "owned_by": parse_name(name)[1]}


def count_tokens(text):
    """The stand-in's token count: whitespace-separated words (it has no tokenizer)."""
    return len(text.split())


def answer(num_predict=None):
    """The stand-in's one generated text, in the pieces it is streamed in (a word and the
    space after it; one piece per counted token), cut at num_predict (max_tokens) pieces
    with done_reason "length" as the runner stops at num_predict; otherwise "stop"."""
    pieces = re.findall(r"\S+\s*", f"[{STANDIN_NOTE}]")
    if isinstance(num_predict, int) and not isinstance(num_predict, bool) and 0 < num_predict < len(pieces):
        return pieces[:num_predict], "length"
    return pieces, "stop"


def make_usage(prompt_tokens, completion_tokens):
    """openai.ToUsage / ToUsageGenerate: prompt_eval_count and eval_count."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def json_kind(value):
    """The JSON type name Go's encoding/json puts in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def go_type(value):
    """What Go's %T prints for a value decoded into `any`."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    return {str: "string", list: "[]interface {}", dict: "map[string]interface {}"}[type(value)]


def go_json_error(raw, exc):
    """Go's encoding/json message for a body that is not JSON (the common cases)."""
    pos = getattr(exc, "pos", len(raw))
    text = raw.decode(errors="replace")
    if pos >= len(text.rstrip()):
        return "unexpected EOF"
    return f"invalid character {text[pos]!r} looking for beginning of value"


# openai.ChatCompletionRequest / CompletionRequest fields the stand-in reads: the JSON types
# Go's decoder accepts for each, and the Go type it names when it refuses one.
CHAT_FIELDS = {
    "model": (("string",), "string"),
    "messages": (("array",), "[]openai.Message"),
    "stream": (("bool",), "bool"),
    "stream_options": (("object",), "openai.StreamOptions"),
    "max_tokens": (("number",), "int"),
    "tools": (("array",), "[]api.Tool"),
    "reasoning_effort": (("string",), "string"),
    "reasoning": (("object",), "openai.Reasoning"),
}
COMPLETION_FIELDS = {
    "model": (("string",), "string"),
    "prompt": (("string",), "string"),
    "stream": (("bool",), "bool"),
    "stream_options": (("object",), "openai.StreamOptions"),
    "max_tokens": (("number",), "int"),
    "suffix": (("string",), "string"),
}


def reasoning_effort(body):
    effort = (body.get("reasoning") or {}).get("effort") or body.get("reasoning_effort")
    return effort or None


def from_chat_request(body):
    """openai.FromChatRequest: (prompt text, error). Each message's content is a string, or a
    list of {"type": "text", "text": str} / {"type": "image_url", ...} parts; other content
    needs tool_calls (whose arguments must be JSON); the reasoning effort must be known."""
    texts = []
    for message in body["messages"]:
        if not isinstance(message, dict):
            return (
                None,
                f"json: cannot unmarshal {json_kind(message)} into Go struct field ChatCompletionRequest.messages of type openai.Message",
            )
        content = message.get("content")
        for call in message.get("tool_calls") or []:
            try:
                json.loads(((call or {}).get("function") or {}).get("arguments") or "")
            except (ValueError, AttributeError, TypeError):
                return None, "invalid tool call arguments"
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    return None, "invalid message format"
                if part.get("type") == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "image_url":
                    url = part.get("image_url")
                    url = url.get("url") if isinstance(url, dict) else url
                    if not isinstance(url, str):
                        return None, "invalid message format"
                    if not re.match(r"data:(image/(jpeg|jpg|png|webp))?;base64,", url):
                        return None, "invalid image input"
                else:
                    return None, "invalid message format"
        elif message.get("tool_calls") is None:
            return None, f"invalid message content type: {go_type(content)}"
    effort = reasoning_effort(body)
    if effort is not None and effort not in ("high", "medium", "low", "none"):
        return None, f'invalid reasoning value: \'{effort}\' (must be "high", "medium", "low", or "none")'
    return "\n".join(texts), None


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

    def modified(self, name):
        """The model's modified time: its manifest's mtime, as Ollama reports it."""
        return os.path.getmtime(self.manifest_path(name))

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
            elif path == "/v1/models":
                self.list_openai()
            elif path.startswith("/v1/models/") and "/" not in path[len("/v1/models/") :]:
                model = unquote(path[len("/v1/models/") :])
                if model:
                    self.retrieve_openai(model)
                else:
                    self.send_response(301)  # gin's RedirectTrailingSlash
                    self.send_header("Location", "/v1/models")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
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
            if path == "/v1/chat/completions":
                self.chat_openai()
                return
            if path == "/v1/completions":
                self.complete_openai()
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
                "modified_at": datetime.datetime.fromtimestamp(
                    state.store.modified(name), datetime.timezone.utc
                ).isoformat(),
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

        def find(self, raw):
            """(status, error, full) for a model reference, as routes.go resolves one:
            parseAndValidateModelRef (invalid name: 400 "invalid model name"), getExistingName
            (case-insensitive match of each part) and GetModel (no manifest: not found).
            status is 0 when the model exists; full is "model:tag" (or None)."""
            if not raw.strip():
                return 404, "required", None
            parts = parse_name(raw.strip())
            if parts is None:
                return 400, "invalid model name", None
            host, namespace, base, tag = parts
            if host.lower() != DEFAULT_HOST or namespace.lower() != DEFAULT_NAMESPACE:
                return 404, "not found", None
            for name, _, _ in state.store.models():
                stored_base, stored_tag = split_name(name)
                if stored_base.lower() == base.lower() and stored_tag.lower() == tag.lower():
                    return 0, None, name
            return 404, "not found", None

        def load(self, full, keep_alive):
            """Load (or, keep_alive 0, unload) a model as the scheduler does: /api/ps lists it."""
            keep = keep_alive_seconds(keep_alive)
            with state.lock:
                state.loaded.pop(full, None)
                while len(state.loaded) >= state.max_loaded:
                    state.loaded.pop(next(iter(state.loaded)))
                state.loaded[full] = None if keep is None else time.time() + keep
                if keep == 0:
                    del state.loaded[full]
            return keep

        def generate(self, body):
            name = body.get("model") or ""
            if not isinstance(name, str):
                kind = json_kind(name)
                self.send_json(
                    400,
                    {
                        "error": f"json: cannot unmarshal {kind} into Go struct field GenerateRequest.model of type string"
                    },
                )
                return
            status, error, full = self.find(name)
            if status:
                self.send_json(
                    status, {"error": "invalid model name" if status == 400 else f"model '{name}' not found"}
                )
                return
            keep = self.load(full, body.get("keep_alive", state.keep_alive))
            prompt = body.get("prompt") or ""
            done = {"model": name, "created_at": now_iso(), "response": "", "done": True}
            if not prompt:
                done["done_reason"] = "load" if keep != 0 else "unload"
                self.send_json(200, done)
                return
            options = body.get("options") or {}
            pieces, reason = answer(options.get("num_predict"))
            done.update(
                {"done_reason": reason, "eval_count": len(pieces), "prompt_eval_count": count_tokens(prompt)}
            )
            if body.get("stream") is False:
                done["response"] = "".join(pieces)
                self.send_json(200, done)
            else:
                self.send_stream(
                    [{"model": name, "created_at": now_iso(), "response": p, "done": False} for p in pieces]
                    + [done]
                )

        # --- OpenAI-compatible API (ollama/ollama v0.32.0, see the module docstring) ---

        def send_openai(self, status, obj, content_type="application/json"):
            """json.NewEncoder(...).Encode as middleware/openai.go writes: a trailing newline."""
            body = json.dumps(obj).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def openai_error(self, status, message, aborted=False):
            """openai.NewError: 400 invalid_request_error, 404 not_found_error, else api_error.
            A middleware's own refusal (c.AbortWithStatusJSON) is sent by gin with
            "application/json; charset=utf-8"; BaseWriter.writeError sets "application/json"."""
            etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
            error = {"error": {"message": message, "type": etype, "param": None, "code": None}}
            self.send_openai(
                status, error, "application/json; charset=utf-8" if aborted else "application/json"
            )

        def send_sse(self, events):
            """ChatWriter/CompleteWriter: `data: <json>` events, then `data: [DONE]`."""
            body = (
                b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def read_openai(self, struct, fields):
            """c.ShouldBindJSON into openai.<struct>: Go's decoder refuses a body that is not
            JSON (an empty one with "EOF") and a field of the wrong JSON type; a null field
            keeps its zero value. Returns the body, or None after answering 400."""
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw.strip():
                self.openai_error(400, "EOF", aborted=True)
                return None
            try:
                body = json.loads(raw)
            except ValueError as exc:
                self.openai_error(400, go_json_error(raw, exc), aborted=True)
                return None
            if body is None:
                body = {}
            if not isinstance(body, dict):
                self.openai_error(
                    400,
                    f"json: cannot unmarshal {json_kind(body)} into Go value of type openai.{struct}",
                    aborted=True,
                )
                return None
            for field, (kinds, gotype) in fields.items():
                value = body.get(field)
                if value is not None and json_kind(value) not in kinds:
                    message = f"json: cannot unmarshal {json_kind(value)} into Go struct field {struct}.{field} of type {gotype}"
                    self.openai_error(400, message, aborted=True)
                    return None
                if value is None:
                    body.pop(field, None)
            return body

        def list_openai(self):
            """ListMiddleware + ListHandler -> openai.ToListCompletion (data is null when empty)."""
            data = [openai_model(name, state.store.modified(name)) for name, _, _ in state.store.models()]
            self.send_openai(200, {"object": "list", "data": data or None})

        def retrieve_openai(self, raw):
            """RetrieveMiddleware + ShowHandler -> openai.ToModel; id is the name as asked."""
            status, error, full = self.find(raw)
            if status == 400:
                self.openai_error(400, "invalid model name")
            elif error == "required":
                self.openai_error(400, "model is required")
            elif status:
                self.openai_error(404, f"model '{display_shortest(raw)}' not found")
            else:
                self.send_openai(200, openai_model(raw, state.store.modified(full)))

        def chat_openai(self):
            body = self.read_openai("ChatCompletionRequest", CHAT_FIELDS)
            if body is None:
                return
            messages = body.get("messages") or []
            if not messages:
                self.openai_error(400, "[] is too short - 'messages'", aborted=True)
                return
            prompt, error = from_chat_request(body)
            if error:
                self.openai_error(400, error, aborted=True)
                return
            name = body.get("model") or ""
            status, error, full = self.find(name)
            if status == 400:
                self.openai_error(400, "invalid model name")
                return
            if error == "required":
                self.openai_error(400, "model is required")
                return
            if status:
                self.openai_error(404, f"model '{name}' not found")
                return
            if reasoning_effort(body) not in (None, "none"):
                self.openai_error(400, f"{json.dumps(name)} does not support thinking")
                return
            if body.get("tools"):
                self.openai_error(400, f"{DEFAULT_HOST}/{DEFAULT_NAMESPACE}/{full} does not support tools")
                return
            self.load(full, state.keep_alive)
            pieces, reason = answer(body.get("max_tokens"))
            usage = make_usage(count_tokens(prompt), len(pieces))
            cid = f"chatcmpl-{random.randrange(999)}"
            base = {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": name}
            base["system_fingerprint"] = "fp_ollama"
            if not body.get("stream"):
                message = {"role": "assistant", "content": "".join(pieces)}
                choice = {"index": 0, "message": message, "finish_reason": reason}
                self.send_openai(200, dict(base, choices=[choice], usage=usage))
                return
            base["object"] = "chat.completion.chunk"
            events = [
                dict(
                    base,
                    choices=[{"index": 0, "delta": {"role": "assistant", "content": p}, "finish_reason": f}],
                )
                for p, f in [(p, None) for p in pieces] + [("", reason)]
            ]
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append(dict(base, choices=[], usage=usage))
            self.send_sse(events)

        def complete_openai(self):
            body = self.read_openai("CompletionRequest", COMPLETION_FIELDS)
            if body is None:
                return
            stop = body.get("stop")
            if isinstance(stop, list):
                for item in stop:
                    if not isinstance(item, str):
                        self.openai_error(
                            400, f"invalid type for 'stop' field: {go_type(item)}", aborted=True
                        )
                        return
            name = body.get("model") or ""
            status, _, full = self.find(name)
            if status == 400:
                self.openai_error(400, "invalid model name")
                return
            if status:
                self.openai_error(404, f"model '{name}' not found")
                return
            if body.get("suffix"):
                self.openai_error(400, f"{DEFAULT_HOST}/{DEFAULT_NAMESPACE}/{full} does not support insert")
                return
            self.load(full, state.keep_alive)
            prompt = body.get("prompt") or ""
            if prompt:
                pieces, reason = answer(body.get("max_tokens"))
            else:
                pieces, reason = [], "load"
            usage = make_usage(count_tokens(prompt) if prompt else 0, len(pieces))
            base = {
                "id": f"cmpl-{random.randrange(999)}",
                "object": "text_completion",
                "created": int(time.time()),
            }
            if not body.get("stream"):
                choice = {"text": "".join(pieces), "index": 0, "finish_reason": reason}
                reply = dict(base, model=name, system_fingerprint="fp_ollama", choices=[choice], usage=usage)
                self.send_openai(200, reply)
                return
            include_usage = (body.get("stream_options") or {}).get("include_usage")
            events = []
            for text, finish in [(p, None) for p in pieces] + [("", reason)]:
                choice = {"text": text, "index": 0, "finish_reason": finish}
                event = dict(base, choices=[choice], model=name, system_fingerprint="fp_ollama")
                if include_usage:
                    event["usage"] = make_usage(0, 0)
                events.append(event)
            if include_usage:
                events.append(dict(events[-1], choices=[], usage=usage))
            self.send_sse(events)

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
