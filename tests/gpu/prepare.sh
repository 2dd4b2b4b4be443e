#!/usr/bin/env bash
# Prepare tests/gpu/device-check.sh's inputs on this machine, for a device machine that
# reaches no network: the llama.cpp source vendored in the pinned llama-cpp-python
# sdist (without its docs, tests, examples and sample models: about 11 MB), and the
# llama SentencePiece vocabulary GGUF from the same source (the tokenizer of the
# fixture model). Writes .cache/device/ (git-ignored); the device run carries it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${AILAB_CACHE:-/var/cache/ailab}
version=${LLAMACPP_PYTHON_VERSION:-0.3.36}
sdist="$cache/sdist/llama_cpp_python-$version.tar.gz"
out="$root/.cache/device"
[[ -f "$sdist" ]] || python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$cache/sdist" \
  "llama-cpp-python==$version"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$sdist" -C "$tmp" "llama_cpp_python-$version/vendor/llama.cpp"
src="$tmp/llama_cpp_python-$version/vendor/llama.cpp"
mkdir -p "$out"
cp "$src/models/ggml-vocab-llama-spm.gguf" "$out/vocab.gguf"
tar -czf "$out/llama.cpp-src.tar.gz" --exclude=./docs --exclude='./models/*' --exclude=./benches \
  --exclude=./tests --exclude=./examples -C "$src" .
du -sh "$out"/*
