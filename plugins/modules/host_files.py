#!/usr/bin/python
"""Ansible module: bring many files and directories to their wanted state in one call."""

DOCUMENTATION = r"""
---
module: host_files
short_description: Files, directories and removals of one role, checked and applied in one call
description:
  - Takes the whole list of what a role writes on a host (files with their content,
    directories, paths to remove) and brings each to its wanted state in one call, so a
    converged host answers every path in one round trip instead of one per path.
  - A file is written only when its content differs (to a temporary file in the same
    directory, then renamed over it); owner, group and mode are set when they differ.
    Its directory must exist (list it first as a directory).
  - An action plugin of the same name renders O(files[].src) templates on the controller
    (like M(ansible.builtin.template)), with O(files[].template_vars) added.
  - Each entry may carry a O(files[].tag) (an instance name, say); RV(changed_tags) lists the
    tags of the entries that changed, to restart what read them.
  - Needs nothing but the Python standard library on the target host.
version_added: "1.0.0"
author:
  - Lab toolkit maintainers
options:
  files:
    description: The entries, applied in order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description: C(file) (written with O(files[].content)), C(directory), or C(absent) (a file or an empty directory removed).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The file's content (or, through the action plugin, O(files[].src) rendered).
        type: str
      src:
        description: A template (searched as M(ansible.builtin.template) does), rendered by the action plugin.
        type: str
      template_vars:
        description: Variables added while rendering O(files[].src).
        type: dict
      owner:
        description: Owner (name or id).
        type: str
      group:
        description: Group (name or id).
        type: str
      mode:
        description: Mode, as an octal string such as C("0640").
        type: str
      validate:
        description: >-
          A command that checks the new content before it replaces the file, with C(%s) for the
          path of the temporary file (as M(ansible.builtin.template) takes it); not run in check mode.
        type: str
      secret:
        description: Keep the content out of C(--diff) and out of what the module returns (keys, passwords).
        type: bool
        default: false
      tag:
        description: A label returned in RV(changed_tags) when the entry changed.
        type: str
attributes:
  check_mode:
    support: full
    description: Reports what would change and changes nothing.
  diff_mode:
    support: full
    description: One diff per changed file, except O(files[].secret) ones.
"""

EXAMPLES = r"""
- name: Write each instance's files
  host_files:
    files:
      - path: /var/lib/app/chat
        state: directory
        owner: root
        group: app
        mode: "0750"
      - path: /var/lib/app/chat/flags.txt
        src: flags.txt.j2
        template_vars: {item: {name: chat}}
        owner: app
        group: app
        mode: "0600"
        tag: chat
      - path: /var/lib/app/old/flags.txt
        state: absent
        tag: old
  register: __written
"""

RETURN = r"""
files:
  description: One result per entry, in order.
  type: list
  elements: dict
  returned: success
  contains:
    path: {description: The path., type: str}
    state: {description: The wanted state., type: str}
    changed: {description: Whether the entry changed (or would, in check mode)., type: bool}
    tag: {description: The entry's tag, if any., type: str}
changed_paths:
  description: The paths that changed.
  type: list
  elements: str
  returned: success
changed_tags:
  description: The tags of the entries that changed, each once, in order.
  type: list
  elements: str
  returned: success
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text


def _attrs(module, entry):
    return {
        "path": entry["path"],
        "owner": entry.get("owner"),
        "group": entry.get("group"),
        "mode": entry.get("mode"),
        "attributes": None,
        "secontext": [None, None, None],
    }


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _file(module, entry, diffs):
    path = entry["path"]
    if entry.get("content") is None:
        module.fail_json(msg=f"{path}: a file entry needs content (or src through the action plugin)")
    if os.path.isdir(path):
        module.fail_json(msg=f"{path} is a directory, not a file")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent) and not module.check_mode:
        module.fail_json(msg=f"{path}: its directory {parent} does not exist (list it first as a directory)")
    want = to_bytes(entry["content"], errors="surrogate_or_strict")
    have = _read(path)
    changed = have != want
    if changed and module._diff and not entry["secret"]:
        diffs.append(
            {
                "before_header": path,
                "after_header": path,
                "before": "" if have is None else to_text(have, errors="surrogate_or_replace"),
                "after": entry["content"],
            }
        )
    if module.check_mode:
        return changed or _attrs_differ(module, entry)
    if changed:
        fd, tmp = tempfile.mkstemp(prefix=".ailab-", dir=parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(want)
            # The new file starts with the wanted owner and mode, before it has any name a reader knows.
            module.set_fs_attributes_if_different(dict(_attrs(module, entry), path=tmp), False)
            if entry.get("validate"):
                if "%s" not in entry["validate"]:
                    module.fail_json(msg=f"{path}: validate must contain %s (the file to check)")
                rc, out, err = module.run_command(entry["validate"] % tmp)
                if rc != 0:
                    module.fail_json(
                        msg=f"{path}: the new content failed validation ({entry['validate']}), the file is unchanged",
                        rc=rc,
                        stdout=out,
                        stderr=err,
                    )
            # Same directory: a rename, atomic, that keeps the temporary file's owner and mode.
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return module.set_fs_attributes_if_different(_attrs(module, entry), changed)


def _attrs_differ(module, entry):
    # set_fs_attributes_if_different answers without changing anything in check mode.
    return module.set_fs_attributes_if_different(_attrs(module, entry), False)


def _directory(module, entry):
    path = entry["path"]
    if os.path.lexists(path) and not os.path.isdir(path):
        module.fail_json(msg=f"{path} exists and is not a directory")
    if not os.path.isdir(path):
        if module.check_mode:
            return True
        os.makedirs(path)
        module.set_fs_attributes_if_different(_attrs(module, entry), True)
        return True
    return _attrs_differ(module, entry)


def _absent(module, entry):
    path = entry["path"]
    if not os.path.lexists(path):
        return False
    if os.path.isdir(path) and not os.path.islink(path):
        if os.listdir(path):
            module.fail_json(msg=f"{path} is a directory that is not empty; it is left as it is")
        if not module.check_mode:
            os.rmdir(path)
        return True
    if not module.check_mode:
        os.unlink(path)
    return True


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "path": {"type": "path", "required": True},
                    "state": {"type": "str", "choices": ["file", "directory", "absent"], "default": "file"},
                    "content": {"type": "str"},
                    "src": {"type": "str"},
                    "template_vars": {"type": "dict"},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                    "mode": {"type": "str"},
                    "validate": {"type": "str"},
                    "secret": {"type": "bool", "default": False},
                    "tag": {"type": "str"},
                },
            },
        },
        supports_check_mode=True,
    )
    # A secret entry's content is kept out of everything the module returns (its invocation too).
    for entry in module.params["files"]:
        if entry["secret"] and entry.get("content"):
            module.no_log_values.add(entry["content"])
    results, diffs = [], []
    for entry in module.params["files"]:
        if not os.path.isabs(entry["path"]):
            module.fail_json(msg=f"{entry['path']}: the path must be absolute")
        if entry.get("src") is not None:
            module.fail_json(
                msg=f"{entry['path']}: src is rendered by the action plugin host_files; it did not run"
            )
        state = entry["state"]
        if state == "file":
            changed = _file(module, entry, diffs)
        elif state == "directory":
            changed = _directory(module, entry)
        else:
            changed = _absent(module, entry)
        results.append(
            {"path": entry["path"], "state": state, "changed": bool(changed), "tag": entry.get("tag")}
        )
    changed_tags = []
    for r in results:
        if r["changed"] and r["tag"] is not None and r["tag"] not in changed_tags:
            changed_tags.append(r["tag"])
    out = {
        "changed": any(r["changed"] for r in results),
        "files": results,
        "changed_paths": [r["path"] for r in results if r["changed"]],
        "changed_tags": changed_tags,
    }
    if diffs:
        out["diff"] = diffs
    module.exit_json(**out)


if __name__ == "__main__":
    main()
