"""roles/ollama/files/purge_model.py: a purged instance's imported model goes, shared blobs stay.

The directory is laid out as Ollama lays it out (and as tests/standins/ollama does):
manifests/registry.ollama.ai/library/<name>/<tag>, blobs/sha256-<hex>.
"""

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "ollama", "files", "purge_model.py")


def manifest(models, name, tag, *digests):
    path = models / "manifests" / "registry.ollama.ai" / "library" / name / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = [{"mediaType": "application/vnd.ollama.image.model", "digest": d} for d in digests[1:]]
    path.write_text(json.dumps({"schemaVersion": 2, "config": {"digest": digests[0]}, "layers": layers}))
    for digest in digests:
        blob = models / "blobs" / digest.replace(":", "-")
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(b"x")


def purge(models, name):
    return subprocess.run(
        [sys.executable, SCRIPT, str(models), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_purge_deletes_the_manifest_and_only_the_blobs_no_other_model_uses(tmp_path):
    shared, own, cfg1, cfg2 = ("sha256:" + c * 64 for c in "abcd")
    manifest(tmp_path, "chat", "latest", cfg1, shared, own)
    manifest(tmp_path, "other", "latest", cfg2, shared)
    assert purge(tmp_path, "chat") == "removed"
    blobs = sorted(os.listdir(tmp_path / "blobs"))
    assert blobs == sorted(d.replace(":", "-") for d in (shared, cfg2))
    assert not (tmp_path / "manifests" / "registry.ollama.ai" / "library" / "chat").exists()
    assert (tmp_path / "manifests" / "registry.ollama.ai" / "library" / "other" / "latest").exists()
    # Nothing left to delete: a rerun changes nothing.
    assert purge(tmp_path, "chat") == "absent"


def test_a_tagged_model_name_is_its_own_manifest(tmp_path):
    manifest(tmp_path, "chat", "q4", "sha256:" + "e" * 64)
    manifest(tmp_path, "chat", "latest", "sha256:" + "f" * 64)
    assert purge(tmp_path, "chat:q4") == "removed"
    assert os.listdir(tmp_path / "manifests" / "registry.ollama.ai" / "library" / "chat") == ["latest"]
