#!/usr/bin/env python3
"""Delete a model Ollama imported: its manifest, then the blobs no other manifest uses.

Usage: purge_model.py MODELS_DIR NAME[:TAG]

Ollama's models directory (server/modelpath.go upstream): manifests under
manifests/<registry>/<namespace>/<name>/<tag>, a local import landing in
registry.ollama.ai/library, tag "latest" unless named; each manifest is JSON whose
"config" and "layers" name blobs/sha256-<hex> by digest ("sha256:<hex>"). Blobs still
named by another manifest stay: instances may share one models directory. Prints
"removed" when anything was deleted, "absent" otherwise. Standard library only.
"""

import json
import os
import sys


def digests(manifest_path):
    with open(manifest_path, encoding="utf-8") as fh:
        data = json.load(fh)
    layers = list(data.get("layers") or [])
    if data.get("config"):
        layers.append(data["config"])
    return {layer["digest"] for layer in layers if isinstance(layer, dict) and layer.get("digest")}


def main(models, name):
    base, _, tag = name.partition(":")
    manifests = os.path.join(models, "manifests")
    target = os.path.join(manifests, "registry.ollama.ai", "library", base, tag or "latest")
    if not os.path.isfile(target):
        print("absent")
        return 0
    mine = digests(target)
    os.unlink(target)
    parent = os.path.dirname(target)
    if not os.listdir(parent):
        os.rmdir(parent)
    used = set()
    for root, _dirs, files in os.walk(manifests):
        for entry in files:
            try:
                used |= digests(os.path.join(root, entry))
            except (OSError, ValueError):
                # A manifest we cannot read may name any blob: keep them all.
                print("removed")
                return 0
    for digest in sorted(mine - used):
        blob = os.path.join(models, "blobs", digest.replace(":", "-"))
        if os.path.isfile(blob):
            os.unlink(blob)
    print("removed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
