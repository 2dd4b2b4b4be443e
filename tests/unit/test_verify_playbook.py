"""playbooks/verify.yml end to end against localhost (connection local).

Four hosts in one run, each with one thing wrong that this machine can show, or none:
- `plaindir` runs models from a store path that is a plain directory, not a mount;
- `refused` has a serving plan the planner refuses (its model file does not exist);
- `nouveau` has an NVIDIA card (a fake sysfs tree) bound to nouveau while the nvidia
  module is installed for the running kernel;
- `gpuok` has its card bound to the nvidia driver.
The report must name each problem on its host, none on `gpuok`, and the run must fail.
"""

import json
import os
import subprocess
import sys

import pytest
from gpu_fakes import NVIDIA_PROC_VERSION, add_pci, write

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

pytestmark = pytest.mark.skipif(
    not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python"
)

# A stand-in for modinfo(8) from kmod, which reads the real kernel's module tree: it
# speaks the form the playbook uses, `modinfo -k KERNEL -F version MODULE`, printing the
# version of the NVIDIA module it holds, and for any other module what modinfo prints
# and its exit status 1.
MODINFO_STANDIN = """\
#!/bin/sh
# Stand-in for modinfo(8): `modinfo -k KERNEL -F version MODULE`.
for module; do :; done
case "$module" in
  nvidia-current|nvidia) echo 550.54.14 ;;
  *) echo "modinfo: ERROR: Module $module not found." >&2; exit 1 ;;
esac
"""


def fake_nvidia(root, driver):
    add_pci(str(root), "0000:01:00.0", "0x10de", "0x2684", driver=driver)
    if driver == "nvidia":
        write(os.path.join(str(root), "proc", "driver", "nvidia", "version"), NVIDIA_PROC_VERSION)
    return str(root)


@pytest.fixture(scope="module")
def verify_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    (tmp / "models").mkdir()
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "modinfo").write_text(MODINFO_STANDIN)
    (bin_dir / "modinfo").chmod(0o755)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    refused = {"name": "coder", "backend": "textgen", "model": "nope.gguf", "port": 7861, "api_port": 5010}
    inventory = {
        "all": {
            "vars": {
                "model_store": {
                    "server": "storehost",
                    "path": "/srv/models",
                    "mount_path": str(tmp / "models"),
                }
            },
            "children": {
                "model_hosts": {
                    "hosts": {
                        "plaindir": dict(local, gpu_vendor="none"),
                        "refused": dict(local, gpu_vendor="none", model_instances=[refused]),
                    }
                },
                "others": {
                    "hosts": {
                        "nouveau": dict(local, verify_sysfs_root=fake_nvidia(tmp / "sys-nouveau", "nouveau")),
                        "gpuok": dict(local, verify_sysfs_root=fake_nvidia(tmp / "sys-ok", "nvidia")),
                    }
                },
            },
        }
    }
    (tmp / "hosts.yml").write_text(json.dumps(inventory))  # JSON is YAML
    proc = subprocess.run(
        [
            PLAYBOOK_BIN,
            "-i",
            str(tmp / "hosts.yml"),
            "playbooks/verify.yml",
            "-e",
            f"verify_report_dir={tmp / 'reports'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(
            os.environ,
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCALHOST_WARNING="false",
        ),
    )
    return proc, (tmp / "reports" / "health.md").read_text(), (tmp / "reports" / "health.html").read_text()


def problems(markdown):
    return markdown.split("## Problems", 1)[1] if "## Problems" in markdown else ""


def test_the_run_fails_and_writes_both_reports_with_every_host(verify_run):
    proc, markdown, html = verify_run
    assert proc.returncode != 0, proc.stdout
    for host in ("plaindir", "refused", "nouveau", "gpuok"):
        assert f"## {host}" in markdown and f"<h2>{host}</h2>" in html


def test_a_directory_that_is_no_mount_is_not_mounted(verify_run):
    _, markdown, _ = verify_run
    assert "plaindir: the model store " in problems(markdown)
    assert "is not mounted: nothing is mounted on " in problems(markdown)


def test_a_refused_plan_keeps_the_host_in_the_report_with_the_reason(verify_run):
    _, markdown, html = verify_run
    assert "- **Serving plan refused**: refused/coder: model: " in markdown
    assert "| coder | textgen |" in markdown and "NO: plan refused: refused/coder: model: " in markdown
    assert "refused: serving plan refused: refused/coder: model: " in problems(markdown)
    assert "Serving plan refused: refused/coder: model:" in html


def test_a_card_on_nouveau_with_the_module_installed_is_a_pending_reboot(verify_run):
    _, markdown, _ = verify_run
    assert "driver **reboot-pending**: the nvidia 550.54.14 module is installed for kernel" in markdown
    assert "nouveau: GPU driver reboot-pending: " in problems(markdown)


def test_a_card_bound_to_its_driver_is_healthy(verify_run):
    _, markdown, _ = verify_run
    assert "driver loaded: nvidia 550.54.14 loaded" in markdown
    assert "gpuok" not in problems(markdown)
