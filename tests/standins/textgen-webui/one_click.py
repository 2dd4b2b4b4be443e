"""STAND-IN for text-generation-webui's one_click.py (tests/standins/textgen-webui).

Reads GPU_CHOICE (A NVIDIA, B AMD, N CPU) and LAUNCH_AFTER_INSTALL like upstream,
installs nothing (records the choice in installer_files/gpu_choice.txt) and launches
server.py unless LAUNCH_AFTER_INSTALL is false/0.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHOICES = {"A": "NVIDIA (CUDA 12.8)", "B": "AMD (ROCm 7.2)", "N": "CPU only"}


def main():
    choice = os.environ.get("GPU_CHOICE", "").upper()
    if choice not in CHOICES:
        print("GPU_CHOICE must be A, B or N for an unattended install (stand-in: no prompt)", file=sys.stderr)
        return 1
    with open(os.path.join(HERE, "installer_files", "gpu_choice.txt"), "w") as fh:
        fh.write(choice + "\n")
    print(f"[textgen-standin] requirements for {CHOICES[choice]} not installed: this is a stand-in")
    if os.environ.get("LAUNCH_AFTER_INSTALL", "true").lower() in ("false", "0"):
        return 0
    os.execv(sys.executable, [sys.executable, os.path.join(HERE, "server.py")] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
