"""The lab the integration tests run against: started and converged once per session."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from lab import REPO, lab_hosts, run_playbook  # noqa: E402

TIMINGS: dict = {}


@pytest.fixture(scope="session")
def lab():
    """Start the lab hosts and converge site.yml; returns {'hosts', 'first'}."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (systemd containers)")
    up = run_playbook("playbooks/lab_up.yml", inventory=str(REPO / "inventory" / "lab"))
    assert up.rc == 0, up.failure_messages() or up.stdout[-3000:]
    start = time.monotonic()
    first = run_playbook("site.yml")
    TIMINGS["first_converge_s"] = time.monotonic() - start
    assert first.rc == 0, first.failure_messages() or first.stdout[-3000:]
    return {"hosts": lab_hosts(), "first": first}
