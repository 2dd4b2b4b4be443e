#!/usr/bin/env python3
"""Write a deterministic stand-in model file (a GGUF magic, then hash-chain bytes).

usage: make_model.py PATH SIZE_BYTES [SEED]; the same arguments give the same bytes,
so the scenario's inventory can carry its checksum.
"""

import hashlib
import sys


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    seed = (sys.argv[3] if len(sys.argv) > 3 else "ailab").encode()
    block = hashlib.sha256(seed).digest()
    with open(path, "wb") as out:
        written = out.write(b"GGUF")
        while written < size:
            block = hashlib.sha256(block).digest() * 1024
            written += out.write(block[: size - written])
            block = block[:32]


if __name__ == "__main__":
    main()
