"""The `make test` timing summary (tests/lib/test_times.py) counts wall time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("test_times", ROOT / "tests" / "lib" / "test_times.py")
test_times = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(test_times)


def write(tmp_path, rows):
    path = tmp_path / "times.tsv"
    path.write_text("".join("\t".join(str(f) for f in row) + "\n" for row in rows))
    return str(path)


def test_steps_run_one_after_another_total_their_sum(tmp_path):
    steps = test_times.read(
        write(tmp_path, [("tier: lint", "-", 40, 0, 1000), ("tier: unit", "-", 60, 0, 1040)])
    )
    lines = test_times.table(steps)
    assert lines[-1] == "| **total** | | **1:40** | |"
    assert not any("sum of the steps" in line for line in lines)


def test_steps_side_by_side_count_once(tmp_path):
    rows = [
        ("artifact: lab images", "cold", 120, 0, 1000),
        ("artifact: llama-server", "cold", 400, 0, 1000),
        ("artifact: VM base disk", "cold", 100, 0, 1001),
        ("tier: unit", "-", 60, 0, 1400),
    ]
    lines = test_times.table(test_times.read(write(tmp_path, rows)))
    assert "| sum of the steps | | 11:20 | |" in lines
    assert lines[-1] == "| **total** | | **7:40** | |"


def test_rows_without_a_start_fall_back_to_the_sum(tmp_path):
    steps = test_times.read(write(tmp_path, [("tier: lint", "-", 40, 0), ("tier: unit", "-", 60, 1)]))
    lines = test_times.table(steps)
    assert lines[-1] == "| **total** | | **1:40** | |"
    assert "| tier: unit | - | 1:00 | failed |" in lines


def test_results_keep_the_other_kind_of_run(tmp_path):
    results = tmp_path / "test-times.md"
    test_times.update(str(results), "Cold", ["cold body"])
    test_times.update(str(results), "Warm", ["warm body"])
    test_times.update(str(results), "Cold", ["new cold body"])
    text = results.read_text()
    assert "new cold body" in text and "warm body" in text and "\ncold body" not in text
