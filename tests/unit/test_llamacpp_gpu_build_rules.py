"""roles/llamacpp_server/filter_plugins/llamacpp_build.py: can the installed toolkit build the variant?

The rules come from the pinned source, llama.cpp 0c1e570:
- CUDA: nvcc must know each architecture (``nvcc --list-gpu-arch``); below CUDA 12.0 no
  architecture of 90 or later builds, since ``ggml/src/ggml-cuda/common.cuh:122-124``
  turns on PDL for CUDART >= 11.8 and ``common.cuh:133-142`` calls
  ``cudaGridDependencySynchronize`` for ``__CUDA_ARCH__ >= 900``, which CUDA 11.8 does not
  declare; the default architectures are ``ggml/src/ggml-cuda/CMakeLists.txt:40-68``.
- HIP: ``ggml/src/ggml-hip/CMakeLists.txt:54-56`` stops below hip 6.1; ROCM_PATH as its
  lines 1-12 choose it.
- Vulkan: ``ggml/src/ggml-vulkan/ggml-vulkan.cpp:5214-5224`` needs VK_EXT_layer_settings,
  in the Vulkan headers from 1.3.272 on.

They are tested against real output (tests/unit/gpu_samples/, sources in its SOURCES.md):
Debian 12's nvcc 11.8.89, Debian 12's hip-config-version.cmake (5.2), the version lines
of Debian 12's (1.3.239) and Debian 13's (1.4.309) vulkan_core.h.
"""

import os
import sys

import pytest
from gpu_samples import read as sample

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "roles", "llamacpp_server", "filter_plugins"))

import llamacpp_build as rules

NVCC_VERSION = sample("nvcc-11.8.89-debian12-version.txt")
NVCC_ARCHS = sample("nvcc-11.8.89-debian12-list-gpu-arch.txt")
NVCC13_VERSION = sample("nvcc-13.0.88-pypi-version.txt")
NVCC13_ARCHS = sample("nvcc-13.0.88-pypi-list-gpu-arch.txt")
HIP_52 = sample("hip-config-version-5.2.0-debian12.cmake")
VULKAN_239 = sample("vulkan_core-1.3.239-debian12-version.txt")
VULKAN_309 = sample("vulkan_core-1.4.309-debian13-version.txt")

# The role's own CMake options of a portable CUDA build (vars/main.yml), before the targets.
BASE = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DBUILD_SHARED_LIBS=ON", "-DGGML_CUDA=ON"]


def cuda(targets=(), user_args=(), native=False, version=NVCC_VERSION, archs=NVCC_ARCHS, error=""):
    """The problems the role reports for these targets, as tasks/toolkit.yml passes them."""
    args = list(BASE)
    if native:
        args[1] = "-DGGML_NATIVE=ON"
    if targets:
        args.append("-DCMAKE_CUDA_ARCHITECTURES=" + ";".join(targets))
    args += list(user_args)
    return rules.llamacpp_cuda_problems(
        version, archs, "gpu1", args, list(targets), list(user_args), "/usr/bin/nvcc", error
    )


# ------------------------------------------------------------------ the real nvcc 11.8 capture


def test_the_nvcc_capture_is_cuda_11_8_and_its_architectures_end_at_90():
    assert rules.nvcc_release(NVCC_VERSION) == (11, 8)
    assert rules.nvcc_architectures(NVCC_ARCHS) == [
        35,
        37,
        50,
        52,
        53,
        60,
        61,
        62,
        70,
        72,
        75,
        80,
        86,
        87,
        89,
        90,
    ]


def test_blackwell_120_is_refused_naming_host_variable_asked_and_known():
    (problem,) = cuda(["120", "86-real"])
    assert problem.startswith(
        "gpu1: llamacpp_server_gpu_targets (120, 86-real) names CUDA architectures 120,"
    )
    assert "(/usr/bin/nvcc, CUDA 11.8) does not know" in problem
    assert (
        "it knows 35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90 (nvcc --list-gpu-arch)"
        in problem
    )


def test_architectures_below_90_that_nvcc_lists_pass():
    assert cuda(["86-real"]) == []
    assert cuda(["75", "80-virtual", "86-real", "89-real"]) == []


def test_architecture_90_is_refused_with_cuda_11_8_for_the_undeclared_pdl_call():
    (problem,) = cuda(["86-real", "90"])
    assert problem.startswith("gpu1: llamacpp_server_gpu_targets (86-real, 90) names 90,")
    assert "cudaGridDependencySynchronize (ggml/src/ggml-cuda/common.cuh:122-124, 133-142)" in problem
    assert "headers of CUDA 11.8 (/usr/bin/nvcc) do not declare (CUDA 12.0 is the first that does)" in problem


def test_an_architecture_both_unknown_and_over_90_is_reported_once_as_unknown():
    problems = cuda(["120a-real"])
    assert len(problems) == 1 and "names CUDA architectures 120a-real, which" in problems[0]


def test_empty_targets_take_upstreams_default_list_whose_90_virtual_cuda_11_8_cannot_build():
    # ggml/src/ggml-cuda/CMakeLists.txt:43-51 for CUDA 11.8.
    assert rules.cuda_default_architectures((11, 8), native=False) == [
        "50-virtual",
        "61-virtual",
        "70-virtual",
        "75-virtual",
        "80-virtual",
        "86-real",
        "89-real",
        "90-virtual",
    ]
    (problem,) = cuda([])
    assert problem.startswith(
        "gpu1: llamacpp_server_gpu_targets is empty, so upstream's default list for CUDA 11.8 applies "
        "(50-virtual, 61-virtual, 70-virtual, 75-virtual, 80-virtual, 86-real, 89-real, 90-virtual; "
        "ggml/src/ggml-cuda/CMakeLists.txt:40-68), which names 90-virtual,"
    )
    assert (
        'Set llamacpp_server_gpu_targets to your cards\' architectures below 90 (e.g. ["86-real"])' in problem
    )


def test_upstreams_default_list_follows_the_cuda_version():
    # CMakeLists.txt:43-68: no 50/61/70 from CUDA 13, 120a-real from 12.8, 121a-real from 12.9.
    assert rules.cuda_default_architectures((11, 7), native=False)[-1] == "86-real"
    assert rules.cuda_default_architectures((12, 8), native=False)[-2:] == ["90-virtual", "120a-real"]
    assert rules.cuda_default_architectures((13, 0), native=False) == [
        "75-virtual",
        "80-virtual",
        "86-real",
        "89-real",
        "90-virtual",
        "120a-real",
        "121a-real",
    ]
    # CMakeLists.txt:40-41: native from CUDA 11.6 (CMake 3.24, Debian 12 has 3.25).
    assert rules.cuda_default_architectures((11, 8), native=True) == ["native"]
    assert rules.cuda_default_architectures((11, 5), native=True)[0] == "50-virtual"


def test_a_native_build_is_left_to_the_gpus_present_at_build_time():
    assert cuda([], native=True) == []
    assert cuda(["native"]) == []


def test_all_expands_to_what_nvcc_knows_and_so_takes_in_90():
    (problem,) = cuda(["all"])
    assert problem.startswith("gpu1: llamacpp_server_gpu_targets (all) names 90,")
    (problem,) = cuda(["all-major"])
    assert "names 90," in problem


def test_architectures_from_the_extra_cmake_options_win_and_are_named_there():
    (problem,) = cuda(["86-real"], user_args=["-DCMAKE_CUDA_ARCHITECTURES=100"])
    assert problem.startswith(
        "gpu1: llamacpp_server_cmake_args (-DCMAKE_CUDA_ARCHITECTURES=100) names CUDA architectures 100,"
    )
    assert cuda(["120"], user_args=["-DCMAKE_CUDA_ARCHITECTURES:STRING=86-real"]) == []


def test_a_cuda_12_toolkit_builds_90_and_the_default_list():
    # The same nvcc, its version line only changed to 12.4: what it lists is what counts.
    version = NVCC_VERSION.replace("release 11.8, V11.8.89", "release 12.4, V12.4.131")
    assert cuda(["90"], version=version) == []
    assert cuda([], version=version) == []


def test_the_real_cuda_13_nvcc_knows_blackwell_dropped_volta_and_builds_the_default_list():
    # nvcc 13.0 lists its architectures unsorted and without the 'a'/'f' forms.
    assert rules.nvcc_release(NVCC13_VERSION) == (13, 0)
    assert rules.nvcc_architectures(NVCC13_ARCHS) == [75, 80, 86, 87, 88, 89, 90, 100, 110, 103, 120, 121]
    assert cuda(["120"], version=NVCC13_VERSION, archs=NVCC13_ARCHS) == []
    assert cuda(["90", "120a-real", "121a-real", "100f"], version=NVCC13_VERSION, archs=NVCC13_ARCHS) == []
    # ggml/src/ggml-cuda/CMakeLists.txt:43-68 for CUDA 13: 75-virtual ... 121a-real, all known.
    assert cuda([], version=NVCC13_VERSION, archs=NVCC13_ARCHS) == []
    (problem,) = cuda(["70", "86-real"], version=NVCC13_VERSION, archs=NVCC13_ARCHS)
    assert (
        "names CUDA architectures 70, which the installed nvcc (/usr/bin/nvcc, CUDA 13.0) does not know"
        in problem
    )


def test_an_nvcc_that_did_not_run_is_named_with_why():
    (problem,) = cuda(["86-real"], version="", archs="", error="[Errno 2] No such file or directory: b'nvcc'")
    assert problem.startswith("gpu1: llamacpp_server_variant is cuda, but the CUDA compiler CMake would use")
    assert "(/usr/bin/nvcc) did not run" in problem and "No such file or directory" in problem
    assert "llamacpp_server_build_environment" in problem


def test_the_nvcc_cmake_uses_is_the_option_then_cudacxx_then_path():
    assert rules.llamacpp_cuda_compiler(["-DCMAKE_CUDA_COMPILER=/opt/cuda/bin/nvcc"], {"CUDACXX": "/x"}) == (
        "/opt/cuda/bin/nvcc"
    )
    assert (
        rules.llamacpp_cuda_compiler(BASE, {"CUDACXX": "/usr/local/cuda/bin/nvcc"})
        == "/usr/local/cuda/bin/nvcc"
    )
    assert rules.llamacpp_cuda_compiler(BASE, {}) == "nvcc"


@pytest.mark.parametrize(
    "variant, targets, bad",
    [
        ("cuda", ["86", "86-real", "90-virtual", "120a-real", "100f", "native", "all", "all-major"], []),
        ("cuda", ["gfx1100", "sm_86", "8.6"], ["gfx1100", "sm_86", "8.6"]),
        ("hip", ["gfx1100", "gfx90a", "gfx942"], []),
        ("hip", ["86", "gfx1100:xnack-"], ["86", "gfx1100:xnack-"]),
    ],
)
def test_gpu_targets_must_be_the_variants(variant, targets, bad):
    assert rules.llamacpp_gpu_targets_invalid(targets, variant) == bad


def test_the_last_cmake_define_wins_as_in_cmake():
    args = ["-DGGML_NATIVE=OFF", "-DGGML_CUDA=ON", "-DGGML_NATIVE:BOOL=ON"]
    assert rules.llamacpp_cmake_define(args, "GGML_NATIVE") == "ON"
    assert rules.llamacpp_cmake_define(args, "GGML_VULKAN", "OFF") == "OFF"


# ------------------------------------------------------------------------------------- HIP


def test_debian_12s_hip_5_2_is_refused_naming_host_file_and_the_cmake_line():
    assert rules.cmake_package_version(HIP_52) == "5.2.0"
    file = "/usr/lib/x86_64-linux-gnu/cmake/hip/hip-config-version.cmake"
    (problem,) = rules.llamacpp_hip_problems(HIP_52, "amd1", file)
    assert problem.startswith(
        "amd1: llamacpp_server_variant is hip, and llama.cpp 0c1e570 needs ROCm/HIP 6.1 or later "
        "(ggml/src/ggml-hip/CMakeLists.txt:54-56), but " + file + " says HIP 5.2.0."
    )
    assert "ROCM_PATH in llamacpp_server_build_environment" in problem


def test_hip_6_1_and_later_pass():
    # Debian 12's version file with only its version changed, as ROCm 6.1's and 6.4's would say it.
    for version in ("6.1.40091", "6.4.0", "7.0.1"):
        text = HIP_52.replace('"5.2.0"', f'"{version}"')
        assert (
            rules.llamacpp_hip_problems(text, "amd1", "/opt/rocm/lib/cmake/hip/hip-config-version.cmake")
            == []
        )
    assert rules.llamacpp_hip_problems(HIP_52.replace('"5.2.0"', '"6.0.2"'), "amd1", "/x") != []


def test_no_hip_at_all_is_refused():
    (problem,) = rules.llamacpp_hip_problems("", "amd1", "")
    assert "but CMake's find_package(hip) would find no hip-config-version.cmake" in problem


def test_rocm_path_is_chosen_as_the_hip_cmake_lists_choose_it():
    # ggml/src/ggml-hip/CMakeLists.txt:1-9: $ROCM_PATH if it exists, else /opt/rocm if it exists, else /usr.
    assert rules.hip_version_files("/srv/rocm-6.4", ["/srv/rocm-6.4", "/opt/rocm"])[0] == (
        "/srv/rocm-6.4/lib/cmake/hip/hip-config-version.cmake"
    )
    assert rules.hip_version_files("/srv/missing", ["/opt/rocm"])[0] == (
        "/opt/rocm/lib/cmake/hip/hip-config-version.cmake"
    )
    files = rules.hip_version_files("", [])
    assert files[0] == "/usr/lib/cmake/hip/hip-config-version.cmake"
    assert "/usr/lib/x86_64-linux-gnu/cmake/hip/hip-config-version.cmake" in files  # Debian's


# ---------------------------------------------------------------------------------- Vulkan


def test_debian_12s_vulkan_headers_1_3_239_are_refused_naming_host_variables_and_version():
    assert rules.vulkan_header_version(VULKAN_239) == (1, 3, 239)
    header = "/usr/include/vulkan/vulkan_core.h"
    (problem,) = rules.llamacpp_vulkan_problems(VULKAN_239, "igpu1", header)
    assert problem.startswith(
        "igpu1: llamacpp_server_variant vulkan with llamacpp_server_install source needs the Vulkan "
        "headers 1.3.272 or later (llama.cpp 0c1e570's ggml/src/ggml-vulkan/ggml-vulkan.cpp:5214-5224 "
        "uses VK_EXT_layer_settings), but /usr/include/vulkan/vulkan_core.h is 1.3.239"
    )
    assert "-DVulkan_INCLUDE_DIR=" in problem and "llamacpp_server_install: archive" in problem


def test_debian_13s_vulkan_headers_1_4_309_pass_and_272_is_the_first_that_does():
    assert rules.vulkan_header_version(VULKAN_309) == (1, 4, 309)
    assert rules.llamacpp_vulkan_problems(VULKAN_309, "igpu1", "/x") == []
    assert rules.llamacpp_vulkan_problems(VULKAN_239.replace(" 239", " 272"), "igpu1", "/x") == []
    assert rules.llamacpp_vulkan_problems(VULKAN_239.replace(" 239", " 271"), "igpu1", "/x") != []


def test_missing_vulkan_headers_are_refused():
    (problem,) = rules.llamacpp_vulkan_problems("", "igpu1", "/usr/include/vulkan/vulkan_core.h")
    assert "but /usr/include/vulkan/vulkan_core.h was not found" in problem


def test_the_headers_are_read_where_findvulkan_takes_them():
    assert rules.llamacpp_vulkan_include_dir(
        ["-DVulkan_INCLUDE_DIR=/opt/vk/include/"], {"VULKAN_SDK": "/sdk"}
    ) == ("/opt/vk/include")
    assert rules.llamacpp_vulkan_include_dir([], {"VULKAN_SDK": "/sdk/x86_64"}) == "/sdk/x86_64/include"
    assert rules.llamacpp_vulkan_include_dir([], {}) == "/usr/include"


def test_the_filters_are_registered():
    names = rules.FilterModule().filters()
    for name in (
        "llamacpp_gpu_targets_invalid",
        "llamacpp_cuda_compiler",
        "llamacpp_cuda_problems",
        "llamacpp_hip_version_files",
        "llamacpp_hip_problems",
        "llamacpp_vulkan_include_dir",
        "llamacpp_vulkan_problems",
    ):
        assert callable(names[name])
