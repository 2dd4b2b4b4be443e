"""STAND-IN for text-generation-webui's server.py (v4.7.3), used by the tests where the
real checkout cannot be downloaded. It is NOT text-generation-webui: it loads no
weights and runs no inference.

What it reproduces from upstream v4.7.3:
- ``--user-data-dir`` is taken from the real command line only; CMD_FLAGS.txt is read
  from that directory: each line stripped, blank lines and lines starting with ``#``
  skipped, the rest joined, shlex-split and placed before the real command line;
- strict argparse (allow_abbrev like upstream) built from the pinned flag table
  (textgen_flags.json, generated from plugins/module_utils/textgen_flags.py when the
  stand-in is packaged): an unknown or removed flag stops startup with exit status 2;
- ``--model`` as a path, or a name under ``--model-dir`` (default <user-data-dir>/models);
  a missing model is logged and the API still starts without it (as upstream does);
- binds: 127.0.0.1 unless ``--listen`` (all addresses) or ``--listen-host``; UI on
  ``--listen-port`` (7860) unless ``--nowebui``; the OpenAI API on ``--api-port`` (5000)
  with ``--api``; ``--api-key`` checked as a Bearer token; without ``--listen`` the API
  answers 400 to Host headers other than localhost/127.0.0.1; a GGUF model also holds the
  internal llama-server port api_port+5 (127.0.0.1);
- GET /v1/models lists the loaded model; GET /v1/internal/model/info; POST
  /v1/completions and /v1/chat/completions answer with a fixed text naming this stand-in.
Standard library only.
"""

import json
import os
import shlex
import socket
import sys
import threading
import time
from argparse import ArgumentParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN_NOTE = "stand-in for text-generation-webui (tests/standins/textgen-webui): no inference performed"


def log(msg):
    sys.stderr.write(f"[textgen-standin] {msg}\n")
    sys.stderr.flush()


def user_data_dir(argv):
    """Upstream reads --user-data-dir from the real command line before CMD_FLAGS.txt."""
    for i, arg in enumerate(argv):
        if arg == "--user-data-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--user-data-dir="):
            return arg.split("=", 1)[1]
    return os.path.join(HERE, "user_data")


def cmd_flags(directory):
    path = os.path.join(directory, "CMD_FLAGS.txt")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        lines = [line.strip() for line in fh]
    kept = [line for line in lines if line and not line.startswith("#")]
    return shlex.split(" ".join(kept))


def build_parser():
    with open(os.path.join(HERE, "textgen_flags.json")) as fh:
        table = json.load(fh)
    parser = ArgumentParser(description="text-generation-webui (stand-in)", allow_abbrev=True)
    for entry in table["flags"]:
        names = [entry["flag"]] + list(entry.get("aliases", []))
        dest = entry["flag"].lstrip("-").replace("-", "_")
        if entry.get("takes_value"):
            kind = {"int": int, "float": float}.get(entry.get("value_type"), str)
            kwargs = {"dest": dest, "type": kind}
            if entry.get("nargs"):
                kwargs["nargs"] = entry["nargs"]
            if entry.get("choices"):
                kwargs["choices"] = entry["choices"]
            parser.add_argument(*names, **kwargs)
        elif entry.get("negated_form"):
            parser.add_argument(*names, dest=dest, action="store_true", default=None)
            parser.add_argument(entry["negated_form"], dest=dest, action="store_false")
        else:
            parser.add_argument(*names, dest=dest, action="store_true")
    return parser


def resolve_model(args, data_dir):
    if not args.model:
        return None, None
    model_dir = args.model_dir or os.path.join(data_dir, "models")
    candidate = args.model if os.path.exists(args.model) else os.path.join(model_dir, args.model)
    if not os.path.exists(candidate):
        log(f"ERROR: the path to the model does not exist: {candidate}")
        return None, None
    if args.loader:
        loader = args.loader
    elif (
        os.path.isdir(candidate)
        and any(n.endswith(".gguf") for n in os.listdir(candidate))
        or ".gguf" in args.model.lower()
    ):
        loader = "llama.cpp"
    elif "exl3" in args.model.lower():
        loader = "ExLlamav3"
    else:
        loader = "Transformers"
    return args.model, loader


def make_api_handler(args, model_name, loader):
    allowed_hosts = ("localhost", "127.0.0.1", "[::1]")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *fargs):
            log(f"api {self.address_string()} {fmt % fargs}")

        def reply(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def guard(self):
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if not (args.listen or args.listen_host) and host not in allowed_hosts:
                self.reply(400, {"detail": "Invalid host header"})
                return False
            if args.api_key and self.headers.get("Authorization") != "Bearer " + args.api_key:
                self.reply(401, {"detail": "Unauthorized"})
                return False
            return True

        def do_GET(self):
            if not self.guard():
                return
            if self.path.rstrip("/") == "/v1/models":
                data = [] if not model_name else [{"id": model_name, "object": "model", "owned_by": "user"}]
                self.reply(200, {"object": "list", "data": data})
            elif self.path == "/v1/internal/model/info":
                self.reply(
                    200, {"model_name": model_name or "None", "loader": loader, "standin": STANDIN_NOTE}
                )
            else:
                self.reply(404, {"detail": "Not Found"})

        def do_POST(self):
            if not self.guard():
                return
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path not in ("/v1/completions", "/v1/chat/completions"):
                self.reply(404, {"detail": "Not Found"})
                return
            if not model_name:
                self.reply(400, {"detail": "No model is loaded"})
                return
            text = f"[{STANDIN_NOTE}]"
            if self.path == "/v1/completions":
                choice = {"index": 0, "text": text, "finish_reason": "stop"}
                obj = "text_completion"
            else:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                obj = "chat.completion"
            self.reply(
                200,
                {
                    "id": "standin",
                    "object": obj,
                    "created": int(time.time()),
                    "model": model_name,
                    "choices": [choice],
                },
            )

    return Handler


class UIHandler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *fargs):
        log(f"ui {self.address_string()} {fmt % fargs}")

    def do_GET(self):
        body = f"<html><body><h1>text-generation-webui</h1><p>{STANDIN_NOTE}</p></body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv):
    data_dir = user_data_dir(argv)
    args = build_parser().parse_args(cmd_flags(data_dir) + argv)  # exits 2 on unknown flags
    log(STANDIN_NOTE)
    host = args.listen_host or ("0.0.0.0" if args.listen else "127.0.0.1")
    model_name, loader = resolve_model(args, data_dir)
    if model_name:
        log(f"Loaded model {model_name} with loader {loader} (nothing is really loaded)")
    servers = []
    if loader == "llama.cpp" and args.api:
        internal = socket.socket()
        internal.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        internal.bind(("127.0.0.1", (args.api_port or 5000) + 5))
        internal.listen(1)
        log(f"internal llama-server port {(args.api_port or 5000) + 5} held")
    if args.api:
        servers.append(
            ThreadingHTTPServer((host, args.api_port or 5000), make_api_handler(args, model_name, loader))
        )
        log(f"OpenAI-compatible API on {host}:{args.api_port or 5000}")
    if not args.nowebui:
        servers.append(ThreadingHTTPServer((host, args.listen_port or 7860), UIHandler))
        log(f"UI on {host}:{args.listen_port or 7860}")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
