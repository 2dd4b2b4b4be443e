"""lookup('input_digest', role_path): one digest of the values of a role's inputs.

The inputs are the options of an entry point in the role's meta/argument_specs.yml,
so a new option is covered the day it is documented. A role checks its inputs once
per run: its validate.yml records this digest, and its main.yml skips validate.yml
when the digest is the same (site.yml's preflight checked those very values before
any host changed). Any other value a check depends on (a fact, a plan) goes in
`extra`.
"""

from __future__ import annotations

import hashlib
import json
import os

import yaml
from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: input_digest
short_description: SHA-256 of the values of a role's documented inputs
description:
  - Reads the options of O(entry_point) from the role's C(meta/argument_specs.yml) and
    returns one SHA-256 over their current values (an option with no value counts as
    undefined) and over O(extra).
options:
  _terms:
    description: The role's path (C(role_path)).
    required: true
  entry_point:
    description: The entry point whose options are the inputs.
    default: main
  extra:
    description: Other values the checks depend on.
    default: []
  exclude:
    description: Options left out (those that say how to check, not what).
    default: []
"""

_UNDEFINED = "\0undefined"
_SPEC_CACHE: dict = {}


def _options(role_path: str, entry_point: str) -> list:
    path = os.path.join(role_path, "meta", "argument_specs.yml")
    key = (path, entry_point)
    if key not in _SPEC_CACHE:
        try:
            with open(path, encoding="utf-8") as fh:
                specs = yaml.safe_load(fh)["argument_specs"]
        except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise AnsibleError(f"input_digest: cannot read the argument specs in {path}: {exc}") from exc
        if entry_point not in specs:
            raise AnsibleError(f"input_digest: {path} has no entry point {entry_point!r}")
        _SPEC_CACHE[key] = sorted((specs[entry_point] or {}).get("options") or {})
    return _SPEC_CACHE[key]


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if len(terms) != 1 or not isinstance(terms[0], str):
            raise AnsibleError("input_digest takes one term: the role's path (role_path)")
        exclude = set(self.get_option("exclude"))
        names = [n for n in _options(terms[0], self.get_option("entry_point")) if n not in exclude]
        variables = variables or {}
        raw = {name: variables[name] for name in names if name in variables}
        values = self._templar.template(raw) if raw else {}
        doc = {name: values.get(name, _UNDEFINED) for name in names}
        doc["\0extra"] = self.get_option("extra")
        blob = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
        return [hashlib.sha256(blob.encode("utf-8")).hexdigest()]
