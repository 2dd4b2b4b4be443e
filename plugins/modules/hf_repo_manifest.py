#!/usr/bin/python
"""Ansible module: resolve a Hugging Face repository entry of the model store into its file list."""

DOCUMENTATION = r"""
---
module: hf_repo_manifest
short_description: Resolve a Hugging Face repository at a revision into the files to fetch, with checksums
description:
  - Asks the Hub (or a mirror at O(endpoint)) for the model info of O(repo) at O(revision) with the
    files' metadata (C(GET /api/models/REPO/revision/REV?blobs=true)), keeps the files O(include)
    lets through and O(exclude) does not stop (fnmatch globs, as C(huggingface_hub)'s
    C(allow_patterns)/C(ignore_patterns)), and returns each with its size, its checksum (an LFS
    file's sha256, a small file's git blob id) and its URL at the resolved commit.
  - Records that manifest in O(record) (JSON, mode 0644). When O(revision) is a full commit id and
    the record holds the same repository, revision, include, exclude and endpoint, the record is
    returned and the Hub is not asked.
  - A branch, tag or short id is refused unless O(allow_moving_revision); then it is resolved on
    every run and the commit it named is recorded.
  - Needs nothing but the Python standard library on the target host.
version_added: "1.0.0"
author:
  - Lab toolkit maintainers
options:
  name:
    description: The entry's name in C(model_store_models) (its directory in the store), used in messages.
    type: str
    required: true
  repo:
    description: The repository, C(namespace/name).
    type: str
    required: true
  revision:
    description: A 40-hex commit id; a branch or tag only with O(allow_moving_revision).
    type: str
    required: true
  include:
    description: Globs of the files to keep (all when empty).
    type: list
    elements: str
    default: []
  exclude:
    description: Globs of the files to leave out.
    type: list
    elements: str
    default: []
  allow_moving_revision:
    description: Accept a branch or tag, resolved to its commit on every run.
    type: bool
    default: false
  token:
    description: A Hub access token for private or gated repositories (sent as an C(Authorization) bearer token).
    type: str
    default: ""
  endpoint:
    description: The Hub or a mirror speaking its API.
    type: str
    default: https://huggingface.co
  proxy:
    description: An HTTP(S) proxy URL; empty uses the environment's C(https_proxy)/C(http_proxy)/C(no_proxy).
    type: str
    default: ""
  record:
    description: Where the resolved manifest is recorded.
    type: path
    required: true
  timeout:
    description: Seconds the model info request may take.
    type: int
    default: 30
  directory:
    description:
      - The entry's directory in the store. When given, it and every directory the selected files
        need below it are created (or given O(owner), O(group) and O(dir_mode)) in the same call, so
        a converged store needs no task per directory.
    type: path
  owner:
    description: Owner of O(directory) and the directories below it.
    type: str
    default: root
  group:
    description: Group of O(directory) and the directories below it.
    type: str
    default: root
  dir_mode:
    description: Mode of O(directory) and the directories below it (octal string).
    type: str
    default: "0755"
attributes:
  check_mode:
    support: full
    description: In check mode the record is not written; the Hub is asked only when the record does not answer.
"""

EXAMPLES = r"""
- name: Resolve the Q4_K_M file of a GGUF repository
  hf_repo_manifest:
    name: Qwen2.5-7B-Instruct-GGUF
    repo: Qwen/Qwen2.5-7B-Instruct-GGUF
    revision: 0123456789abcdef0123456789abcdef01234567
    include: ["*q4_k_m*.gguf"]
    record: /media/data/models/.model_store/Qwen2.5-7B-Instruct-GGUF/repo.json
"""

RETURN = r"""
commit:
  description: The commit the revision names.
  type: str
  returned: success
directories:
  description: The directories created or corrected (with O(directory)), or in check mode those that would be.
  type: list
  elements: str
  returned: success
files:
  description: The selected files, each with path (in the repository), size, algo (sha256 or git-sha1), digest and url.
  type: list
  elements: dict
  returned: success
network:
  description: Whether the Hub was asked (false when the record answered).
  type: bool
  returned: success
moved_from:
  description: The commit recorded before, when a moving revision now names another one.
  type: str
  returned: success
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hf_repo import HubError, resolve


def ensure_directories(directory, files, owner, group, mode, check_mode):
    """``directory`` and the parents of ``files`` below it, with owner, group and mode.
    Returns the paths created or corrected (in check mode: that would be)."""
    # A name or a numeric id, as the file module takes them.
    uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
    gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
    mode = int(str(mode), 8)
    wanted = {directory}
    for f in files:
        parts = f["path"].split("/")
        for depth in range(1, len(parts)):
            wanted.add(os.path.join(directory, *parts[:depth]))
    touched = []
    for path in sorted(wanted, key=lambda d: (d.count("/"), d)):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid):
            continue
        touched.append(path)
        if check_mode:
            continue
        if st is None:
            os.mkdir(path, mode)
        elif not os.path.isdir(path) or os.path.islink(path):
            raise OSError(f"{path} is not a directory but is in the way of one")
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return touched


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "repo": {"type": "str", "required": True},
            "revision": {"type": "str", "required": True},
            "include": {"type": "list", "elements": "str", "default": []},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "allow_moving_revision": {"type": "bool", "default": False},
            "token": {"type": "str", "default": "", "no_log": True},
            "endpoint": {"type": "str", "default": "https://huggingface.co"},
            "proxy": {"type": "str", "default": ""},
            "record": {"type": "path", "required": True},
            "timeout": {"type": "int", "default": 30},
            "directory": {"type": "path"},
            "owner": {"type": "str", "default": "root"},
            "group": {"type": "str", "default": "root"},
            "dir_mode": {"type": "str", "default": "0755"},
        },
        supports_check_mode=True,
    )
    p = module.params
    entry = {k: p[k] for k in ("name", "repo", "revision", "include", "exclude", "allow_moving_revision")}
    try:
        result = resolve(
            entry,
            p["record"],
            p["endpoint"],
            token=p["token"],
            proxy=p["proxy"],
            timeout=p["timeout"],
            check_mode=module.check_mode,
        )
        manifest = result["manifest"]
        directories = []
        if p["directory"]:
            directories = ensure_directories(
                p["directory"], manifest["files"], p["owner"], p["group"], p["dir_mode"], module.check_mode
            )
    except HubError as err:
        module.fail_json(msg=str(err))
    except (KeyError, OSError) as err:
        module.fail_json(msg=f"model_store_models[{p['name']}]: the directories of the repository: {err}")
    module.exit_json(
        changed=result["changed"] or bool(directories),
        directories=directories,
        commit=manifest["commit"],
        files=manifest["files"],
        network=result["network"],
        moved_from=result["moved_from"] or "",
    )


if __name__ == "__main__":
    main()
