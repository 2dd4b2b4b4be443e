#!/usr/bin/python
"""Ansible module: make one Ollama instance serve one model file, in one call."""

DOCUMENTATION = r"""
---
module: ollama_model
short_description: Import a GGUF file into a running Ollama instance and load it
description:
  - Waits until the instance's API answers C(GET /api/version).
  - Finds the sha256 of the model file, which is what Ollama names its blob by. Hashing a large
    GGUF takes seconds per GB, so the digest is kept in a stamp file and trusted while the file's
    path, size, mtime and inode are the ones it was taken from; a missing, broken or foreign
    stamp counts as none and is rewritten.
  - Asks the instance (C(POST /api/show)) whether it knows the model built from that blob; when it
    does not, runs C(ollama create NAME -f MODELFILE) with the instance's C(OLLAMA_HOST); the
    client hashes and uploads the file and creates the model (no HTTP call alone does that).
  - Loads the model (C(POST /api/generate) with C(keep_alive=-1)), as Ollama never preloads.
  - Needs nothing but the Python standard library on the target host.
version_added: "1.0.0"
author:
  - Lab toolkit maintainers
options:
  name:
    description: The instance's name, used in messages.
    type: str
    required: true
  url:
    description: The instance's API, C(http://HOST:PORT).
    type: str
    required: true
  ollama_host:
    description: The C(OLLAMA_HOST) the ollama client uses to reach the instance.
    type: str
    required: true
  model:
    description: The name the model gets in Ollama (C(ollama create NAME)).
    type: str
    required: true
  path:
    description: The GGUF file the Modelfile's C(FROM) names.
    type: path
    required: true
  modelfile:
    description: The instance's Modelfile, written before this module runs.
    type: path
    required: true
  stamp:
    description: Where the digest stamp of O(path) is kept (JSON, owned by root, mode 0644).
    type: path
    required: true
  ollama_bin:
    description: The ollama client binary.
    type: path
    required: true
  api_timeout:
    description: Seconds to wait for the API to answer.
    type: int
    default: 60
  load_timeout:
    description: Seconds the load request may take.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written, created or loaded; the result says what would change.
"""

EXAMPLES = r"""
- name: Import and load the model of chat
  ollama_model:
    name: chat
    url: http://127.0.0.1:11434
    ollama_host: 127.0.0.1:11434
    model: tiny
    path: /media/data/models/tiny-llama-F32.gguf
    modelfile: /srv/ailab/ollama/chat/Modelfile
    stamp: /srv/ailab/ollama/chat/model-digest.json
    ollama_bin: /opt/ollama/0.32.0/bin/ollama
"""

RETURN = r"""
sha256:
  description: The model file's sha256.
  type: str
  returned: success
hashed:
  description: Whether the file was hashed in this run (no valid stamp).
  type: bool
  returned: success
stamp_written:
  description: Whether the digest stamp was (or in check mode would be) written.
  type: bool
  returned: success
created:
  description: Whether C(ollama create) ran (or in check mode would run).
  type: bool
  returned: success
"""

import hashlib
import json
import os
import re
import stat
import tempfile
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def stamp_key(path, st):
    """What a stamp must have been taken from to be trusted."""
    return {"path": path, "size": st.st_size, "mtime": st.st_mtime, "inode": st.st_ino}


def read_text(path):
    """The file's text, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def read_stamp(text, key):
    """The sha256 of a stamp's text that matches ``key``, else None (missing, broken or foreign)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or not _HEX64.match(str(data.get("sha256", ""))):
        return None
    rest = {k: v for k, v in data.items() if k != "sha256"}
    return data["sha256"] if rest == key else None


def stamp_text(key, sha256):
    """The stamp file's text: the key and the digest, sorted, one value per line."""
    return json.dumps(dict(key, sha256=sha256), indent=4, sort_keys=True) + "\n"


def write_file(path, text, mode=0o644):
    """Replace ``path`` atomically with ``text``."""
    fd, tmp = tempfile.mkstemp(prefix=".stamp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sha256_of(path, chunk=8 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def api(url, path, body=None, timeout=10):
    """(status, parsed JSON or None) of one API call; (None, reason) when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method="GET" if body is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (OSError, ValueError) as exc:
        return None, str(exc)
    try:
        return status, json.loads(raw.decode() or "null")
    except ValueError:
        return status, None


def wait_for_api(url, timeout, sleep=time.sleep, clock=time.monotonic):
    deadline = clock() + timeout
    while True:
        status, reply = api(url, "/api/version", timeout=5)
        if status == 200:
            return None
        if clock() >= deadline:
            return f"HTTP {status}" if status else reply
        sleep(1)


def ensure(p, check_mode, run_command):
    """Do the work; returns (result dict, error message or None)."""
    name = p["name"]
    result = {"changed": False, "hashed": False, "stamp_written": False, "created": False}
    failure = wait_for_api(p["url"], p["api_timeout"])
    if failure is not None:
        return result, "Ollama instance {}: its API at {} did not answer within {} s ({})".format(
            name, p["url"], p["api_timeout"], failure
        )
    try:
        st = os.stat(p["path"])
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        return (
            result,
            "Ollama instance {}: its model {} is not a file on this host (is the model store mounted?)".format(
                name, p["path"]
            ),
        )
    key = stamp_key(p["path"], st)
    current = read_text(p["stamp"])
    sha256 = read_stamp(current, key)
    if sha256 is None:
        sha256 = sha256_of(p["path"])
        result["hashed"] = True
    result["sha256"] = sha256
    wanted = stamp_text(key, sha256)
    if current != wanted:
        result["stamp_written"] = True
        if not check_mode:
            write_file(p["stamp"], wanted)
    status, shown = api(p["url"], "/api/show", {"model": p["model"]}, timeout=30)
    if status not in (200, 404):
        return result, "Ollama instance {}: /api/show answered {} for {}".format(
            name, status or shown, p["model"]
        )
    modelfile = (shown or {}).get("modelfile", "") if status == 200 else ""
    if status == 404 or "sha256-" + sha256 not in modelfile:
        result["created"] = True
        if not check_mode:
            rc, out, err = run_command(
                [p["ollama_bin"], "create", p["model"], "-f", p["modelfile"]],
                environ_update={"OLLAMA_HOST": p["ollama_host"]},
            )
            if rc != 0:
                return result, "Ollama instance {}: ollama create {} failed (rc {}): {}".format(
                    name, p["model"], rc, (err or out).strip()[-2000:]
                )
    if not check_mode:
        status, reply = api(
            p["url"], "/api/generate", {"model": p["model"], "keep_alive": -1}, timeout=p["load_timeout"]
        )
        if status != 200:
            return result, "Ollama instance {}: loading {} failed: {}".format(
                name, p["model"], (reply or {}).get("error") if isinstance(reply, dict) else reply or status
            )
    result["changed"] = result["stamp_written"] or result["created"]
    return result, None


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "url": {"type": "str", "required": True},
            "ollama_host": {"type": "str", "required": True},
            "model": {"type": "str", "required": True},
            "path": {"type": "path", "required": True},
            "modelfile": {"type": "path", "required": True},
            "stamp": {"type": "path", "required": True},
            "ollama_bin": {"type": "path", "required": True},
            "api_timeout": {"type": "int", "default": 60},
            "load_timeout": {"type": "int", "default": 300},
        },
        supports_check_mode=True,
    )
    result, error = ensure(module.params, module.check_mode, module.run_command)
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
