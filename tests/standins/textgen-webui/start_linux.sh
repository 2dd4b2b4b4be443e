#!/usr/bin/env bash
# STAND-IN for text-generation-webui's start_linux.sh (tests/standins/textgen-webui).
# Upstream downloads Miniforge into installer_files/, builds installer_files/env and
# runs one_click.py, which installs the requirements for GPU_CHOICE (A NVIDIA, B AMD,
# N CPU) and launches server.py unless LAUNCH_AFTER_INSTALL is false. This stand-in
# downloads nothing: installer_files/env/bin/python is a link to the system python3,
# and one_click.py installs only llama_cpp_binaries (the real llama-server) from the archive.
set -euo pipefail
cd "$(dirname "$0")"
if [[ "$(pwd)" =~ " " ]]; then echo "This script relies on Miniforge which can not be silently installed under a path with spaces."; exit 1; fi
mkdir -p installer_files/env/bin
ln -sf "$(command -v python3)" installer_files/env/bin/python
exec installer_files/env/bin/python one_click.py "$@"
