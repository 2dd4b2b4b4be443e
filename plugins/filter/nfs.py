"""Pure functions behind the nfs_server, nfs_client and model_store roles.

Each role calls one ``*_check`` filter at its very start: it normalises the
user's data once and returns ``{"errors": [...], ...}``. The role asserts that
the error list is empty (naming the host) before it changes anything, then
renders every implementation (kernel exports, Ganesha) from the same
normalised data.
"""

import ipaddress
import posixpath
import re

WORLD = ("*", "0.0.0.0/0", "::/0", "0.0.0.0")
CHECKSUM_ALGORITHMS = {"sha256": 64, "sha512": 128}
# Options the roles set themselves from structured data; users must not repeat them.
_RESERVED_EXPORT_OPTIONS = ("ro", "rw")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# A Hugging Face repository id: [namespace/]name, letters, digits, '-', '_', '.', neither
# starting nor ending with '-' or '.', at most 96 each, no '--' or '..', no '.git' at the end
# (validate_repo_id in huggingface_hub's utils/_validators.py).
_HF_REPO_PART = r"(?![-.])[A-Za-z0-9_.-]{1,96}(?<![-.])"
_HF_REPO = re.compile(rf"^({_HF_REPO_PART}/)?{_HF_REPO_PART}$")
_HF_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HF_KEYS = ("repo", "revision", "include", "exclude", "token", "allow_moving_revision")


def _is_network(value):
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _client_error(client, known_hosts, allow_world, where):
    """Return an error string for one client entry, or None when it is valid."""
    if not isinstance(client, str) or not client.strip():
        return f"{where}: a client must be a non-empty string, got {client!r}"
    if client in WORLD or client.endswith("/0"):
        if allow_world:
            return None
        return (
            f"{where}: client {client!r} opens the export to the world; "
            "list hosts or networks, or set nfs_server_allow_world: true"
        )
    if client in known_hosts or _is_network(client):
        return None
    if client.startswith("@") and _HOSTNAME.match(client[1:]):
        return None  # a netgroup
    return f"{where}: client {client!r} is neither an inventory host nor an IP address/network"


def _address(name, addresses):
    """The address an inventory host is reached at (exports name it so)."""
    return str(addresses.get(name) or name)


def nfs_export_check(
    exports,
    extra_exports=(),
    known_hosts=(),
    addresses=None,
    allow_world=False,
    default_options=(),
    versions=(4,),
    variable="nfs_server_exports",
):
    """Validate and normalise export definitions.

    exports: list of {path, clients, writers, options, owner, group, mode, pseudo};
    extra_exports: more of them (nfs_server_extra_exports), named so in errors.
    known_hosts: inventory host names; addresses: {host: address} for them.
    Returns {"errors": [...], "exports": [...]}; each normalised export has
    ``clients``: list of {name, spec (host address or network), access: ro|rw,
    options: [...]}, plus ``export_id`` (1-based, stable by position).
    """
    addresses = addresses or {}
    known = set(known_hosts or ())
    errors = []
    out = []
    if not isinstance(exports, list) or not isinstance(extra_exports, (list, tuple)):
        return {"errors": [f"{variable} and nfs_server_extra_exports must be lists"], "exports": []}
    seen = set()
    numbered = [(f"{variable}[{i}]", e) for i, e in enumerate(exports)]
    numbered += [(f"nfs_server_extra_exports[{i}]", e) for i, e in enumerate(extra_exports)]
    for index, (where, export) in enumerate(numbered):
        if not isinstance(export, dict):
            errors.append(f"{where} must be a dict with a path and clients")
            continue
        # An export derived from another variable (model_store) is named after it.
        where = export.get("label") or where
        path = export.get("path")
        if not isinstance(path, str) or not path.strip():
            errors.append(f"{where}.path is empty; an export needs an absolute path")
            continue
        if not path.startswith("/"):
            errors.append(f"{where}.path {path!r} is relative; an export needs an absolute path")
            continue
        path = posixpath.normpath(path)
        if path == "/":
            errors.append(f"{where}.path is '/'; exporting the root filesystem is refused")
            continue
        if path in seen:
            errors.append(f"{where}.path {path!r} is exported twice")
            continue
        seen.add(path)
        readers = export.get("clients") or []
        writers = export.get("writers") or []
        if not isinstance(readers, list) or not isinstance(writers, list):
            errors.append(f"{where}.clients and .writers must be lists")
            continue
        if not readers and not writers:
            errors.append(f"{where} ({path}) has no clients; list the hosts or networks that may mount it")
            continue
        options = [str(o) for o in list(default_options) + list(export.get("options") or [])]
        bad = [o for o in options if o in _RESERVED_EXPORT_OPTIONS]
        if bad:
            errors.append(
                f"{where}.options must not hold {bad}: access comes from clients (ro) and writers (rw)"
            )
            continue
        merged = []
        for option in options:
            key = option.split("=", 1)[0]
            merged = [m for m in merged if m.split("=", 1)[0] != key]
            merged.append(option)
        clients = []
        bad_client = False
        for kind, names, access in (("clients", readers, "ro"), ("writers", writers, "rw")):
            for client in names:
                error = _client_error(client, known, allow_world, f"{where}.{kind}")
                if error:
                    errors.append(error)
                    bad_client = True
                    continue
                clients = [c for c in clients if c["name"] != client]  # writer wins over reader
                spec = _address(client, addresses) if client in known else client
                clients.append({"name": client, "spec": spec, "access": access, "options": merged})
        if bad_client:
            continue
        out.append(
            {
                "export_id": index + 1,
                "path": path,
                "pseudo": posixpath.normpath(export.get("pseudo") or path),
                "owner": export.get("owner", "root"),
                "group": export.get("group", "root"),
                "mode": str(export.get("mode", "0755")),
                "clients": clients,
                "versions": sorted({int(v) for v in versions}),
            }
        )
    return {"errors": errors, "exports": out}


def nfs_kernel_export_line(export):
    """One /etc/exports line for a normalised export."""
    parts = [export["path"].replace(" ", "\\040")]
    for client in export["clients"]:
        options = [client["access"]] + list(client["options"])
        parts.append(f"{client['spec']}({','.join(options)})")
    return " ".join(parts)


def nfs_ganesha_client_block(client):
    """Ganesha CLIENT settings (dict) from a normalised client."""
    squash = "root_squash"
    anon_uid = anon_gid = None
    for option in client["options"]:
        key, _, value = option.partition("=")
        if key in ("root_squash", "no_root_squash", "all_squash"):
            squash = {"no_root_squash": "no_root_squash"}.get(key, key)
        elif key == "anonuid":
            anon_uid = value
        elif key == "anongid":
            anon_gid = value
    sec = [o.split("=", 1)[1] for o in client["options"] if o.startswith("sec=")]
    spec = client["spec"]
    if spec in WORLD or spec.endswith("/0"):
        spec = "*"
    block = {
        "Clients": spec,
        "Access_Type": "RW" if client["access"] == "rw" else "RO",
        "Squash": squash,
        "SecType": (sec[0] if sec else "sys").replace(":", ","),
    }
    if anon_uid is not None:
        block["Anonymous_Uid"] = anon_uid
    if anon_gid is not None:
        block["Anonymous_Gid"] = anon_gid
    return block


def nfs_firewall_sources(exports):
    """Distinct client addresses/networks of normalised exports (for firewall rules)."""
    sources = []
    for export in exports:
        for client in export["clients"]:
            if client["spec"] not in sources:
                sources.append(client["spec"])
    return sources


def nfs_server_exports_of(server, server_vars, model_store):
    """Export paths a server host will publish, computed from its inventory vars.

    Mirrors nfs_server's defaults: nfs_server_exports (or the model store's
    export when the host is model_store.server) plus nfs_server_extra_exports.
    """
    server_vars = server_vars or {}
    model_store = model_store or {}
    if "nfs_server_exports" in server_vars:
        exports = list(server_vars["nfs_server_exports"] or [])
    elif model_store.get("server") == server and model_store.get("path"):
        exports = [{"path": model_store["path"]}]
    else:
        exports = []
    exports += list(server_vars.get("nfs_server_extra_exports") or [])
    return [posixpath.normpath(e["path"]) for e in exports if isinstance(e, dict) and e.get("path")]


def nfs_mount_check(mounts, hostvars=None, model_store=None, variable="nfs_client_mounts"):
    """Validate client mounts against the exports their (inventory) servers publish.

    mounts: list of {server, export, path, readonly, options, state}.
    hostvars: the inventory's hostvars (only servers found there are checked).
    """
    hostvars = hostvars or {}
    errors = []
    out = []
    if not isinstance(mounts, list):
        return {"errors": [f"{variable} must be a list"], "mounts": []}
    for index, mount in enumerate(mounts):
        where = f"{variable}[{index}]"
        if not isinstance(mount, dict):
            errors.append(f"{where} must be a dict with server, export and path")
            continue
        server = mount.get("server")
        export = mount.get("export")
        path = mount.get("path")
        if not server:
            errors.append(f"{where}.server is empty")
            continue
        bad_paths = [
            f"{where}.{key} {value!r} must be an absolute path"
            for key, value in (("export", export), ("path", path))
            if not isinstance(value, str) or not value.startswith("/")
        ]
        if bad_paths:
            errors.extend(bad_paths)
            continue
        export = posixpath.normpath(export)
        if server in hostvars:
            published = nfs_server_exports_of(server, hostvars[server], model_store)
            if export not in published:
                errors.append(
                    f"{where}: no export {export!r} on {server} (it exports {published or 'nothing'}); "
                    "fix the mount's export or the server's nfs_server_exports / model_store.path"
                )
                continue
        out.append(dict(mount, export=export, path=posixpath.normpath(path)))
    return {"errors": errors, "mounts": out}


def nfs_mount_options(mount, base_options):
    """The option string of a mount: base options, ro/rw, then the mount's own."""
    options = [o for o in base_options if o not in ("ro", "rw")]
    options.insert(0, "ro" if mount.get("readonly", True) else "rw")
    for option in mount.get("options") or []:
        key = option.split("=", 1)[0]
        options = [o for o in options if o.split("=", 1)[0] != key]
        options.append(option)
    return ",".join(options)


def model_store_checksum(checksum):
    """Split 'algo:hex' into (algo, hex); raises ValueError with the reason."""
    if not isinstance(checksum, str) or ":" not in checksum:
        raise ValueError(f"checksum {checksum!r} must look like 'sha256:<hex>'")
    algo, _, digest = checksum.partition(":")
    algo = algo.lower()
    if algo not in CHECKSUM_ALGORITHMS:
        raise ValueError(
            f"checksum algorithm {algo!r} is not accepted "
            f"(use one of {', '.join(sorted(CHECKSUM_ALGORITHMS))})"
        )
    if len(digest) != CHECKSUM_ALGORITHMS[algo] or not _HEX.match(digest):
        raise ValueError(f"checksum {checksum!r}: a {algo} digest is {CHECKSUM_ALGORITHMS[algo]} hex digits")
    return algo, digest.lower()


def _hf_repo_error(model, where):
    """The first error of a Hugging Face repository entry, or None."""
    repo = model.get("repo")
    if (
        not isinstance(repo, str)
        or not _HF_REPO.match(repo)
        or "--" in repo
        or ".." in repo
        or repo.endswith(".git")
    ):
        return (
            f"{where}.repo {repo!r} must be a Hugging Face repository id, namespace/name "
            "(letters, digits, '-', '_', '.')"
        )
    others = [k for k in ("url", "src", "checksum") if model.get(k)]
    if others:
        return f"{where}: a repo entry takes no {'/'.join(others)} (the Hub gives each file's checksum)"
    revision = model.get("revision")
    moving = model.get("allow_moving_revision", False)
    if not isinstance(moving, bool):
        return f"{where}.allow_moving_revision must be true or false"
    if not isinstance(revision, str) or not revision.strip():
        return f"{where}.revision is required: the 40-hex commit id to fetch"
    if not _HF_COMMIT.match(revision) and not moving:
        return (
            f"{where}.revision {revision!r} is a branch, a tag or a short id, which can move; give the full "
            "40-hex commit id (lowercase), or set allow_moving_revision: true to resolve it on every run"
        )
    for key in ("include", "exclude"):
        value = model.get(key)
        if value is None or isinstance(value, str) and value:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return f"{where}.{key} must be a list of globs (strings)"
    token = model.get("token")
    if token is not None and not isinstance(token, str):
        return f"{where}.token must be a string (a vault variable)"
    return None


def _globs(value):
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def model_store_models_check(models, variable="model_store_models"):
    """Validate model entries; returns {"errors": [...], "models": [...]} normalised.

    Each normalised model: name, state, kind (file or repo), source (a URL; a local
    ``src`` becomes file://), algo and digest ('' when no checksum was given for a local
    src). A repository entry (``repo``) also carries repo, revision, include, exclude,
    allow_moving_revision and index (its place in the list, where its token is read:
    the token itself stays out of the normalised data). A repository owns its directory:
    no other entry may lie inside it.
    """
    errors = []
    out = []
    if not isinstance(models, list):
        return {"errors": [f"{variable} must be a list"], "models": []}
    names = set()
    for index, model in enumerate(models):
        where = f"{variable}[{index}]"
        if not isinstance(model, dict):
            errors.append(f"{where} must be a dict with name and url or src")
            continue
        name = model.get("name")
        where = f"{where} ({name})" if name else where
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{where}.name is empty")
            continue
        norm = posixpath.normpath(name)
        if norm.startswith("/") or norm.startswith("..") or norm.startswith(".model_store"):
            errors.append(f"{where}.name must be a path relative to the store, inside it")
            continue
        if norm in names:
            errors.append(f"{where}.name is listed twice")
            continue
        names.add(norm)
        state = model.get("state", "present")
        if state not in ("present", "absent"):
            errors.append(f"{where}.state {state!r} must be present or absent")
            continue
        if "repo" in model:
            error = _hf_repo_error(model, where) if state == "present" else None
            if error:
                errors.append(error)
                continue
            out.append(
                {
                    "name": norm,
                    "state": state,
                    "kind": "repo",
                    "source": "",
                    "algo": "",
                    "digest": "",
                    "repo": model.get("repo"),
                    "revision": model.get("revision"),
                    "include": _globs(model.get("include")),
                    "exclude": _globs(model.get("exclude")),
                    "allow_moving_revision": bool(model.get("allow_moving_revision", False)),
                    "index": index,
                }
            )
            continue
        stray = [k for k in _HF_KEYS if k in model]
        if stray:
            errors.append(f"{where}: {'/'.join(stray)} belong to a repo entry; add repo or remove them")
            continue
        url, src = model.get("url"), model.get("src")
        if state == "present":
            if bool(url) == bool(src):
                errors.append(f"{where} needs exactly one of url or src")
                continue
            if url and not re.match(r"^(https?|ftp|file)://", str(url)):
                errors.append(f"{where}.url {url!r} must be an http(s), ftp or file URL")
                continue
            if src and not str(src).startswith("/"):
                errors.append(f"{where}.src {src!r} must be an absolute path on the store server")
                continue
        checksum = model.get("checksum")
        algo = digest = ""
        if checksum:
            try:
                algo, digest = model_store_checksum(checksum)
            except ValueError as exc:
                errors.append(f"{where}: {exc}")
                continue
        elif state == "present" and url:
            errors.append(f"{where} has a url but no checksum; add checksum: sha256:<hex>")
            continue
        source = str(url) if url else (f"file://{src}" if src else "")
        out.append(
            {"name": norm, "state": state, "kind": "file", "source": source, "algo": algo, "digest": digest}
        )
    repos = [m["name"] for m in out if m["kind"] == "repo" and m["state"] == "present"]
    for model in out:
        inside = [r for r in repos if r != model["name"] and (model["name"] + "/").startswith(r + "/")]
        holds = [r for r in repos if r != model["name"] and r.startswith(model["name"] + "/")]
        if inside or holds:
            errors.append(
                f"{variable}[{model['name']}]: "
                + (
                    f"lies inside the directory of the repo entry {inside[0]}"
                    if inside
                    else f"would hold the directory of the repo entry {holds[0]}"
                )
                + "; a repository owns its directory"
            )
    return {"errors": errors, "models": out}


def model_store_repo_files(results):
    """The files of the resolved repositories (hf_repo_manifest results), for model_store_fetch.

    Returns {"files": [...]}: each file as a model entry (name ``<entry>/<path>``, kind
    ``repo-file``, source, algo, digest, size, index of the entry, stamp
    ``<entry>/files/<path>.json`` under the stamp directory). The directories they need are
    made by hf_repo_manifest itself.
    """
    files = []
    for result in results or []:
        entry = result.get("item") or {}
        name = entry.get("name")
        if not name or result.get("failed") or result.get("skipped"):
            continue
        for f in result.get("files") or []:
            path = f["path"]
            files.append(
                {
                    "name": f"{name}/{path}",
                    "state": "present",
                    "kind": "repo-file",
                    "source": f["url"],
                    "algo": f["algo"],
                    "digest": f["digest"],
                    "size": f["size"],
                    "index": entry.get("index"),
                    "stamp": f"{name}/files/{path}.json",
                }
            )
    return {"files": files}


class FilterModule:
    """NFS and model store filters."""

    def filters(self):
        return {
            "nfs_export_check": nfs_export_check,
            "nfs_kernel_export_line": nfs_kernel_export_line,
            "nfs_ganesha_client_block": nfs_ganesha_client_block,
            "nfs_firewall_sources": nfs_firewall_sources,
            "nfs_server_exports_of": nfs_server_exports_of,
            "nfs_mount_check": nfs_mount_check,
            "nfs_mount_options": nfs_mount_options,
            "model_store_models_check": model_store_models_check,
            "model_store_repo_files": model_store_repo_files,
        }
