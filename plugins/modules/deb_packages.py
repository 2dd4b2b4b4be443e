#!/usr/bin/python
"""Ansible module: which of some Debian packages are not installed, read from dpkg alone."""

DOCUMENTATION = r"""
---
module: deb_packages
short_description: Find which Debian packages are missing, without apt or the network
description:
  - Asks C(dpkg-query) for the status and version of each package and reports the ones that are
    not installed (or, for C(NAME=VERSION), not at that version; C(VERSION) may end in C(*),
    as apt allows).
  - Also reports whether apt has package lists at all (a fresh image has none).
  - Read-only and fast. The roles install packages with M(ansible.builtin.apt), refreshing the apt
    cache first, only when this module reports something missing, so a converged host needs
    no package mirror and no cache refresh to run again.
  - Needs nothing but the Python standard library and C(dpkg-query) on the target host.
version_added: "1.0.0"
author:
  - Lab toolkit maintainers
options:
  names:
    description: Package names, each optionally C(NAME=VERSION) as for M(ansible.builtin.apt).
    type: list
    elements: str
    required: true
attributes:
  check_mode:
    support: full
    description: The module only reads dpkg's database.
"""

EXAMPLES = r"""
- name: Find which NFS client packages are missing
  deb_packages:
    names: [nfs-common]
  register: __missing

- name: Install them
  ansible.builtin.apt:
    name: "{{ __missing.missing }}"
    update_cache: true
    cache_valid_time: "{{ 3600 if __missing.lists else 0 }}"
  when: __missing.missing | length > 0
"""

RETURN = r"""
missing:
  description: The requested entries (as given) that are not installed as asked.
  type: list
  elements: str
  returned: success
installed:
  description: Installed version of each requested package that is installed.
  type: dict
  returned: success
held:
  description: The requested packages (names without version) that dpkg holds (C(dpkg --get-selections) says C(hold)).
  type: list
  elements: str
  returned: success
lists:
  description: Whether /var/lib/apt/lists holds any package list.
  type: bool
  returned: success
"""

import fnmatch
import glob
import os

from ansible.module_utils.basic import AnsibleModule

LISTS = "/var/lib/apt/lists"


def parse_status(text):
    """dpkg-query lines ``name<TAB>db:Status-Abbrev<TAB>version`` -> ({name: version} of the
    installed ones, sorted names of the held ones).

    Installed means dpkg's status letter (the second) is ``i`` and no error flag (the
    third) is set: ``ii``, ``hi`` (held); a package half-configured, unpacked, or with
    only its config files left (``rc``) is not. An architecture
    qualifier (``libc6:amd64``) is dropped, as apt's names are given without one. Held
    means the desired action (the first letter) is ``h``, installed or not.
    """
    installed, held = {}, set()
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        name, status, version = parts[0].split(":", 1)[0], parts[1].strip(), parts[2].strip()
        if len(status) >= 2 and status[1] == "i" and (len(status) < 3 or status[2] == " "):
            installed[name] = version
        if status.startswith("h"):
            held.add(name)
    return installed, sorted(held)


def missing_of(names, installed):
    """The entries of ``names`` that ``installed`` does not satisfy."""
    missing = []
    for entry in names:
        name, _, version = entry.partition("=")
        have = installed.get(name)
        if have is None or (version and not fnmatch.fnmatchcase(have, version)):
            missing.append(entry)
    return missing


def main():
    module = AnsibleModule(
        argument_spec={"names": {"type": "list", "elements": "str", "required": True}},
        supports_check_mode=True,
    )
    names = [n.strip() for n in module.params["names"] if n and n.strip()]
    query = sorted({n.partition("=")[0] for n in names})
    installed, held = {}, []
    if query:
        # Unknown packages make dpkg-query exit 1 and say so on stderr; the others are listed.
        rc, out, err = module.run_command(
            ["dpkg-query", "-W", "-f=${binary:Package}\t${db:Status-Abbrev}\t${Version}\n", *query]
        )
        if rc not in (0, 1):
            module.fail_json(msg=f"dpkg-query failed (rc {rc}): {err.strip()}")
        found, found_held = parse_status(out)
        installed = {k: v for k, v in found.items() if k in query}
        held = [name for name in found_held if name in query]
    lists = bool(glob.glob(os.path.join(LISTS, "*_Packages*")))
    module.exit_json(
        changed=False, missing=missing_of(names, installed), installed=installed, held=held, lists=lists
    )


if __name__ == "__main__":
    main()
