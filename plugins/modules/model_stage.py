#!/usr/bin/python
"""Ansible module: copy models from the model store to a host's staging directory, verified."""

DOCUMENTATION = r"""
---
module: model_stage
short_description: Keep local copies of store models (stage local), verified against the store's digests
description:
  - Copies each model (a file, or a directory such as a safetensors model, every file below it
    except hidden ones) from the model store to its place in the staging directory, so that the
    backend loads it from a local disk and not over NFS.
  - Each file is checked against the store's record of it (C(<store>/.model_store/<path>.json), or
    C(<store>/.model_store/<repository>/files/<path>.json) for a file of a repository entry), written
    by the model_store role; the digest is computed while copying, so the store is read once. A
    file with no record (copied into the store by hand) is copied and reported in C(unverified).
  - A copy is written under a temporary name beside its place and renamed when complete and
    verified; a stamp in C(<dir>/.stage/) remembers the store file's size and time, so an unchanged
    copy is reused without reading either file again.
  - The copies no model in C(models) needs any more (those this module staged, which have a
    stamp), partial copies, and the directories they leave empty are removed; other files in the
    staging directory are left alone.
  - Before copying anything, the free space of the staging directory's file system must hold what
    is to be copied; otherwise nothing is copied and the module fails with the numbers.
options:
  dir:
    description: The staging directory (absolute); created when missing.
    type: path
    required: true
  store:
    description: Where this host reads the model store (its mount path, or the store's path on the store server).
    type: path
    required: true
  models:
    description:
      - The models to stage, each C(src) (a path in the store) and C(dest) (its place under C(dir)).
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
author:
  - Lab toolkit maintainers
"""

EXAMPLES = r"""
- name: Stage the instances' models
  model_stage:
    dir: /var/lib/ailab/stage
    store: /media/data/models
    models:
      - src: /media/data/models/org/model-Q4_K_M.gguf
        dest: /var/lib/ailab/stage/org/model-Q4_K_M.gguf
"""

RETURN = r"""
copied:
  description: Files copied (or, in check mode, to be copied), relative to C(dir).
  type: list
  elements: str
  returned: always
reused:
  description: Files whose copy is unchanged, relative to C(dir).
  type: list
  elements: str
  returned: always
removed:
  description: Files and directories removed (or, in check mode, to be removed), relative to C(dir).
  type: list
  elements: str
  returned: always
unverified:
  description: Copied files the store has no record of (checked against nothing but their size).
  type: list
  elements: str
  returned: always
bytes_copied:
  description: Bytes copied in this run.
  type: int
  returned: always
"""

import hashlib
import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule

MIB = 1024 * 1024
CHUNK = 8 * MIB
STAMPS = ".stage"


class StageError(Exception):
    pass


def _within(path, root):
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path.startswith(root.rstrip("/") + "/")


def source_files(src):
    """(relative path, absolute path) of each file of a model: the file itself, or every
    regular file below a directory, hidden names (and what they hold) left out."""
    if os.path.isfile(src):
        return [("", src)]
    if not os.path.isdir(src):
        raise StageError(f"{src} is not in the store (no such file or directory)")
    found = []
    for top, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = os.path.join(top, name)
            if not name.startswith(".") and os.path.isfile(path):
                found.append((os.path.relpath(path, src), path))
    if not found:
        raise StageError(f"{src} holds no file to stage")
    return found


def record_for(store, path):
    """The model_store role's record of a store file, or None: a file entry's
    ``.model_store/<path>.json``, else a repository file's ``.model_store/<repo>/files/<rest>.json``."""
    rel = os.path.relpath(path, store)
    parts = rel.split("/")
    candidates = [os.path.join(store, ".model_store", rel + ".json")]
    for cut in range(1, len(parts)):
        head, rest = "/".join(parts[:cut]), "/".join(parts[cut:])
        candidates.append(os.path.join(store, ".model_store", head, "files", rest + ".json"))
    for candidate in candidates:
        record = _read_json(candidate)
        if isinstance(record, dict) and record.get("digest") and record.get("algo"):
            return record
    return None


def _hasher(algo, size):
    if algo == "git-sha1":  # a git blob: sha1 of "blob <size>\0" and the content
        h = hashlib.sha1()  # noqa: S324 - git's object id, not a security hash
        h.update(b"blob %d\0" % size)
        return h
    if algo in ("sha256", "sha512"):
        return hashlib.new(algo)
    raise StageError(f"unknown digest algorithm {algo!r} in the store's record")


def _stamp_path(stage_dir, rel):
    return os.path.join(stage_dir, STAMPS, rel + ".json")


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def is_current(stage_dir, rel, src_stat, dest):
    """Whether the copy at ``dest`` is the store file as its stamp saw it."""
    stamp = _read_json(_stamp_path(stage_dir, rel))
    try:
        dest_stat = os.stat(dest)
    except OSError:
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("src_size") == src_stat.st_size
        and stamp.get("src_mtime_ns") == src_stat.st_mtime_ns
        and stamp.get("size") == dest_stat.st_size == src_stat.st_size
        and stamp.get("mtime_ns") == dest_stat.st_mtime_ns
    )


def _makedirs(path):
    os.makedirs(path, mode=0o755, exist_ok=True)


def copy_verified(src, dest, record, src_stat):
    """Copy ``src`` (as ``src_stat`` saw it) to ``dest`` through a temporary file, hashing
    what is read; the copy replaces ``dest`` only when the digest matches the record (if
    any) and the store file did not change meanwhile. Returns ``(algo, digest)``."""
    size = src_stat.st_size
    algo = record["algo"] if record else "sha256"
    hasher = _hasher(algo, size)
    _makedirs(os.path.dirname(dest))
    part = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + ".part")
    try:
        with open(src, "rb") as reader, open(part, "wb") as writer:
            while True:
                chunk = reader.read(CHUNK)
                if not chunk:
                    break
                hasher.update(chunk)
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        digest = hasher.hexdigest()
        if record and digest != str(record["digest"]).lower():
            raise StageError(
                f"{src} has {algo} {digest}, not {record['digest']} as the store's record says: the store's "
                "copy is damaged or was changed by hand; nothing was staged from it"
            )
        now = os.stat(src)
        if (now.st_size, now.st_mtime_ns) != (size, src_stat.st_mtime_ns) or os.stat(part).st_size != size:
            raise StageError(f"{src} changed while it was copied; run again")
        os.chmod(part, 0o644)
        # The copy keeps the store file's times (as cp -p): its stamp is then the same on a
        # host rebuilt from scratch as before.
        os.utime(part, ns=(src_stat.st_mtime_ns, src_stat.st_mtime_ns))
        os.replace(part, dest)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
    return algo, digest


def plan_stage(stage_dir, store, models):
    """What to copy and keep: ``(todo, keep)``; ``todo`` holds (rel, src, dest, stat) of files
    whose copy is missing or stale, ``keep`` every staged file's path relative to ``stage_dir``."""
    todo, keep = [], set()
    for item in models:
        src, dest = item.get("src"), item.get("dest")
        if not isinstance(src, str) or not isinstance(dest, str):
            raise StageError(f"each model needs src and dest, got {item!r}")
        if not _within(src, store):
            raise StageError(f"{src} is not in the model store {store}")
        if not _within(dest, stage_dir):
            raise StageError(f"{dest} is not in the staging directory {stage_dir}")
        for sub, path in source_files(src):
            target = os.path.join(dest, sub) if sub else dest
            rel = os.path.relpath(target, stage_dir)
            if rel in keep:
                continue
            keep.add(rel)
            src_stat = os.stat(path)
            if not is_current(stage_dir, rel, src_stat, target):
                todo.append((rel, path, target, src_stat))
    return todo, keep


def stale_paths(stage_dir, keep):
    """What to remove, relative to ``stage_dir``: the copies this module staged (they have a
    stamp) that no model needs now, with their stamps; partial copies (``.<name>.part``) of
    files no model needs; then the directories left empty, deepest first. A file it did not
    stage is never removed."""
    files = []
    stamps = os.path.join(stage_dir, STAMPS)
    for top, _dirs, names in os.walk(stamps):
        for name in names:
            stamp = os.path.relpath(os.path.join(top, name), stage_dir)
            rel = os.path.relpath(os.path.join(top, name), stamps)
            rel = rel[: -len(".json")] if rel.endswith(".json") else rel
            if rel not in keep:
                files.append(stamp)
                if os.path.isfile(os.path.join(stage_dir, rel)):
                    files.append(rel)
    for top, dirs, names in os.walk(stage_dir):
        if os.path.relpath(top, stage_dir) == STAMPS:
            dirs[:] = []
            continue
        for name in names:
            if name.startswith(".") and name.endswith(".part"):
                target = os.path.relpath(os.path.join(top, name[1 : -len(".part")]), stage_dir)
                if target not in keep:
                    files.append(os.path.relpath(os.path.join(top, name), stage_dir))
    gone = set(files)
    dirs = []
    for top, _subdirs, _names in os.walk(stage_dir, topdown=False):
        if top == stage_dir:
            continue
        left = [n for n in os.listdir(top) if os.path.relpath(os.path.join(top, n), stage_dir) not in gone]
        if not left:
            rel = os.path.relpath(top, stage_dir)
            dirs.append(rel)
            gone.add(rel)
    return sorted(files), dirs


def _free_bytes(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path or "/").free


def run(stage_dir, store, models, check_mode):
    stage_dir, store = os.path.normpath(stage_dir), os.path.normpath(store)
    if not os.path.isabs(stage_dir) or not os.path.isabs(store):
        raise StageError("dir and store must be absolute paths")
    if _within(stage_dir, store) or _within(store, stage_dir) or stage_dir == store:
        raise StageError(
            f"the staging directory {stage_dir} and the store {store} must not contain each other"
        )
    todo, keep = plan_stage(stage_dir, store, models)
    files, dirs = stale_paths(stage_dir, keep) if os.path.isdir(stage_dir) else ([], [])
    result = {
        "copied": [rel for rel, *_ in todo],
        "reused": sorted(keep - {rel for rel, *_ in todo}),
        "removed": files + dirs,
        "unverified": [],
        "bytes_copied": 0,
    }
    result["changed"] = bool(todo or files or dirs)
    if check_mode:
        return result
    need = sum(st.st_size for *_, st in todo)
    free = _free_bytes(stage_dir) + sum(
        os.stat(os.path.join(stage_dir, rel)).st_size
        for rel in files
        if os.path.isfile(os.path.join(stage_dir, rel))
    )
    if need > free:
        raise StageError(
            "the staging directory {} has {} MiB free, and the models to stage need {} MiB ({}); "
            "nothing was copied".format(
                stage_dir, free // MIB, -(-need // MIB), ", ".join(rel for rel, *_ in todo)
            )
        )
    # Stale copies go first: their room is counted above.
    for rel in files:
        os.unlink(os.path.join(stage_dir, rel))
    for rel in dirs:
        os.rmdir(os.path.join(stage_dir, rel))
    for rel, src, dest, src_stat in todo:
        record = record_for(store, src)
        algo, digest = copy_verified(src, dest, record, src_stat)
        if record is None:
            result["unverified"].append(rel)
        dest_stat = os.stat(dest)
        stamp = _stamp_path(stage_dir, rel)
        _makedirs(os.path.dirname(stamp))
        with open(stamp, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "src": src,
                    "src_size": src_stat.st_size,
                    "src_mtime_ns": src_stat.st_mtime_ns,
                    "size": dest_stat.st_size,
                    "mtime_ns": dest_stat.st_mtime_ns,
                    "algo": algo,
                    "digest": digest,
                    "verified": record is not None,
                },
                handle,
                sort_keys=True,
            )
        result["bytes_copied"] += dest_stat.st_size
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "store": {"type": "path", "required": True},
            "models": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=True,
    )
    try:
        result = run(module.params["dir"], module.params["store"], module.params["models"], module.check_mode)
    except (StageError, OSError) as exc:
        module.fail_json(msg=f"stage: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
