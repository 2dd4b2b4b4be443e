"""Every module's DOCUMENTATION, EXAMPLES and RETURN is YAML that ansible-doc can read (a
stray 'word: ' in a description breaks the whole page), naming the module."""

import ast
import glob
import os
from pathlib import Path

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULES = sorted(glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")))


def docs(path):
    tree = ast.parse(Path(path).read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }


@pytest.mark.parametrize("path", MODULES, ids=[os.path.basename(m) for m in MODULES])
def test_module_documentation_is_yaml_with_its_options(path):
    found = docs(path)
    assert set(found) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, path
    parsed = {name: yaml.safe_load(text) for name, text in found.items()}
    doc = parsed["DOCUMENTATION"]
    assert doc["module"] == os.path.basename(path)[:-3]
    assert doc.get("short_description") and doc.get("description")
