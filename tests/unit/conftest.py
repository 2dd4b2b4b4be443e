"""Make the project's plugins importable the way Ansible loads them.

`plugins/module_utils/<name>.py` becomes `ansible.module_utils.<name>` (as for a
module shipped through AnsiballZ), and `plugins/modules` / `plugins/filter` are put
on sys.path so tests can import a module file or filter by its name.
"""

import os
import sys

import ansible.module_utils
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")

if MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(MODULE_UTILS)
for sub in ("modules", "filter"):
    path = os.path.join(ROOT, "plugins", sub)
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture
def hub(tmp_path):
    """The Hugging Face Hub stand-in on loopback, serving hf_hub_fixtures' repositories."""
    from hf_hub_fixtures import make_hub

    hub = make_hub(tmp_path)
    yield hub
    hub.stop()
