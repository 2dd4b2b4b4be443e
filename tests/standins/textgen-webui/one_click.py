"""STAND-IN for text-generation-webui's one_click.py (tests/standins/textgen-webui).

Reads GPU_CHOICE (A NVIDIA, B AMD, N CPU) and LAUNCH_AFTER_INSTALL like upstream,
records the choice in installer_files/gpu_choice.txt and launches server.py unless
LAUNCH_AFTER_INSTALL is false/0. Of the requirements upstream installs with pip
(requirements/full/requirements*.txt) it installs only llama_cpp_binaries: the package
shipped in standin_packages/ (the real llama-server, CPU build, whatever GPU_CHOICE
says) is copied into installer_files/env/lib/python3.X/site-packages/, where pip puts
it in upstream's environment. Nothing is downloaded.
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHOICES = {"A": "NVIDIA (CUDA 12.8)", "B": "AMD (ROCm 7.2)", "N": "CPU only"}
PACKAGE = "llama_cpp_binaries"


def site_packages():
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return os.path.join(HERE, "installer_files", "env", "lib", version, "site-packages")


def install_llama_cpp_binaries():
    source = os.path.join(HERE, "standin_packages", PACKAGE)
    if not os.path.isdir(source):
        print(f"[textgen-standin] {PACKAGE} is not in this archive: llama.cpp models will not load")
        return
    target = os.path.join(site_packages(), PACKAGE)
    if os.path.lexists(target):
        shutil.rmtree(target)
    os.makedirs(site_packages(), exist_ok=True)
    shutil.copytree(source, target, symlinks=True)
    print(f"[textgen-standin] installed {PACKAGE} (llama-server) into {site_packages()}")


def main():
    choice = os.environ.get("GPU_CHOICE", "").upper()
    if choice not in CHOICES:
        print("GPU_CHOICE must be A, B or N for an unattended install (stand-in: no prompt)", file=sys.stderr)
        return 1
    with open(os.path.join(HERE, "installer_files", "gpu_choice.txt"), "w") as fh:
        fh.write(choice + "\n")
    install_llama_cpp_binaries()
    print(f"[textgen-standin] other requirements for {CHOICES[choice]} not installed: this is a stand-in")
    if os.environ.get("LAUNCH_AFTER_INSTALL", "true").lower() in ("false", "0"):
        return 0
    os.execv(sys.executable, [sys.executable, os.path.join(HERE, "server.py")] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
