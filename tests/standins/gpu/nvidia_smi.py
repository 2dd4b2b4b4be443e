#!/usr/bin/env python3
"""Stand-in for NVIDIA's ``nvidia-smi`` (tests only): prints what the real one printed.

Every byte it prints comes from a real capture of ``nvidia-smi`` on an H100 with driver
590.48.01 (tests/unit/gpu_samples/nvidia-smi-capture-h100-80gb-hbm3-590.48.01.txt, source
in its SOURCES.md), which ``gpu_sim.py`` copies into the simulated host's tree. What it
models, each from the real program:

- the driver must be loaded: without ``<root>/proc/driver/nvidia/version`` (the nvidia
  module's file) it prints the real "NVIDIA-SMI has failed because it couldn't communicate
  with the NVIDIA driver" line and exits 9 ("NVIDIA driver is not loaded", RETURN VALUE in
  nvidia-smi(1));
- ``nvidia-smi`` alone: the captured default table; ``-L``; ``--version``;
- ``--query-gpu=FIELDS --format=csv[,noheader][,nounits]``: the columns of the captured
  query row, by field name or its alias (the ``"name" or "gpu_name"`` lines of the
  captured ``--help-query-gpu``); ``--query-compute-apps=FIELDS`` likewise from the
  captured idle process list (no process: the header alone, or nothing with noheader); ``nounits`` drops the unit from each value whose header
  names one (``81559 MiB`` -> ``81559``) and keeps the header as it is (Quake4/MindMiner
  issue 627 shows such a header); a field the real one does not know gets its message,
  ``Field "x" is not a valid field to query.`` and a blank line on stdout, exit 2
  (CoHDI/composable-resource-operator issue 37).

Anything else exits 2 naming itself a stand-in: it never pretends to answer what it has no
capture of. The simulated root is baked in by gpu_sim.py (``@ROOT@``), or comes from
``AILAB_GPU_SIM_ROOT``.
"""

import os
import re
import sys

ROOT = os.environ.get("AILAB_GPU_SIM_ROOT") or "@ROOT@"
CAPTURE = "usr/share/ailab-gpu-standin/nvidia-smi-capture.txt"
BAR = "#" * 80
NOT_LOADED = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)


def sections(text):
    """{label: body} from the capture: each section is a bar, ``# label``, ``# $ command``,
    a bar, then the command's output, then two blank lines before the next bar (and a
    ``# (exit code: N)`` line first when the command failed)."""
    pattern = re.compile(
        r"\n"
        + BAR
        + r"\n# (?P<label>[^\n]*)\n# \$ [^\n]*\n"
        + BAR
        + r"\n(?P<body>.*?)(?=\n\n"
        + BAR
        + r"|\Z)",
        re.DOTALL,
    )
    found = {}
    for match in pattern.finditer(text):
        body = re.sub(r"\n# \(exit code: \d+\)\n$", "\n", match.group("body"))
        found[match.group("label").strip()] = body
    return found


def field_aliases(help_text):
    """alias -> canonical field name, from the ``"a" or "b"`` lines of --help-query-gpu."""
    aliases = {}
    for line in help_text.splitlines():
        names = re.findall(r'"([^"]+)"', line) if line.startswith('"') else []
        for name in names:
            aliases[name] = names[0]
    return aliases


def query_table(body):
    """(columns, rows) of the captured CSV: columns are (name, unit or None)."""
    lines = [line for line in body.splitlines() if line.strip()]
    columns = []
    for cell in lines[0].split(", "):
        match = re.match(r"^(.*?) \[(.+)\]$", cell)
        columns.append((match.group(1), match.group(2)) if match else (cell, None))
    rows = [line.split(", ") for line in lines[1:]]
    for row in rows:
        if len(row) != len(columns):
            raise SystemExit("nvidia-smi stand-in: the captured query row does not split into its columns")
    return lines[0].split(", "), columns, rows


def fail(message, code=2):
    sys.stdout.write(message)
    sys.exit(code)


QUERIES = {
    # option: (the section with its field list, the section with the captured rows)
    "--query-gpu": ("capabilities :: help-query-gpu", "idle :: query-gpu (csv, what the exporter parses)"),
    "--query-compute-apps": (
        "capabilities :: help-query-compute-apps",
        "idle :: query-compute-apps (per-process)",
    ),
}


class Refused(Exception):
    """What the real nvidia-smi prints on stdout for a query it refuses, and its exit code."""

    def __init__(self, text, code=2):
        super().__init__(text)
        self.text, self.code = text, code


def answer(capture, kind, fields, formats, rows_section=None):
    """The text of ``nvidia-smi KIND=FIELDS --format=FORMATS`` from the capture's rows
    (``rows_section``: another captured section of that query, e.g. the one under load)."""
    if "csv" not in formats or set(formats) - {"csv", "noheader", "nounits"}:
        raise Refused("nvidia-smi stand-in: only --format=csv[,noheader][,nounits] is modelled\n")
    help_section, default_rows = QUERIES[kind]
    aliases = field_aliases(capture[help_section])
    headers, columns, rows = query_table(capture[rows_section or default_rows])
    index = {name: i for i, (name, _unit) in enumerate(columns)}
    picked = []
    for field in fields:
        name = aliases.get(field.strip())
        if name is None or name not in index:
            raise Refused(f'Field "{field.strip()}" is not a valid field to query.\n\n')
        picked.append(index[name])
    out = [", ".join(headers[i] for i in picked)] if "noheader" not in formats else []
    for row in rows:
        cells = []
        for i in picked:
            value, unit = row[i], columns[i][1]
            if "nounits" in formats and unit and value.endswith(" " + unit):
                value = value[: -len(unit) - 1]
            cells.append(value)
        out.append(", ".join(cells))
    return "".join(line + "\n" for line in out)


def query(capture, args):
    fields, formats, kind = None, [], None
    for arg in args:
        option = arg.split("=", 1)[0]
        if option in QUERIES and "=" in arg:
            kind = option
            fields = arg.split("=", 1)[1].split(",")
        elif arg.startswith("--format="):
            formats = arg.split("=", 1)[1].split(",")
        else:
            fail(f"nvidia-smi stand-in: {arg} is not modelled\n")
    try:
        sys.stdout.write(answer(capture, kind, fields, formats))
    except Refused as refused:
        fail(refused.text, refused.code)


def main(argv):
    with open(os.path.join(ROOT, CAPTURE), encoding="utf-8", newline="") as fh:
        capture = sections(fh.read())
    if not os.path.exists(os.path.join(ROOT, "proc/driver/nvidia/version")):
        fail(NOT_LOADED, 9)
    if not argv:
        sys.stdout.write(capture["idle :: nvidia-smi (default table)"])
    elif argv in (["-L"], ["--list-gpus"]):
        sys.stdout.write(capture["capabilities :: list (-L)"])
    elif argv == ["--version"]:
        sys.stdout.write(capture["capabilities :: version"])
    elif any(a.split("=", 1)[0] in QUERIES for a in argv):
        query(capture, argv)
    else:
        fail("nvidia-smi stand-in: {} is not modelled\n".format(" ".join(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
