#!/usr/bin/env python3
"""Stand-in for the Hugging Face Hub's model download interface. It is NOT the Hub.

It serves a few model repositories, declared in a JSON file, over the endpoints the
``model_store`` role and the official client (``huggingface_hub``) read, with the answers
and headers the client parses (huggingface_hub 2.4.0, the version requirements.txt pins):

- ``GET /api/models/{repo_id}[/revision/{revision}][?blobs=true]``: the model info
  (``HfApi.model_info`` in ``hf_api.py``): ``id``, ``sha`` (the commit the revision names),
  ``private``, ``siblings`` [{``rfilename``}], with ``blobs=true`` (``files_metadata=True``)
  also ``size``, ``blobId`` (the git blob id) and, for LFS files, ``lfs`` {``sha256``,
  ``size``, ``pointerSize``} (``RepoSibling``/``BlobLfsInfo`` in ``hf_api.py``).
- ``GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=…``: the tree listing
  ``snapshot_download`` reads (``HfApi._iter_repo_tree_pages``; entries parsed by
  ``RepoFile``/``RepoFolder``: ``type``, ``oid``, ``size``, ``path``, ``lfs`` {``oid``,
  ``size``, ``pointerSize``}); one page, no ``Link`` header.
- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``: the file (``hf_hub_url`` in
  ``file_download.py``). Every answer carries ``X-Repo-Commit`` (``get_hf_file_metadata``
  fails without it). A small (non-LFS) file is answered here, ``ETag`` its git blob id. An LFS
  file is answered ``302 Found`` to the stand-in CDN, another origin (port), carrying
  ``X-Linked-Etag`` (its sha256) and ``X-Linked-Size``: upstream's
  ``_httpx2_follow_hub_redirects_with_backoff`` (``utils/_http.py``) stops at a redirect that
  leaves the Hub's origin and reads the metadata from that redirect, then downloads from
  ``Location`` without the ``Authorization`` header.
- ``GET``/``HEAD`` on the CDN: the blob by sha256, ``Range: bytes=N-`` answered ``206`` with
  ``Content-Range`` (``http_get`` resumes with it), ``416`` past the end.

Errors as the Hub sends them (``hf_raise_for_status`` in ``utils/_http.py`` maps the
``X-Error-Code`` header): an unknown repository, or a private one without a token, ``401``
``RepoNotFound``; a wrong token ``401`` "Invalid credentials in Authorization header"; an
unknown branch, tag or commit ``404`` ``RevisionNotFound``; an unknown file ``404``
``EntryNotFound`` (with ``X-Repo-Commit``). Revisions are branch and tag names and full
40-hex commit ids (short ids are refused).

Not the Hub: no Xet (no ``X-Xet-*`` headers, so clients use plain HTTP), no uploads, no
gated repositories, no datasets or spaces, no pagination, no signed CDN URLs, no
``refs/pr/N``. Commit ids are not git's: each is the sha1 of its parent's id and its
files' blob ids, so the same files give the same ids on every run.

The repositories file::

    {"repos": [{"id": "org/name", "token": "hf_… (makes it private)",
                "commits": [{"files": {"README.md": {"text": "…"},
                                       "model.gguf": {"path": "/abs/file", "lfs": true}}}],
                "refs": {"main": -1, "v1.0": 0}}]}

A commit's files replace its parent's (list them all). ``refs`` name commits by index. A file
is LFS when it says so, else when its suffix is one the Hub's default ``.gitattributes``
stores with LFS (``.gguf``, ``.safetensors``, ``.bin``, …).

usage: hf_hub_standin.py --repos FILE [--bind ADDR] [--port N] [--cdn-port N]
       [--rate BYTES_PER_S] [--log FILE] [--print-commits]
"""

import argparse
import hashlib
import http.server
import io
import json
import os
import sys
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".model", ".ckpt")
CHUNK = 64 * 1024


def git_blob_sha1(data):
    """The git object id of a blob holding data (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256, size):
    """The git-lfs pointer file the repository's git tree holds instead of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class Blob:
    """One file of a commit: its bytes (from a path or a text) and its ids."""

    def __init__(self, path, spec, base):
        self.path = path
        self.source = os.path.join(base, spec["path"]) if "path" in spec else None
        self.text = spec.get("text", "").encode() if self.source is None else None
        self.lfs = bool(spec.get("lfs", path.lower().endswith(LFS_SUFFIXES)))
        sha256, sha1, size = hashlib.sha256(), hashlib.sha1(), 0
        if self.source:
            size = os.path.getsize(self.source)
            sha1.update(b"blob %d\0" % size)
            with open(self.source, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    sha256.update(block)
                    sha1.update(block)
        else:
            size = len(self.text)
            sha256.update(self.text)
            sha1.update(b"blob %d\0" % size + self.text)
        self.size, self.sha256 = size, sha256.hexdigest()
        if self.lfs:
            pointer = lfs_pointer(self.sha256, size)
            self.blob_id, self.pointer_size = git_blob_sha1(pointer), len(pointer)
        else:
            self.blob_id, self.pointer_size = sha1.hexdigest(), None

    def open(self):
        if self.source:
            return open(self.source, "rb")  # noqa: SIM115 - the caller closes it
        return io.BytesIO(self.text)

    def sibling(self, blobs):
        """An entry of the model info's ``siblings``."""
        entry = {"rfilename": self.path}
        if blobs:
            entry.update(size=self.size, blobId=self.blob_id)
            if self.lfs:
                entry["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry

    def tree_entry(self):
        """An entry of the tree listing."""
        entry = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry


class Repo:
    def __init__(self, spec, base):
        self.id = spec["id"]
        self.token = spec.get("token")
        self.commits = {}
        order = []
        parent = ""
        for commit in spec["commits"]:
            files = {p: Blob(p, s, base) for p, s in sorted(commit["files"].items())}
            ids = "".join(f"{p} {b.blob_id}\n" for p, b in files.items())
            sha = hashlib.sha1(f"commit\nparent {parent}\n{ids}".encode()).hexdigest()
            self.commits[sha] = files
            order.append(sha)
            parent = sha
        self.refs = {name: order[index] for name, index in spec.get("refs", {"main": -1}).items()}

    def resolve(self, revision):
        """The commit a branch, tag or full commit id names, or None."""
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


def load_repos(path):
    with open(path, encoding="utf-8") as fh:
        spec = json.load(fh)
    base = os.path.dirname(os.path.abspath(path))
    return {r.id: r for r in (Repo(s, base) for s in spec["repos"])}


class HubError(Exception):
    def __init__(self, status, code, message, commit=None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hf-hub-standin/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        self.server.hub.log(
            f"{self.server.role} {self.command} {self.path} range={self.headers.get('Range', '-')} "
            f"auth={'yes' if self.headers.get('Authorization') else 'no'} {format % args}"
        )

    def _json(self, status, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, err):
        extra = {"X-Error-Code": err.code} if err.code else {}
        extra["X-Error-Message"] = err.message
        if err.commit:
            extra["X-Repo-Commit"] = err.commit
        self._json(err.status, {"error": err.message}, extra)

    def _stream(self, blob, extra):
        """Send blob with Range support (bytes=N- and bytes=N-M)."""
        size, start, end = blob.size, 0, blob.size - 1
        spec = self.headers.get("Range", "")
        status = 200
        if spec.startswith("bytes="):
            first, _, last = spec[6:].partition("-")
            if first.isdigit():
                start = int(first)
                end = min(int(last), size - 1) if last.isdigit() else size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        rate = self.server.hub.rate
        with blob.open() as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0:
                block = fh.read(min(CHUNK, left))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)
                if rate:
                    time.sleep(len(block) / rate)

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self):  # noqa: N802 - http.server's naming
        try:
            if self.server.role == "cdn":
                self._cdn()
            else:
                self._hub()
        except HubError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _cdn(self):
        sha = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
        blob = self.server.hub.blobs.get(sha)
        if blob is None:
            raise HubError(404, None, "blob not found")
        self._stream(blob, {"ETag": f'"{sha}"'})

    def _repo(self, segments):
        """(repo, the remaining segments) for a path starting with a repo id, checking access."""
        repos = self.server.hub.repos
        for width in (2, 1):
            repo_id = "/".join(segments[:width])
            if len(segments) >= width and repo_id in repos:
                repo = repos[repo_id]
                break
        else:
            raise HubError(401, "RepoNotFound", "Repository not found")
        auth = self.headers.get("Authorization", "")
        if repo.token:
            if not auth:
                raise HubError(401, "RepoNotFound", "Repository not found")
            if auth != f"Bearer {repo.token}":
                raise HubError(401, None, "Invalid credentials in Authorization header")
        return repo, segments[width:]

    def _commit(self, repo, revision):
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def _hub(self):
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        raw = [s for s in parts.path.split("/") if s != ""]
        if raw[:2] == ["api", "models"]:
            repo, rest = self._repo(raw[2:])
            if not rest or rest[0] == "revision":
                revision = urllib.parse.unquote(rest[1]) if len(rest) > 1 else "main"
                commit = self._commit(repo, revision)
                blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
                files = repo.commits[commit]
                self._json(
                    200,
                    {
                        "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
                        "id": repo.id,
                        "modelId": repo.id,
                        "sha": commit,
                        "private": bool(repo.token),
                        "gated": False,
                        "disabled": False,
                        "tags": ["stand-in"],
                        "siblings": [b.sibling(blobs) for b in files.values()],
                    },
                )
                return
            if rest[0] == "tree" and len(rest) > 1:
                commit = self._commit(repo, urllib.parse.unquote(rest[1]))
                self._json(
                    200, self._tree(repo.commits[commit], urllib.parse.unquote("/".join(rest[2:])), query)
                )
                return
            raise HubError(404, None, "Not found")
        repo, rest = self._repo([urllib.parse.unquote(s) for s in raw])
        if len(rest) < 3 or rest[0] != "resolve":
            raise HubError(404, None, "Not found")
        commit = self._commit(repo, rest[1])
        path = "/".join(rest[2:])
        blob = repo.commits[commit].get(path)
        if blob is None:
            raise HubError(404, "EntryNotFound", f'{path} does not exist on "{rest[1]}"', commit=commit)
        if blob.lfs:
            host = (self.headers.get("Host") or self.server.server_address[0]).rsplit(":", 1)[0]
            location = f"http://{host}:{self.server.hub.cdn_port}/lfs/{blob.sha256}"
            body = f"Found. Redirecting to {location}".encode()
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
            self.send_header("X-Linked-Size", str(blob.size))
            self.send_header("ETag", f'"{blob.blob_id}"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        self._stream(blob, {"X-Repo-Commit": commit, "ETag": f'"{blob.blob_id}"'})

    @staticmethod
    def _tree(files, under, query):
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{under}/" if under else ""
        entries, folders = [], set()
        for path, blob in files.items():
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :].split("/")
            for depth in range(1, len(rel)):
                folders.add("/".join(rel[:depth]))
            if recursive or len(rel) == 1:
                entries.append(blob.tree_entry())
        for folder in sorted(folders):
            if recursive or "/" not in folder:
                oid = hashlib.sha1(f"tree {prefix}{folder}".encode()).hexdigest()
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": prefix + folder})
        if not entries and under:
            raise HubError(404, "EntryNotFound", f"{under} does not exist")
        return sorted(entries, key=lambda e: e["path"])


class Hub:
    """The two servers (the Hub and its CDN) over one set of repositories."""

    def __init__(self, repos, bind="127.0.0.1", port=0, cdn_port=0, rate=0, log=None):
        self.repos, self.rate, self.log_path = repos, rate, log
        self.lines = []
        self._lock = threading.Lock()
        self.blobs = {
            b.sha256: b for r in repos.values() for c in r.commits.values() for b in c.values() if b.lfs
        }
        self.cdn = http.server.ThreadingHTTPServer((bind, cdn_port), _Handler)
        self.api = http.server.ThreadingHTTPServer((bind, port), _Handler)
        for server, role in ((self.api, "hub"), (self.cdn, "cdn")):
            server.hub, server.role, server.daemon_threads = self, role, True
        self.port, self.cdn_port = self.api.server_address[1], self.cdn.server_address[1]
        self._threads = []

    def log(self, line):
        with self._lock:
            self.lines.append(line)
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")

    def start(self):
        """Serve both in background threads (tests); returns the endpoint."""
        for server in (self.api, self.cdn):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        for server in (self.api, self.cdn):
            server.shutdown()
            server.server_close()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Stand-in for the Hugging Face Hub's download interface")
    parser.add_argument("--repos", required=True, help="the repositories file (JSON)")
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--cdn-port", type=int, default=8091)
    parser.add_argument("--rate", type=int, default=0, help="bytes per second per download (0: no limit)")
    parser.add_argument("--log", default=None)
    parser.add_argument("--print-commits", action="store_true", help="print each repo's refs and exit")
    args = parser.parse_args(argv)
    repos = load_repos(args.repos)
    if args.print_commits:
        json.dump({r.id: r.refs for r in repos.values()}, sys.stdout, indent=1, sort_keys=True)
        print()
        return
    hub = Hub(repos, args.bind, args.port, args.cdn_port, args.rate, args.log)
    threading.Thread(target=hub.cdn.serve_forever, daemon=True).start()
    hub.api.serve_forever()


if __name__ == "__main__":
    main()
