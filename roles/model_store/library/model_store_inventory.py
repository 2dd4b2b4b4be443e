#!/usr/bin/python
"""Ansible module: what the model store holds, who uses it, and (optionally) prune what nobody does."""

DOCUMENTATION = r"""
---
module: model_store_inventory
short_description: List what the model store holds, which instances use it, and remove what is unused
description:
  - Walks the store at O(path) on the store server and returns its items, each with its size in
    bytes, whether C(model_store_models) declares it, which instances use it and whether it is
    unused (neither declared nor used).
  - An item is the largest path that is all one thing - a declared file, a repository entry's
    directory (O(repositories)), a backend's directory (O(protected), e.g. Ollama's blob store),
    a path an instance uses, or something unused. A directory that only holds declared files
    further down (the parents of a declared C(sub/model.gguf)) is walked into and its entries
    listed one by one.
  - A path is used when an instance's model is that path, lies inside it (a directory holding
    the model) or contains it (a model directory uses every file under it). A used path that
    is a symbolic link inside the store also uses its target; a part of a split GGUF set
    (C(NAME-00001-of-00003.gguf)) or of sharded weights uses every part of its set.
  - Symbolic links are never followed, neither while walking nor while removing - a link is
    an item of its own and removing it leaves its target alone.
  - Never listed, never removed - the store's hidden C(.model_store/) directory of stamps and
    records (except that a pruned item's stamps and records go with it), the partial downloads
    (C(.NAME.part), C(.rc), C(.log)) of declared files, C(lost+found), C(.zfs), C(.snapshot),
    and NFS's C(.nfsXXXX) files (a file a client still holds open after it was deleted).
  - With O(prune) the unused items are removed, with the stamps and records of the same path
    under C(.model_store/); in check mode the module reports what would go and removes nothing.
  - Needs nothing but the Python standard library on the store server.
version_added: "1.0.0"
author:
  - Lab toolkit maintainers
options:
  path:
    description: The store's root on this host (C(model_store.path)).
    type: path
    required: true
  declared:
    description: The files C(model_store_models) declares present, relative to the store.
    type: list
    elements: str
    default: []
  repositories:
    description: The directories of the repository entries (C(repo)) declared present, relative to the store; each is kept whole.
    type: list
    elements: str
    default: []
  used:
    description:
      - The paths the instances use, relative to the store, each with the instances using it
        (C(host/instance)). The same path may come more than once; its users are merged.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The model path, relative to the store (a file, a directory, or a path inside a directory).
        type: str
        required: true
      users:
        description: The instances using it, as C(host/instance).
        type: list
        elements: str
        default: []
  protected:
    description: Directories the backends manage (C(model_store_directories), e.g. C(ollama)); listed with their size, never removed.
    type: list
    elements: str
    default: []
  stamp_dir:
    description: The store's hidden directory of stamps and records, relative to the store.
    type: str
    default: .model_store
  prune:
    description: Remove the unused items and their stamps.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: In check mode nothing is removed; RV(removed) lists what O(prune) would remove.
"""

EXAMPLES = r"""
- name: List the store, with the models the instances use
  model_store_inventory:
    path: /media/data/models
    declared: [tiny-llama-F32.gguf]
    repositories: [tiny-llama-GGUF]
    used:
      - path: tiny-llama-GGUF/tiny-llama-F32.gguf
        users: [localcloud/hubtiny]
      - path: hand-copied.gguf
        users: [workstation/chat]
    protected: [ollama]
  register: __store

- name: Show it
  ansible.builtin.debug:
    msg: "{{ __store.report }}"

- name: Remove what no instance uses and the store does not declare
  model_store_inventory:
    path: /media/data/models
    declared: [tiny-llama-F32.gguf]
    used: []
    protected: [ollama]
    prune: true
"""

RETURN = r"""
items:
  description:
    - Every item of the store, sorted by path. Each has C(path) (relative to the store), C(type)
      (file, directory or link), C(size) (bytes; a directory's is the sum of the files under
      it, links not followed), C(declared), C(managed) (a backend's directory), C(users)
      (C(host/instance) list) and C(unused).
  type: list
  elements: dict
  returned: always
unused:
  description: The paths of the unused items.
  type: list
  elements: str
  returned: always
removed:
  description: The items removed by O(prune), or in check mode the ones it would remove.
  type: list
  elements: str
  returned: always
stamps_removed:
  description: The stamps and records removed with them (or that would be), relative to the store.
  type: list
  elements: str
  returned: always
missing:
  description: Declared or used paths that the store does not hold, each with C(path), C(declared) and C(users).
  type: list
  elements: dict
  returned: always
total_size:
  description: Bytes of all the items.
  type: int
  returned: always
unused_size:
  description: Bytes of the unused items.
  type: int
  returned: always
report:
  description: The same as readable lines - one per item (path, size, declared, users or UNUSED), totals, what is missing, what was (or would be) removed.
  type: list
  elements: str
  returned: always
"""

import contextlib
import os
import posixpath
import re
import shutil
import stat

from ansible.module_utils.basic import AnsibleModule

# Never listed and never removed where they sit at the store's root: a filesystem's own
# directory (a store that is a mount point) and snapshot directories.
ROOT_SKIP = {"lost+found", ".zfs", ".snapshot"}
# An NFS client that deletes a file it still has open renames it to .nfsXXXX on the server
# until it closes it: in use by definition.
NFS_SILLY = re.compile(r"^\.nfs[0-9A-Fa-f]+$")
# One part of a split GGUF set or of sharded weights: every part is needed.
SPLIT = re.compile(r"^(?P<stem>.+)-(?P<idx>\d{5})-of-(?P<count>\d{5})\.(?P<ext>gguf|safetensors|bin)$", re.I)


def human_size(count):
    """1536 -> '1.5 KiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def relative(name, what):
    """``name`` normalised, relative to the store; ValueError for one that leaves it."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what}: an empty path")
    if name.startswith("/"):
        raise ValueError(f"{what}: {name!r} is absolute; give paths relative to the store")
    norm = posixpath.normpath(name)
    if norm == "." or norm == ".." or norm.startswith("../"):
        raise ValueError(f"{what}: {name!r} is not a path inside the store")
    return norm


def _inside(path, top):
    """Whether ``path`` is ``top`` or lies under it (both relative, normalised)."""
    return path == top or path.startswith(top + "/")


def _split_set(path):
    """All the parts of the split set ``path`` belongs to (``[path]`` when not split)."""
    directory, base = posixpath.split(path)
    match = SPLIT.match(base)
    if not match or int(match.group("count")) < 1:
        return [path]
    count, digits = int(match.group("count")), len(match.group("idx"))
    return [
        posixpath.join(
            directory, f"{match.group('stem')}-{i:0{digits}d}-of-{match.group('count')}.{match.group('ext')}"
        )
        for i in range(1, count + 1)
    ]


def used_paths(store, used):
    """``used`` ({path, users} entries) as ({path: sorted users}, the paths as given), each path
    checked; the other parts of a split set and the target of a link inside the store are
    used by the same instances."""
    out, given = {}, set()
    real_store = os.path.realpath(store)
    for index, entry in enumerate(used or []):
        path = relative(entry.get("path"), f"used[{index}]")
        given.add(path)
        users = [str(u) for u in entry.get("users") or []]
        targets = list(_split_set(path))
        real = os.path.realpath(os.path.join(store, path))
        if real.startswith(real_store + os.sep):
            target = os.path.relpath(real, real_store).replace(os.sep, "/")
            if target != path:
                targets.extend(_split_set(target))
        for target in [path] + targets:
            out.setdefault(target, set()).update(users)
    return {path: sorted(users) for path, users in out.items()}, given


def tree_size(path):
    """Bytes of ``path``: a file's or link's own size, a directory's files and links (not followed)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for top, dirs, files in os.walk(path, followlinks=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            with contextlib.suppress(OSError):  # gone since it was listed
                total += os.lstat(os.path.join(top, name)).st_size
    return total


def _kind(path):
    mode = os.lstat(path).st_mode
    return "link" if stat.S_ISLNK(mode) else "directory" if stat.S_ISDIR(mode) else "file"


def _partials(declared):
    """The partial-download names (``.NAME.part`` and its ``.rc``/``.log``) of the declared files."""
    out = set()
    for name in declared:
        directory, base = posixpath.split(name)
        part = posixpath.join(directory, f".{base}.part")
        out.update({part, part + ".rc", part + ".log"})
    return out


def walk(store, declared, repositories, used, protected, stamp_dir):
    """The store's items (see RETURN), sorted by path."""
    declared_set, repo_set, protected_set = set(declared), set(repositories), set(protected)
    kept = declared_set | repo_set | protected_set
    # A directory above any of these is walked into, not taken whole (nor removed whole).
    walk_into = kept | {stamp_dir}
    partials = _partials(declared_set)
    items = []

    def users_of(path):
        return sorted({u for p, users in used.items() if _inside(p, path) or _inside(path, p) for u in users})

    def visit(directory):
        full = os.path.join(store, directory) if directory else store
        for name in sorted(os.listdir(full)):
            path = posixpath.join(directory, name) if directory else name
            if path == stamp_dir or (not directory and name in ROOT_SKIP):
                continue
            if NFS_SILLY.match(name) or path in partials:
                continue
            absolute = os.path.join(store, path)
            kind = _kind(absolute)
            users = users_of(path)
            is_used = any(_inside(p, path) or _inside(path, p) for p in used)
            holds_kept = any(k.startswith(path + "/") for k in walk_into)
            if path not in kept and not is_used and holds_kept and kind == "directory":
                visit(path)
                continue
            managed = path in protected_set or any(_inside(path, p) for p in protected_set)
            is_declared = path in declared_set or path in repo_set or (holds_kept and not managed)
            items.append(
                {
                    "path": path,
                    "type": kind,
                    "size": tree_size(absolute),
                    "declared": is_declared,
                    "managed": managed,
                    "users": users,
                    "unused": not (is_declared or managed or is_used),
                }
            )

    visit("")
    return items


def _stamps_of(store, stamp_dir, path):
    """The stamp (``<stamp_dir>/PATH.json``) and record directory (``<stamp_dir>/PATH``) of an item."""
    out = []
    for candidate in (f"{stamp_dir}/{path}.json", f"{stamp_dir}/{path}"):
        if os.path.lexists(os.path.join(store, candidate)):
            out.append(candidate)
    return out


def _remove(absolute):
    if os.path.isdir(absolute) and not os.path.islink(absolute):
        shutil.rmtree(absolute)
    else:
        os.unlink(absolute)


def _count(things, noun):
    return f"{len(things)} {noun}" + ("" if len(things) == 1 else "s")


def report_lines(items, missing, removed, stamps_removed, check_mode, prune):
    """Readable lines: one per item, totals, what is missing, what was or would be removed."""
    width = max([len(i["path"]) + (1 if i["type"] == "directory" else 0) for i in items] + [4])
    lines = []
    for item in items:
        name = item["path"] + ("/" if item["type"] == "directory" else "")
        if item["unused"]:
            what = "UNUSED"
        else:
            tags = []
            if item["managed"]:
                tags.append("a backend's own store, never pruned")
            if item["declared"]:
                tags.append("declared")
            if item["users"]:
                tags.append("used by " + ", ".join(item["users"]))
            elif not item["managed"]:
                tags.append("not used by any instance")
            what = "; ".join(tags)
        lines.append(f"{name:<{width}}  {human_size(item['size']):>10}  {what}")
    unused = [i for i in items if i["unused"]]
    lines.append(
        f"total: {human_size(sum(i['size'] for i in items))} in {_count(items, 'item')}; "
        f"unused: {human_size(sum(i['size'] for i in unused))} in {_count(unused, 'item')}"
    )
    for entry in missing:
        who = "declared" if entry["declared"] else ""
        if entry["users"]:
            who = (who + ", " if who else "") + "used by " + ", ".join(entry["users"])
        lines.append(f"missing: {entry['path']} ({who})")
    if prune:
        verb = "would remove" if check_mode else "removed"
        if removed:
            sizes = {i["path"]: i["size"] for i in items}
            lines.extend(f"{verb}: {path} ({human_size(sizes[path])})" for path in removed)
            lines.extend(f"{verb}: {path} (its stamp or record)" for path in stamps_removed)
        else:
            lines.append(f"{verb}: nothing")
    elif unused:
        lines.append("nothing removed (model_store_prune is false)")
    return lines


def inventory(
    store,
    declared=(),
    repositories=(),
    used=(),
    protected=(),
    stamp_dir=".model_store",
    prune=False,
    check_mode=False,
):
    """The whole module's work; ValueError for bad input, OSError from a removal."""
    if not os.path.isabs(store) or os.path.normpath(store) == "/":
        raise ValueError(f"path: {store!r} must be an absolute path below /")
    if not os.path.isdir(store):
        raise ValueError(f"path: {store} is not a directory")
    declared = [relative(n, f"declared[{i}]") for i, n in enumerate(declared or [])]
    repositories = [relative(n, f"repositories[{i}]") for i, n in enumerate(repositories or [])]
    protected = [relative(n, f"protected[{i}]") for i, n in enumerate(protected or [])]
    stamp_dir = relative(stamp_dir, "stamp_dir")
    used, given = used_paths(store, used)
    items = walk(store, declared, repositories, used, protected, stamp_dir)
    declared_all = set(declared) | set(repositories)
    missing = [
        {"path": path, "declared": path in declared_all, "users": used.get(path, [])}
        for path in sorted(declared_all | given)
        if not os.path.lexists(os.path.join(store, path))
    ]
    removed, stamps_removed, errors = [], [], []
    if prune:
        for item in items:
            if not item["unused"]:
                continue
            stamps = _stamps_of(store, stamp_dir, item["path"])
            try:
                if not check_mode:
                    _remove(os.path.join(store, item["path"]))
                    for stamp in stamps:
                        _remove(os.path.join(store, stamp))
            except OSError as exc:
                errors.append(f"could not remove {exc.filename or item['path']}: {exc.strerror}")
                continue
            removed.append(item["path"])
            stamps_removed.extend(stamps)
    return {
        "changed": bool(removed or stamps_removed),
        "items": items,
        "unused": [i["path"] for i in items if i["unused"]],
        "removed": removed,
        "stamps_removed": stamps_removed,
        "missing": missing,
        "total_size": sum(i["size"] for i in items),
        "unused_size": sum(i["size"] for i in items if i["unused"]),
        "report": report_lines(items, missing, removed, stamps_removed, check_mode, prune),
        "errors": errors,
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "declared": {"type": "list", "elements": "str", "default": []},
            "repositories": {"type": "list", "elements": "str", "default": []},
            "used": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "str", "required": True},
                    "users": {"type": "list", "elements": "str", "default": []},
                },
            },
            "protected": {"type": "list", "elements": "str", "default": []},
            "stamp_dir": {"type": "str", "default": ".model_store"},
            "prune": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = inventory(
            p["path"],
            p["declared"],
            p["repositories"],
            p["used"],
            p["protected"],
            p["stamp_dir"],
            p["prune"],
            module.check_mode,
        )
    except (ValueError, OSError) as exc:
        module.fail_json(msg=f"model_store_inventory: {exc}")
    errors = result.pop("errors")
    if errors:
        module.fail_json(msg="model_store_inventory: " + "; ".join(errors), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
