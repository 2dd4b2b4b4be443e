#!/usr/bin/env python3
"""Stand-in for a model download site: static files over HTTP with Range support.

python3 -m http.server answers Range requests with the whole file, so it cannot
show a resumed download. This server honours ``Range: bytes=N-`` (206 Partial
Content), sends Content-Length, can throttle to make progress visible, and logs
every request line with its Range header.

usage: range_server.py --dir DIR --bind ADDR --port PORT [--rate BYTES_PER_S] [--log FILE]
"""

import argparse
import http.server
import os
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    rate = 0

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        with open(self.server.log_path, "a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path} range={self.headers.get('Range', '-')} {format % args}\n")

    def _send(self, head_only):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start = 0
        spec = self.headers.get("Range", "")
        if spec.startswith("bytes=") and spec.endswith("-") and spec[6:-1].isdigit():
            start = int(spec[6:-1])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        if head_only:
            return
        with open(path, "rb") as data:
            data.seek(start)
            chunk = 64 * 1024
            while True:
                block = data.read(chunk)
                if not block:
                    break
                self.wfile.write(block)
                if self.rate:
                    time.sleep(len(block) / self.rate)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._send(head_only=False)

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._send(head_only=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rate", type=int, default=0)
    parser.add_argument("--log", default="/dev/null")
    args = parser.parse_args()
    os.chdir(args.dir)
    Handler.rate = args.rate
    server = http.server.ThreadingHTTPServer((args.bind, args.port), Handler)
    server.log_path = args.log
    server.serve_forever()


if __name__ == "__main__":
    main()
