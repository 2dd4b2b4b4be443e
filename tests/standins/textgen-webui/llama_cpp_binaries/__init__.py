"""STAND-IN packaging of the ``llama_cpp_binaries`` package (tests/standins/textgen-webui).

Upstream text-generation-webui v4.7.3 installs this package from a wheel of
oobabooga/llama-cpp-binaries (requirements/full/requirements_cpu_only.txt pins
llama_cpp_binaries 0.124.0+cpu); its ``llama_cpp_binaries/__init__.py`` returns
``<package>/bin/llama-server``, with the server's shared libraries beside it (RPATH
$ORIGIN). Here ``bin/`` holds the real llama-server of this project's own build
(tests/fixtures/build_llama_server.sh, the llama.cpp commit pinned by the
llamacpp_server role), not the one upstream's wheel would bring: the program that runs
is llama.cpp's, only the packaging is stood in. Standard library only.
"""

import os
import platform


def get_binary_path():
    """Return the path of the llama-server binary in this package (as upstream does)."""
    executable = "llama-server.exe" if platform.system() == "Windows" else "llama-server"
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", executable)
