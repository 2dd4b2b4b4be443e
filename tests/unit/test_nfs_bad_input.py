"""Bad inventory input for nfs_server, nfs_client and model_store fails early and clearly.

One ansible-playbook run (local connection, --check) over an inventory whose hosts
each carry one bad input: every host must fail in the role's argument spec or its
first checks, with a message naming the variable and the host, and nothing may be
reported changed.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(__file__), "nfs_bad_input", "playbook.yml")
SHA = "0" * 64
STORE = {
    "server": "localcloud",
    "path": "/media/data/models",
    "mount_path": "/media/data/models",
    "clients": [],
}

# host: (group, host vars, expected message fragment)
CASES = {
    "srv-empty-path": (
        "servers",
        {"nfs_server_exports": [{"path": "", "clients": ["localcloud"]}]},
        "nfs_server_exports[0].path is empty",
    ),
    "srv-relative-path": (
        "servers",
        {"nfs_server_exports": [{"path": "srv/models", "clients": ["localcloud"]}]},
        "nfs_server_exports[0].path 'srv/models' is relative",
    ),
    "srv-store-path-empty": (
        "servers",
        {"model_store": {"server": "srv-store-path-empty", "path": "", "clients": []}},
        "model_store.path is empty",
    ),
    "srv-unknown-client": (
        "servers",
        {"nfs_server_exports": [{"path": "/srv/m", "clients": ["no-such-host"]}]},
        "client 'no-such-host' is neither an inventory host nor an IP address/network",
    ),
    "srv-world-star": (
        "servers",
        {"nfs_server_exports": [{"path": "/srv/m", "clients": ["*"]}]},
        "set nfs_server_allow_world: true",
    ),
    "srv-world-net": (
        "servers",
        {"nfs_server_extra_exports": [{"path": "/srv/m", "writers": ["0.0.0.0/0"]}]},
        "nfs_server_extra_exports[0].writers: client '0.0.0.0/0' opens the export to the world",
    ),
    "srv-bad-implementation": ("servers", {"nfs_server_implementation": "nfsd"}, "nfs_server_implementation"),
    "cli-no-export": (
        "clients",
        {"nfs_client_mounts": [{"server": "localcloud", "export": "/nope", "path": "/mnt/x"}]},
        "nfs_client_mounts[0]: no export '/nope' on localcloud",
    ),
    # localcloud exports only /srv/elsewhere (below), so the model store mount has no export.
    "cli-store-not-exported": (
        "clients",
        {},
        "nfs_client_mounts[0]: no export '/media/data/models' on localcloud",
    ),
    "cli-relative-mount": (
        "clients",
        {
            "nfs_client_mounts": [
                {"server": "localcloud", "export": "/media/data/models", "path": "mnt/models"}
            ]
        },
        "nfs_client_mounts[0].path 'mnt/models' must be an absolute path",
    ),
    "store-url-no-checksum": (
        "stores",
        {"model_store_models": [{"name": "a.gguf", "url": "http://127.0.0.1:9/a.gguf"}]},
        "model_store_models[0] (a.gguf) has a url but no checksum",
    ),
    "store-md5": (
        "stores",
        {
            "model_store_models": [
                {"name": "a.gguf", "url": "http://127.0.0.1:9/a.gguf", "checksum": "md5:" + "0" * 32}
            ]
        },
        "checksum algorithm 'md5' is not accepted (use one of sha256, sha512)",
    ),
    "store-relative-path": (
        "stores",
        {"model_store_path": "models"},
        'model_store_path (model_store.path) "models" must be an absolute path',
    ),
    "store-name-escapes": (
        "stores",
        {"model_store_models": [{"name": "../etc/x", "src": "/tmp/x", "checksum": f"sha256:{SHA}"}]},
        "must be a path relative to the store, inside it",
    ),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    if not shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)):
        pytest.skip("ansible-playbook is not installed next to this Python")
    tmp = tmp_path_factory.mktemp("nfs_bad_input")
    roles = {"servers": "nfs_server", "clients": "nfs_client", "stores": "model_store"}
    hosts = {
        "localcloud": {
            "ansible_connection": "local",
            "nfs_server_exports": [{"path": "/srv/elsewhere", "clients": ["cli-store-not-exported"]}],
        }
    }
    for host, (group, hostvars, _) in CASES.items():
        hosts[host] = dict(
            hostvars,
            bad_input_role=roles[group],
            ansible_connection="local",
            ansible_python_interpreter=sys.executable,
        )
    inventory = {"all": {"vars": {"model_store": STORE}, "hosts": hosts}}
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",  # not profile_tasks: stdout must be JSON only
        ANSIBLE_LOCAL_TEMP=str(tmp / "tmp"),
        ANSIBLE_CACHE_PLUGIN="memory",
        ANSIBLE_HOST_KEY_CHECKING="False",
    )
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            str(tmp / "hosts.yml"),
            "--check",
            PLAYBOOK,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout[proc.stdout.index("{") :])


def _failures(report):
    """host -> (task name, message) of its failure."""
    out = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed"):
                    out[host] = (task["task"]["name"], result.get("msg", ""))
    return out


def test_the_run_fails(run):
    rc, _ = run
    assert rc == 2


@pytest.mark.parametrize("host", sorted(CASES))
def test_bad_input_fails_in_the_checks_with_a_clear_message(run, host):
    _, report = run
    failures = _failures(report)
    assert host in failures, f"{host} did not fail"
    task, message = failures[host]
    expected = CASES[host][2]
    assert expected in message, message
    task = task.split(" : ", 1)[-1]
    assert task.startswith(("Check the", "Validating arguments against arg spec")), task
    if task.startswith("Check the"):
        assert f"on {host}:" in message, message


def test_nothing_changed(run):
    _, report = run
    assert all(stats["changed"] == 0 for stats in report["stats"].values()), report["stats"]
