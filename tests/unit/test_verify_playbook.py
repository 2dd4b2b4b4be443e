"""playbooks/verify.yml end to end against localhost (connection local).

Five hosts in one run, each with one thing wrong that this machine can show, or none:
- `plaindir` runs models from a store path that is a plain directory, not a mount;
- `refused` has a serving plan the planner refuses (its model file does not exist);
- `nouveau` is a simulated H100 host (tests/standins/gpu/gpu_sim.py: the sysfs and proc
  files, the nvidia-smi stand-in printing a real capture) whose card is still bound to
  nouveau while the nvidia module is installed for the running kernel;
- `fresh` is the same card on a host that runs a model and has no gpu_vram_mib: the
  planner must refuse it, asking for gpu_vram_mib, not plan it for the CPU;
- `gpuok` has its card bound to the nvidia driver, the module loaded.
gpu_facts reads each simulated tree and runs its stand-in through the real module.
The report must name each problem on its host, none on `gpuok`, and the run must fail.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "standins", "gpu"))
import gpu_sim  # noqa: E402

PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

pytestmark = pytest.mark.skipif(
    not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python"
)

# A stand-in for modinfo(8) from kmod, which reads the real kernel's module tree: it
# speaks the form the playbook uses, `modinfo -k KERNEL -F version MODULE`, printing the
# version of the NVIDIA module it holds (the simulated driver's, 590.48.01), and for any
# other module what modinfo prints and its exit status 1.
MODINFO_STANDIN = """\
#!/bin/sh
# Stand-in for modinfo(8): `modinfo -k KERNEL -F version MODULE`.
for module; do :; done
case "$module" in
  nvidia-current|nvidia) echo 590.48.01 ;;
  *) echo "modinfo: ERROR: Module $module not found." >&2; exit 1 ;;
esac
"""


def simulated(root, state):
    gpu_sim.build(str(root), state)
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
                        "fresh": dict(
                            local,
                            gpu_sysfs_root=simulated(tmp / "sys-fresh", "nvidia-nouveau"),
                            model_instances=[dict(refused, name="chat", model="chat.gguf")],
                        ),
                    }
                },
                "others": {
                    "hosts": {
                        "nouveau": dict(
                            local, gpu_sysfs_root=simulated(tmp / "sys-nouveau", "nvidia-nouveau")
                        ),
                        "gpuok": dict(local, gpu_sysfs_root=simulated(tmp / "sys-ok", "nvidia-loaded")),
                    }
                },
            },
        }
    }
    (tmp / "hosts.yml").write_text(json.dumps(inventory))  # JSON is YAML
    proc = run_verify(tmp, bin_dir, "reports")
    return (
        proc,
        (tmp / "reports" / "health.md").read_text(),
        (tmp / "reports" / "health.html").read_text(),
        tmp,
    )


def run_verify(tmp, bin_dir, reports, *args):
    return subprocess.run(
        [
            PLAYBOOK_BIN,
            "-i",
            str(tmp / "hosts.yml"),
            "playbooks/verify.yml",
            "-e",
            f"verify_report_dir={tmp / reports}",
            *args,
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


def host_section(markdown, host):
    return markdown.split(f"## {host}\n", 1)[1].split("\n## ", 1)[0]


def problems(markdown):
    return markdown.split("## Problems", 1)[1] if "## Problems" in markdown else ""


def test_the_run_fails_and_writes_both_reports_with_every_host(verify_run):
    proc, markdown, html, _ = verify_run
    assert proc.returncode != 0, proc.stdout
    for host in ("plaindir", "refused", "nouveau", "fresh", "gpuok"):
        assert f"## {host}" in markdown and f"<h2>{host}</h2>" in html


def test_a_directory_that_is_no_mount_is_not_mounted(verify_run):
    _, markdown, _, _ = verify_run
    assert "plaindir: the model store " in problems(markdown)
    assert "is not mounted: nothing is mounted on " in problems(markdown)


def test_a_refused_plan_keeps_the_host_in_the_report_with_the_reason(verify_run):
    _, markdown, html, _ = verify_run
    assert "- **Serving plan refused**: refused/coder: model: " in markdown
    assert "| coder | textgen |" in markdown and "NO: plan refused: refused/coder: model: " in markdown
    assert "refused: serving plan refused: refused/coder: model: " in problems(markdown)
    assert "Serving plan refused: refused/coder: model:" in html


def test_a_card_on_nouveau_with_the_module_installed_is_a_pending_reboot(verify_run):
    _, markdown, _, _ = verify_run
    section = host_section(markdown, "nouveau")
    assert "driver **reboot-pending**: the nvidia 590.48.01 module is installed for kernel" in section
    assert "(0000:00:09.0 bound to nouveau): reboot the host" in section
    assert "nouveau: GPU driver reboot-pending: " in problems(markdown)


def test_a_fresh_gpu_host_is_refused_asking_for_its_memory_not_planned_for_the_cpu(verify_run):
    _, markdown, _, _ = verify_run
    section = host_section(markdown, "fresh")
    assert "NVIDIA H100 80GB HBM3" not in section  # no name without the driver: nvidia-smi failed
    assert (
        "the NVIDIA GPU (NVIDIA device 0x2330 at 0000:00:09.0 (driver: nouveau)) has no memory size yet"
        in section
    )
    assert "set gpu_vram_mib for this host" in section
    assert "| chat | textgen |" in section and "| cpu |" not in section
    assert "fresh: serving plan refused: fresh/" in problems(markdown)


def test_a_card_bound_to_its_driver_is_healthy_with_the_memory_nvidia_smi_reports(verify_run):
    _, markdown, _, _ = verify_run
    section = host_section(markdown, "gpuok")
    assert "GPU: nvidia, 81559 MiB VRAM" in section
    assert "driver loaded: nvidia 590.48.01 loaded" in section
    assert "gpuok" not in problems(markdown)


def test_one_host_under_limit_gets_its_report_and_its_verdict(verify_run):
    """`verify.yml --limit HOST` (the README's form): the report is written for that host
    alone and an unhealthy host still fails the run."""
    tmp = verify_run[3]
    proc = run_verify(tmp, tmp / "bin", "limited", "--limit", "nouveau")
    assert proc.returncode != 0, proc.stdout[-2000:]
    markdown = (tmp / "limited" / "health.md").read_text()
    assert "## nouveau" in markdown and "## gpuok" not in markdown
    assert "nouveau: GPU driver reboot-pending: " in problems(markdown)
    healthy = run_verify(tmp, tmp / "bin", "limited-ok", "--limit", "gpuok")
    assert healthy.returncode == 0, healthy.stdout[-2000:]
    assert "## gpuok" in (tmp / "limited-ok" / "health.md").read_text()
