"""Repositories for the Hugging Face Hub stand-in (tests/standins/hf_hub/hf_hub_standin.py).

``make_hub(tmp_path)`` writes real model files and the stand-in's repositories file, and
returns a started stand-in (stop it with ``hub.stop()``):

- ``ailab/tiny-gguf``: a GGUF repository of two commits. The first holds ``README.md`` and
  ``tiny-F32.gguf`` (the tiny real llama GGUF of tests/fixtures/make_tiny_gguf.py when
  ``$AILAB_CACHE/models`` has it, else a small one written with GGUFWriter); the second adds
  ``tiny-Q8_0.gguf`` and changes the README. ``main`` is the second, tag ``v1.0`` the first.
- ``ailab/tiny-llama-hf``: a Transformers directory (``config.json``, two safetensors shards
  and their index, written with the ``safetensors`` package) and a file in a subdirectory.
- ``ailab/private-gguf``: private, readable with the token ``PRIVATE_TOKEN``.
"""

import importlib.util
import json
import os
import shutil

from fixtures_models import write_gguf, write_hf_dir

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STANDIN = os.path.join(ROOT, "tests", "standins", "hf_hub", "hf_hub_standin.py")
_SPEC = importlib.util.spec_from_file_location("hf_hub_standin", STANDIN)
hf_hub_standin = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(hf_hub_standin)

PRIVATE_TOKEN = "hf_standin_private_token"
TINY_GGUF = os.path.join(os.environ.get("AILAB_CACHE", "/var/cache/ailab"), "models", "tiny-llama-F32.gguf")


def write_files(tmp_path):
    """The model files the repositories serve, under tmp_path/files."""
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    if os.path.exists(TINY_GGUF):
        shutil.copyfile(TINY_GGUF, files / "tiny-F32.gguf")
    else:
        write_gguf(files / "tiny-F32.gguf", name="tiny", file_type=0, sparse=False)
    write_gguf(files / "tiny-Q8_0.gguf", name="tiny", file_type=7, sparse=False)
    write_hf_dir(files / "hf", shards=2)
    return files


def repos_spec(files):
    hf = files / "hf"
    return {
        "repos": [
            {
                "id": "ailab/tiny-gguf",
                "commits": [
                    {
                        "files": {
                            "README.md": {"text": "# tiny-gguf\nfirst\n"},
                            "tiny-F32.gguf": {"path": str(files / "tiny-F32.gguf")},
                        }
                    },
                    {
                        "files": {
                            "README.md": {"text": "# tiny-gguf\nsecond\n"},
                            "tiny-F32.gguf": {"path": str(files / "tiny-F32.gguf")},
                            "tiny-Q8_0.gguf": {"path": str(files / "tiny-Q8_0.gguf")},
                        }
                    },
                ],
                "refs": {"main": 1, "v1.0": 0},
            },
            {
                "id": "ailab/tiny-llama-hf",
                "commits": [
                    {
                        "files": {
                            **{name: {"path": str(hf / name)} for name in sorted(os.listdir(hf))},
                            "extra/notes.txt": {"text": "a file in a subdirectory\n"},
                        }
                    }
                ],
            },
            {
                "id": "ailab/private-gguf",
                "token": PRIVATE_TOKEN,
                "commits": [{"files": {"tiny-Q8_0.gguf": {"path": str(files / "tiny-Q8_0.gguf")}}}],
            },
        ]
    }


def make_hub(tmp_path, rate=0):
    """Write the files and the repositories file, start the stand-in; returns it (hub.endpoint set)."""
    files = write_files(tmp_path)
    spec = tmp_path / "repos.json"
    spec.write_text(json.dumps(repos_spec(files)))
    hub = hf_hub_standin.Hub(hf_hub_standin.load_repos(str(spec)), rate=rate)
    hub.endpoint = hub.start()
    hub.files = files
    return hub
