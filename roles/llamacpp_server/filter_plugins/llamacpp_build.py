"""Filters for llamacpp_server's source builds: can the installed toolkit build the variant?

What llama.cpp needs is read from the pinned source, llama.cpp 0c1e570 (the role's
``llamacpp_server_version``); each rule names the file and line it comes from:

- CUDA: an architecture the installed ``nvcc`` does not list (``nvcc --list-gpu-arch``)
  cannot be compiled; and with a CUDA toolkit older than 12.0 no architecture of 90 or
  later builds: ``ggml/src/ggml-cuda/common.cuh:122-124`` turns on GGML_CUDA_USE_PDL for
  CUDART_VERSION >= 11080 on Linux, and ``common.cuh:133-142`` then calls
  ``cudaGridDependencySynchronize()`` and ``cudaTriggerProgrammaticLaunchCompletion()``
  for ``__CUDA_ARCH__ >= GGML_CUDA_CC_HOPPER`` (900, ``common.cuh:57``); CUDA 11.8's
  headers declare neither (12.0 is the first: ``cuda_device_runtime_api.h``), and
  nvcc 11.8 stops with 'identifier "cudaGridDependencySynchronize" is undefined'.
  The CUDA CMake itself asks for no CUDA version (``ggml/src/ggml-cuda/CMakeLists.txt``)
  and CMake 3.18 (line 1; Debian 12 has 3.25).
- HIP: ``find_package(hip)`` must find ROCm/HIP 6.1 or later
  (``ggml/src/ggml-hip/CMakeLists.txt:54-56``), looked up under ROCM_PATH as lines 1-12 say.
- Vulkan: ``ggml/src/ggml-vulkan/ggml-vulkan.cpp:5214-5224`` uses ``vk::LayerSettingEXT``
  and ``vk::LayerSettingsCreateInfoEXT`` (VK_EXT_layer_settings) without a version guard;
  the Vulkan headers have them from 1.3.272 (VK_HEADER_VERSION 272) on. Debian 12's
  libvulkan-dev is 1.3.239: ``ggml-vulkan.cpp`` stops with "'LayerSettingEXT' is not a
  member of 'vk'".

Pure functions, importable by tests (tests/unit/test_llamacpp_gpu_build_rules.py); each
``llamacpp_*_problems`` filter returns the sentences that explain why the build would
fail (empty: none), each naming the host and the variable to change.
"""

import re

# The source the rules below are read from.
SOURCE = "llama.cpp 0c1e570"
# ggml/src/ggml-hip/CMakeLists.txt:54-56: if (${hip_VERSION} VERSION_LESS 6.1) FATAL_ERROR.
HIP_MIN = (6, 1)
# ggml/src/ggml-vulkan/ggml-vulkan.cpp:5214-5224 (VK_EXT_layer_settings, unguarded):
# Vulkan-Headers v1.3.272 is the first with it (vulkan_core.h: #define VK_EXT_layer_settings 1).
VULKAN_MIN_HEADER = 272
# ggml/src/ggml-cuda/common.cuh:122-124 and 133-142: device code for __CUDA_ARCH__ >= 900 calls
# cudaGridDependencySynchronize, first declared by CUDA 12.0 (cuda_device_runtime_api.h).
CUDA_PDL_ARCH = 90
CUDA_PDL_DECLARED = (12, 0)

_DEFINE = re.compile(r"^-D(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?=(?P<value>.*)$")
_CUDA_ARCH = re.compile(r"^(?P<num>[0-9]+)(?P<letter>[a-z]?)(?:-(?P<kind>real|virtual))?$")
_CUDA_WORDS = ("native", "all", "all-major")
_HIP_TARGET = re.compile(r"^gfx[0-9a-f]+$")


def llamacpp_cmake_define(args, name, default=None):
    """The value of ``-D<name>=`` (or ``-D<name>:TYPE=``) in a CMake argument list; the last wins, as in CMake."""
    value = default
    for arg in args or []:
        match = _DEFINE.match(str(arg))
        if match and match.group("name") == name:
            value = match.group("value")
    return value


def _version_tuple(text):
    return tuple(int(part) for part in re.findall(r"[0-9]+", str(text))[:3])


def _dotted(version):
    return ".".join(str(part) for part in version)


# ----------------------------------------------------------------------------- GPU targets


def llamacpp_gpu_targets_invalid(targets, variant):
    """The entries of ``llamacpp_server_gpu_targets`` that are no target of the variant's build.

    CUDA: CMAKE_CUDA_ARCHITECTURES entries (``86``, ``86-real``, ``90-virtual``, ``120a``,
    ``native``, ``all``, ``all-major``); HIP: GPU_TARGETS, AMD ``gfx`` names (``gfx1100``).
    Other variants take no targets: every entry is refused.
    """
    targets = [str(t) for t in targets or []]
    if variant == "cuda":
        return [t for t in targets if t not in _CUDA_WORDS and not _CUDA_ARCH.match(t)]
    if variant == "hip":
        return [t for t in targets if not _HIP_TARGET.match(t)]
    return targets


# ----------------------------------------------------------------------------------- CUDA


def llamacpp_cuda_compiler(cmake_args, environment=None):
    """The nvcc CMake compiles with: -DCMAKE_CUDA_COMPILER, else $CUDACXX, else ``nvcc`` on PATH.

    As CMake's CMakeDetermineCUDACompiler.cmake looks for it.
    """
    environment = environment or {}
    return llamacpp_cmake_define(cmake_args, "CMAKE_CUDA_COMPILER") or environment.get("CUDACXX") or "nvcc"


def nvcc_release(text):
    """``(11, 8)`` from ``nvcc --version`` ("Cuda compilation tools, release 11.8, V11.8.89"); None if absent."""
    match = re.search(r"release ([0-9]+)\.([0-9]+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def nvcc_architectures(text):
    """The architecture numbers ``nvcc --list-gpu-arch`` prints (``compute_86`` -> 86), in order."""
    found = []
    for num in re.findall(r"^compute_([0-9]+)[a-z]?\s*$", text or "", re.M):
        if int(num) not in found:
            found.append(int(num))
    return found


def cuda_default_architectures(release, native):
    """CMAKE_CUDA_ARCHITECTURES when none is set: ggml/src/ggml-cuda/CMakeLists.txt:40-68 and 93-105.

    ``native`` (the GPUs present at build time) with GGML_NATIVE, CUDA 11.6 or later and
    CMake 3.24 or later (Debian 12 and 13 have 3.25 and 3.31); else the portable list for
    the CUDA version, 12X turned into 12Xa.
    """
    if native and release >= (11, 6):
        return ["native"]
    archs = []
    if release < (13, 0):
        archs += ["50-virtual", "61-virtual", "70-virtual"]
    archs += ["75-virtual", "80-virtual", "86-real"]
    if release >= (11, 8):
        archs += ["89-real", "90-virtual"]
    if release >= (12, 8):
        archs += ["120a-real"]
    if release >= (12, 9):
        archs += ["121a-real"]
    return archs


def llamacpp_cuda_problems(
    version_text,
    list_gpu_arch_text,
    host,
    cmake_args,
    gpu_targets=None,
    user_cmake_args=None,
    nvcc="nvcc",
    error="",
):
    """Why the installed nvcc cannot build these CUDA architectures (empty list: it can).

    ``version_text``/``list_gpu_arch_text``: what ``nvcc --version`` and ``nvcc
    --list-gpu-arch`` printed (empty when nvcc did not run, ``error`` then says why);
    ``cmake_args``: every CMake option of the build (GGML_NATIVE and the architectures,
    the last one given wins); ``gpu_targets``/``user_cmake_args``: the user's
    ``llamacpp_server_gpu_targets`` and ``llamacpp_server_cmake_args``, to name the
    variable the architectures come from.
    """
    release = nvcc_release(version_text)
    known = nvcc_architectures(list_gpu_arch_text)
    if release is None or not known:
        return [
            f"{host}: llamacpp_server_variant is cuda, but the CUDA compiler CMake would use ({nvcc}) "
            f"did not run or did not print its version and architectures"
            f"{': ' + error.strip().rstrip('.') if error and error.strip() else ''}. Install the CUDA toolkit "
            f"(llamacpp_server_build_packages) and put its nvcc on the PATH of "
            f"llamacpp_server_build_environment (or set CUDACXX there)."
        ]

    effective = llamacpp_cmake_define(cmake_args, "CMAKE_CUDA_ARCHITECTURES")
    if effective is not None:
        asked = [a for a in effective.split(";") if a]
    else:
        native = str(llamacpp_cmake_define(cmake_args, "GGML_NATIVE", "ON")).upper() in (
            "ON",
            "1",
            "TRUE",
            "YES",
        )
        asked = cuda_default_architectures(release, native)
    if "native" in asked:
        # The GPUs present when CMake runs: nothing to compare before the build.
        return []
    given = llamacpp_cmake_define(user_cmake_args, "CMAKE_CUDA_ARCHITECTURES")
    if given is not None:
        subject = f"llamacpp_server_cmake_args (-DCMAKE_CUDA_ARCHITECTURES={given})"
    elif gpu_targets:
        subject = f"llamacpp_server_gpu_targets ({', '.join(str(t) for t in gpu_targets)})"
    else:
        subject = (
            f"llamacpp_server_gpu_targets is empty, so upstream's default list for CUDA {_dotted(release)} "
            f"applies ({', '.join(asked)}; ggml/src/ggml-cuda/CMakeLists.txt:40-68), which"
        )
    cuda = f"the installed nvcc ({nvcc}, CUDA {_dotted(release)})"

    problems = []
    numbers = {}
    for arch in asked:
        match = _CUDA_ARCH.match(arch)
        if arch == "all":
            numbers.update({str(n): n for n in known})
        elif arch == "all-major":
            numbers.update({str(n): n for n in known if n % 10 == 0})
        elif match:
            numbers[arch] = int(match.group("num"))
        else:
            problems.append(
                f"{host}: {subject} names {arch}, which is no CUDA architecture "
                f"(such as 86, 86-real, 90-virtual, native, all)."
            )
    unknown = [arch for arch, num in numbers.items() if num not in known]
    if unknown:
        problems.append(
            f"{host}: {subject} names CUDA architectures {', '.join(unknown)}, which {cuda} does not "
            f"know; it knows {', '.join(str(n) for n in known)} (nvcc --list-gpu-arch). Leave "
            f"{', '.join(unknown)} out, or build with a newer CUDA toolkit "
            f"(llamacpp_server_build_packages, its nvcc on the PATH of llamacpp_server_build_environment)."
        )
    pdl = [arch for arch, num in numbers.items() if num >= CUDA_PDL_ARCH and num in known]
    if pdl and release < CUDA_PDL_DECLARED:
        problems.append(
            f"{host}: {subject} names {', '.join(pdl)}, and {SOURCE}'s CUDA code for architectures "
            f"{CUDA_PDL_ARCH} and later calls cudaGridDependencySynchronize "
            f"(ggml/src/ggml-cuda/common.cuh:122-124, 133-142), which the headers of CUDA {_dotted(release)} "
            f"({nvcc}) do not declare "
            f"(CUDA {_dotted(CUDA_PDL_DECLARED)} is the first that does): the build would stop there. Set "
            f"llamacpp_server_gpu_targets to your cards' architectures below {CUDA_PDL_ARCH} "
            f'(e.g. ["86-real"]), or build with a CUDA {CUDA_PDL_DECLARED[0]} toolkit.'
        )
    return problems


# ------------------------------------------------------------------------------------ HIP


def hip_version_files(rocm_path_env="", existing=()):
    """The hip-config-version.cmake files ``find_package(hip)`` of ggml/src/ggml-hip/CMakeLists.txt
    would take, first to last.

    ROCM_PATH is $ROCM_PATH when that exists, else /opt/rocm when it exists, else /usr
    (lines 1-9; ``existing``: which of them exist); it leads CMAKE_PREFIX_PATH (lines
    11-12), the system prefix /usr (Debian's multiarch directory) follows. ROCm is x86-64 only.
    """
    existing = [str(p).rstrip("/") for p in existing or []]
    if rocm_path_env and rocm_path_env.rstrip("/") in existing:
        rocm = rocm_path_env.rstrip("/")
    elif "/opt/rocm" in existing:
        rocm = "/opt/rocm"
    else:
        rocm = "/usr"
    files = []
    for prefix in (rocm, "/usr"):
        for sub in ("lib/cmake/hip", "lib64/cmake/hip", "lib/x86_64-linux-gnu/cmake/hip"):
            path = f"{prefix}/{sub}/hip-config-version.cmake"
            if path not in files:
                files.append(path)
    return files


def cmake_package_version(text):
    """``PACKAGE_VERSION`` of a CMake package version file (``set(PACKAGE_VERSION "5.2.0")``), or None."""
    match = re.search(r'^\s*set\(\s*PACKAGE_VERSION\s+"?([0-9][0-9.]*)"?\s*\)', text or "", re.M)
    return match.group(1) if match else None


def llamacpp_hip_problems(version_file_text, host, version_file=""):
    """Why the HIP that CMake would find cannot build llama.cpp (empty list: it can)."""
    version = cmake_package_version(version_file_text) if version_file else None
    where = (
        f"{version_file} says HIP {version}"
        if version
        else "CMake's find_package(hip) would find no hip-config-version.cmake "
        "(under ROCM_PATH, /opt/rocm or /usr)"
    )
    if version and _version_tuple(version) >= HIP_MIN:
        return []
    return [
        f"{host}: llamacpp_server_variant is hip, and {SOURCE} needs ROCm/HIP {_dotted(HIP_MIN)} or later "
        f"(ggml/src/ggml-hip/CMakeLists.txt:54-56), but {where}. Install ROCm {_dotted(HIP_MIN)} or later "
        f"from AMD's repository (the gpu_driver role adds it on AMD hosts; Debian 12's own hipcc is 5.2) "
        f"and set ROCM_PATH in llamacpp_server_build_environment if it is not /opt/rocm, or install a "
        f"release archive (llamacpp_server_install: archive)."
    ]


# --------------------------------------------------------------------------------- Vulkan


def llamacpp_vulkan_include_dir(cmake_args, environment=None):
    """The include directory CMake's FindVulkan takes: -DVulkan_INCLUDE_DIR, else $VULKAN_SDK/include, else /usr/include."""
    environment = environment or {}
    given = llamacpp_cmake_define(cmake_args, "Vulkan_INCLUDE_DIR")
    if given:
        return given.rstrip("/") or "/"
    if environment.get("VULKAN_SDK"):
        return environment["VULKAN_SDK"].rstrip("/") + "/include"
    return "/usr/include"


def vulkan_header_version(text):
    """``(1, 3, 239)`` from vulkan_core.h's VK_HEADER_VERSION and VK_HEADER_VERSION_COMPLETE; None if absent."""
    patch = re.search(r"^#define VK_HEADER_VERSION ([0-9]+)\s*$", text or "", re.M)
    if not patch:
        return None
    complete = re.search(
        r"^#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION\(\s*[0-9]+\s*,\s*([0-9]+)\s*,\s*([0-9]+)\s*,",
        text,
        re.M,
    )
    head = (int(complete.group(1)), int(complete.group(2))) if complete else (1, 3)
    return head + (int(patch.group(1)),)


def llamacpp_vulkan_problems(header_text, host, header=""):
    """Why the Vulkan headers CMake would use cannot build llama.cpp (empty list: they can)."""
    version = vulkan_header_version(header_text)
    if version and version[2] >= VULKAN_MIN_HEADER:
        return []
    found = (
        f"{header} is {_dotted(version)}" if version else f"{header or 'vulkan/vulkan_core.h'} was not found"
    )
    return [
        f"{host}: llamacpp_server_variant vulkan with llamacpp_server_install source needs the Vulkan "
        f"headers 1.3.{VULKAN_MIN_HEADER} or later ({SOURCE}'s ggml/src/ggml-vulkan/ggml-vulkan.cpp:5214-5224 "
        f"uses VK_EXT_layer_settings), but {found} (Debian 12's libvulkan-dev is 1.3.239). Point CMake "
        f"at newer headers (llamacpp_server_cmake_args: [-DVulkan_INCLUDE_DIR=...], e.g. Debian 13's "
        f"libvulkan-dev unpacked), or install a release archive (llamacpp_server_install: archive)."
    ]


class FilterModule:
    """llamacpp_server's source-build checks."""

    def filters(self):
        return {
            "llamacpp_cmake_define": llamacpp_cmake_define,
            "llamacpp_gpu_targets_invalid": llamacpp_gpu_targets_invalid,
            "llamacpp_cuda_compiler": llamacpp_cuda_compiler,
            "llamacpp_cuda_problems": llamacpp_cuda_problems,
            "llamacpp_hip_version_files": hip_version_files,
            "llamacpp_hip_problems": llamacpp_hip_problems,
            "llamacpp_vulkan_include_dir": llamacpp_vulkan_include_dir,
            "llamacpp_vulkan_problems": llamacpp_vulkan_problems,
        }
