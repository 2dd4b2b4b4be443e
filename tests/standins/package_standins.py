#!/usr/bin/env python3
"""Package the stand-ins like the upstream artifacts they replace (tests only).

- ``text-generation-webui-<version>-standin.tar.gz``: laid out like GitHub's source
  archive of the pinned tag (one top directory holding server.py, modules/,
  one_click.py, start_linux.sh), plus textgen_flags.json, the pinned flag table the
  stand-in's strict parser is built from (plugins/module_utils/textgen_flags.py), and
  ``standin_packages/llama_cpp_binaries/``: the package upstream's installer gets from
  its llama_cpp_binaries wheel, holding the REAL llama-server (``bin/`` is the whole
  ``llama-<tag>/`` directory of $AILAB_CACHE/llama-server/llama-<tag>-bin-ubuntu-x64.tar.gz,
  built by tests/fixtures/build_llama_server.sh); the stand-in's one_click.py installs
  it into installer_files/env/lib/python3.X/site-packages/, where pip puts it upstream.
- ``ollama-linux-amd64.tar.zst`` (the upstream release archive format: bin/ollama and
  lib/ollama/) holding the Ollama stand-in; ``.tgz`` too with --tgz.
- ``ollama-linux-amd64-rocm.tar.zst``: upstream's second archive for AMD hosts (docs/linux.md:
  extracted over the first; it brings ``lib/ollama/rocm/``), here a directory holding only a
  note that it is a stand-in: it proves the role installs it where upstream's goes.

Writes ``standins.json`` (file name -> sha256) next to them; prints the directory.
Deterministic: fixed mtimes and owners. Fails, naming tests/fixtures/build_llama_server.sh,
when the llama-server archive is missing (``make artifacts`` builds it first).
Usage: package_standins.py OUTDIR [--tgz] [--llama-server ARCHIVE]
"""

import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# llama-server is linked with OpenMP; the textgen hosts do not install libgomp1.
GOMP = "/usr/lib/x86_64-linux-gnu/libgomp.so.1"


def llama_server_archive():
    """$AILAB_CACHE/llama-server/llama-<pin>-bin-ubuntu-x64.tar.gz, the pin being the
    llamacpp_server role's version (as tests/fixtures/build_llama_server.sh names it)."""
    with open(os.path.join(ROOT, "roles", "llamacpp_server", "defaults", "main.yml")) as fh:
        pin = re.search(r'^llamacpp_server_version: *"?([A-Za-z0-9._-]+)"?', fh.read(), re.M).group(1)
    cache = os.environ.get("AILAB_CACHE", "/var/cache/ailab")
    return os.path.join(cache, "llama-server", f"llama-{pin}-bin-ubuntu-x64.tar.gz")


def add_llama_server(tar, prefix, archive):
    """Copy the one top directory of the llama-server archive under ``prefix``
    (files, links and modes kept; owners and mtimes fixed)."""
    with tarfile.open(archive) as src:
        members = src.getmembers()
        tops = {m.name.split("/", 1)[0] for m in members}
        if len(tops) != 1 or not any(m.name.endswith("/llama-server") for m in members):
            sys.exit(f"{archive}: expected one llama-<tag>/ directory holding llama-server")
        for member in sorted(members, key=lambda m: m.name):
            rest = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not rest:
                continue
            info = tarfile.TarInfo(prefix + rest)
            info.mode = member.mode
            info.mtime = 0
            info.uname = info.gname = "root"
            if member.isdir():
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif member.issym():
                info.type = tarfile.SYMTYPE
                info.linkname = member.linkname
                tar.addfile(info)
            elif member.isfile():
                info.size = member.size
                tar.addfile(info, src.extractfile(member))
            else:
                sys.exit(f"{archive}: unexpected member {member.name}")


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


def textgen(out, llama_archive):
    """The textgen stand-in archive; ``llama_archive`` None leaves llama_cpp_binaries out
    (then a llama.cpp model fails to load, as upstream's does without the package)."""
    flags = load_flags()
    version = flags.TEXTGEN_VERSION.lstrip("v")
    top = f"text-generation-webui-{version}/"
    table = {"version": flags.TEXTGEN_VERSION, "commit": flags.TEXTGEN_COMMIT, "flags": flags.FLAGS}
    name = f"text-generation-webui-{flags.TEXTGEN_VERSION}-standin.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_dir(tar, top)
        add(tar, top + "server.py", read("textgen-webui", "server.py"), 0o644)
        add_dir(tar, top + "modules/")
        for module in ("llama_cpp_server.py", "transformers_loader.py"):
            add(tar, top + "modules/" + module, read("textgen-webui", "modules", module), 0o644)
        add(
            tar,
            top + "transformers_model_types.json",
            read("textgen-webui", "transformers_model_types.json"),
            0o644,
        )
        add(tar, top + "one_click.py", read("textgen-webui", "one_click.py"), 0o644)
        add(tar, top + "start_linux.sh", read("textgen-webui", "start_linux.sh"), 0o755)
        add(tar, top + "textgen_flags.json", json.dumps(table, indent=1).encode(), 0o644)
        add(
            tar,
            top + "STANDIN.txt",
            b"This is a stand-in for text-generation-webui, not the real program.\n",
            0o644,
        )
        if llama_archive:
            package = top + "standin_packages/llama_cpp_binaries/"
            add_dir(tar, top + "standin_packages/")
            add_dir(tar, package)
            add(
                tar,
                package + "__init__.py",
                read("textgen-webui", "llama_cpp_binaries", "__init__.py"),
                0o644,
            )
            add_dir(tar, package + "bin/")
            add_llama_server(tar, package + "bin/", llama_archive)
            # A wheel carries the shared libraries its binaries need that the OS may lack
            # (auditwheel bundles libgomp); RPATH $ORIGIN finds it beside llama-server.
            with open(GOMP, "rb") as fh:
                add(tar, package + "bin/libgomp.so.1", fh.read(), 0o644)
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
    names = ["ollama-linux-amd64.tar.zst", "ollama-linux-amd64-rocm.tar.zst"]
    subprocess.run(
        ["zstd", "-q", "-f", "-19", "-o", os.path.join(out, names[0])], input=raw.getvalue(), check=True
    )
    rocm = io.BytesIO()
    with tarfile.open(fileobj=rocm, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_dir(tar, "lib/")
        add_dir(tar, "lib/ollama/")
        add_dir(tar, "lib/ollama/rocm/")
        add(
            tar,
            "lib/ollama/rocm/STANDIN.txt",
            b"A stand-in for Ollama's ROCm libraries, not the real ones.\n",
            0o644,
        )
    subprocess.run(
        ["zstd", "-q", "-f", "-19", "-o", os.path.join(out, names[1])], input=rocm.getvalue(), check=True
    )
    if tgz:
        import gzip

        names.append("ollama-linux-amd64.tgz")
        with open(os.path.join(out, names[-1]), "wb") as fh:
            fh.write(gzip.compress(raw.getvalue(), mtime=0))
    return names


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def main(argv):
    if not argv:
        sys.exit(__doc__)
    out = os.path.abspath(argv[0])
    llama = argv[argv.index("--llama-server") + 1] if "--llama-server" in argv else llama_server_archive()
    if not os.path.isfile(llama):
        sys.exit(
            f"package_standins.py: the llama-server archive {llama} is missing; build it with "
            "tests/fixtures/build_llama_server.sh (`make artifacts` runs it before packaging)"
        )
    os.makedirs(out, exist_ok=True)
    names = [textgen(out, llama)] + ollama(out, "--tgz" in argv)
    sums = {name: sha256(os.path.join(out, name)) for name in names}
    with open(os.path.join(out, "standins.json"), "w") as fh:
        json.dump(sums, fh, indent=1, sort_keys=True)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
