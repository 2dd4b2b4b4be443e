"""The llama-server option table: generated from the pinned build's --help, and true to it."""

import glob
import os
import subprocess
import sys
import tarfile

import pytest
from ansible.module_utils import llama_server_options as lso

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gen_llama_server_options as gen  # noqa: E402

HELP = glob.glob(os.path.join(ROOT, "tools", "data", "llama-server-help-*.txt"))[0]
CACHE = os.environ.get("AILAB_CACHE", "/var/cache/ailab")
ARCHIVE = os.path.join(CACHE, "llama-server", f"llama-{lso.LLAMA_SERVER_TAG}-bin-ubuntu-x64.tar.gz")


def test_generated_table_is_current():
    assert gen.main(["--check"]) == 0, "run tools/gen_llama_server_options.py"


def test_tag_is_the_roles_pin():
    with open(os.path.join(ROOT, "roles", "llamacpp_server", "defaults", "main.yml")) as fh:
        assert f'llamacpp_server_version: "{lso.LLAMA_SERVER_TAG}"' in fh.read()


@pytest.mark.parametrize(
    "line, names, value",
    [
        # Lines as common/arg.cpp prints them (tools/data/llama-server-help-*.txt).
        (
            "-c,    --ctx-size N                     size of the prompt context",
            ["-c", "--ctx-size"],
            "required",
        ),
        (
            "--metrics                               enable prometheus compatible metrics endpoint",
            ["--metrics"],
            "none",
        ),
        (
            "-fa,   --flash-attn [on|off|auto]       set Flash Attention use",
            ["-fa", "--flash-attn"],
            "optional",
        ),
        ("-fitt, --fit-target MiB0,MiB1,MiB2,...", ["-fitt", "--fit-target"], "required"),
        (
            "-ngl,  --gpu-layers, --n-gpu-layers N   max. number of layers to store in VRAM",
            ["-ngl", "--gpu-layers", "--n-gpu-layers"],
            "required",
        ),
        (
            "--mmproj-auto, --no-mmproj, --no-mmproj-auto",
            ["--mmproj-auto", "--no-mmproj", "--no-mmproj-auto"],
            "none",
        ),
        ("-sm,   --split-mode {none,layer,row,tensor}", ["-sm", "--split-mode"], "required"),
    ],
)
def test_help_lines_parse_to_names_and_value(line, names, value):
    assert gen.parse_help(line) == [{"names": names, "value": value}]


def test_description_lines_are_not_options():
    assert (
        gen.parse_help("                                        --no-mmproj\n----- common params -----") == []
    )


def test_every_spelling_points_at_its_option():
    for spelling in ("-c", "--ctx-size"):
        assert lso.OPTIONS[spelling]["names"] == ["-c", "--ctx-size"]
    for needed in (
        "--host",
        "--port",
        "--model",
        "--alias",
        "--embedding",
        "--api-key-file",
        "--parallel",
        "--device",
    ):
        assert needed in lso.OPTIONS, needed


@pytest.mark.skipif(not os.path.exists(ARCHIVE), reason="llama-server archive not built (make artifacts)")
def test_committed_help_is_the_built_servers_help(tmp_path):
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    binary = tmp_path / f"llama-{lso.LLAMA_SERVER_TAG}" / "llama-server"
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True, timeout=60)
    with open(HELP, encoding="utf-8") as fh:
        assert out.stdout + out.stderr == fh.read()
