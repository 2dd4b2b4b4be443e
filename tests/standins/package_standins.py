#!/usr/bin/env python3
"""Package the stand-ins like the upstream artifacts they replace (tests only).

- ``text-generation-webui-<version>-standin.tar.gz``: laid out like GitHub's source
  archive of the pinned tag (one top directory holding server.py, one_click.py,
  start_linux.sh), plus textgen_flags.json, the pinned flag table the stand-in's strict
  parser is built from (plugins/module_utils/textgen_flags.py).
- ``ollama-linux-amd64.tar.zst`` (the upstream release archive format: bin/ollama and
  lib/ollama/) holding the Ollama stand-in; ``.tgz`` too with --tgz.

Writes ``standins.json`` (file name -> sha256) next to them; prints the directory.
Deterministic: fixed mtimes and owners. Usage: package_standins.py OUTDIR [--tgz]
"""

import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_flags():
    path = os.path.join(ROOT, "plugins", "module_utils", "textgen_flags.py")
    spec = importlib.util.spec_from_file_location("standin_textgen_flags", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add(tar, name, data, mode):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    tar.addfile(info)


def read(*parts):
    with open(os.path.join(HERE, *parts), "rb") as fh:
        return fh.read()


def textgen(out):
    flags = load_flags()
    version = flags.TEXTGEN_VERSION.lstrip("v")
    top = f"text-generation-webui-{version}/"
    table = {"version": flags.TEXTGEN_VERSION, "commit": flags.TEXTGEN_COMMIT, "flags": flags.FLAGS}
    name = f"text-generation-webui-{flags.TEXTGEN_VERSION}-standin.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_dir(tar, top)
        add(tar, top + "server.py", read("textgen-webui", "server.py"), 0o644)
        add(tar, top + "one_click.py", read("textgen-webui", "one_click.py"), 0o644)
        add(tar, top + "start_linux.sh", read("textgen-webui", "start_linux.sh"), 0o755)
        add(tar, top + "textgen_flags.json", json.dumps(table, indent=1).encode(), 0o644)
        add(
            tar,
            top + "STANDIN.txt",
            b"This is a stand-in for text-generation-webui, not the real program.\n",
            0o644,
        )
    import gzip

    with open(os.path.join(out, name), "wb") as fh:
        fh.write(gzip.compress(raw.getvalue(), mtime=0))
    return name


def ollama(out, tgz):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_dir(tar, "bin/")
        add(tar, "bin/ollama", read("ollama", "ollama_standin.py"), 0o755)
        add_dir(tar, "lib/")
        add_dir(tar, "lib/ollama/")
        add(tar, "lib/ollama/STANDIN.txt", b"This is a stand-in for Ollama, not the real program.\n", 0o644)
    names = ["ollama-linux-amd64.tar.zst"]
    subprocess.run(
        ["zstd", "-q", "-f", "-19", "-o", os.path.join(out, names[0])], input=raw.getvalue(), check=True
    )
    if tgz:
        import gzip

        names.append("ollama-linux-amd64.tgz")
        with open(os.path.join(out, names[1]), "wb") as fh:
            fh.write(gzip.compress(raw.getvalue(), mtime=0))
    return names


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def main(argv):
    if not argv:
        sys.exit(__doc__)
    out = os.path.abspath(argv[0])
    os.makedirs(out, exist_ok=True)
    names = [textgen(out)] + ollama(out, "--tgz" in argv)
    sums = {name: sha256(os.path.join(out, name)) for name in names}
    with open(os.path.join(out, "standins.json"), "w") as fh:
        json.dump(sums, fh, indent=1, sort_keys=True)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
