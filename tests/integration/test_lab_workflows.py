"""The user's workflows on the lab: converge, rerun, check, add, remove, interrupt, rebuild.

The tests run in file order and each leaves the lab converged and healthy.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import hashlib
import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import ansible_mitogen.strategy
import certifi
import httpx2 as httpx  # the openai client's own HTTP library
import openai
import pytest
import yaml
from lab import REPO, VENV_BIN, host_exec, run_playbook, snapshot, write_overlay_inventory

pytestmark = pytest.mark.usefixtures("lab")


def main_pids(container: str) -> dict:
    """unit -> MainPID of every model instance unit on a host."""
    out = host_exec(
        container,
        "sh",
        "-c",
        "for u in $(systemctl list-units --plain --no-legend 'textgen-*' 'ollama-*' 'llamacpp-*' | awk '{print $1}');"
        ' do echo "$u $(systemctl show -p MainPID --value $u)"; done',
    ).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def assert_removed_alone(container: str, before: dict, unit: str, port: int) -> None:
    """``unit`` is stopped, its file gone, its port free; every other instance kept its PID."""
    after = main_pids(container)
    assert unit not in after
    assert host_exec(container, "test", "-e", f"/etc/systemd/system/{unit}", check=False).returncode != 0
    assert f":{port} " not in host_exec(container, "ss", "-Htln").stdout
    for other, pid in before.items():
        if other != unit:
            assert after.get(other) == pid, f"{other} was restarted"


# apt on every lab host reaches its mirrors through a closed local port, and its lists
# are three days old: what a rerun meets on a host whose mirror is down, a day later.
OFFLINE_APT = "/etc/apt/apt.conf.d/99ailab-test-offline"
OFFLINE_APT_CONF = (
    'Acquire::http::Proxy "http://127.0.0.1:9/";\nAcquire::https::Proxy "http://127.0.0.1:9/";\n'
)


def apt_offline(containers, offline: bool) -> None:
    for container in containers:
        if offline:
            script = (
                f"printf '{OFFLINE_APT_CONF}' > {OFFLINE_APT} && "
                "touch -d '3 days ago' /var/lib/apt/lists && "
                "if [ -e /var/lib/apt/periodic/update-success-stamp ]; then "
                "touch -d '3 days ago' /var/lib/apt/periodic/update-success-stamp; fi"
            )
        else:
            script = f"rm -f {OFFLINE_APT}"
        host_exec(container, "sh", "-c", script)


LOCALCLOUD = yaml.safe_load((REPO / "inventory" / "lab" / "host_vars" / "localcloud.yml").read_text())
HUB_LOG = LOCALCLOUD["lab_hub"]["log"]


def hub_requests(container: str) -> list:
    """Every request the lab's Hub stand-in and its CDN answered so far, one line each (its --log)."""
    return host_exec(container, "cat", HUB_LOG).stdout.splitlines()


@pytest.fixture(scope="module")
def converged_runs(lab):
    """The runs a user makes on a converged lab, started side by side: verify, a second
    converge, the same with the optional Mitogen strategy, a check-mode run with diff,
    the plan preview.

    Only the two converges could change a host, and they must not: while they change
    nothing, the others see exactly the converged lab; if one changes something, its own
    test fails with the changed tasks.

    They run with apt's mirrors unreachable and its lists three days old (apt_offline):
    a converged host must rerun without refreshing its package lists.

    ``hub_requests``: the lines the Hub stand-in logged while they ran (read before the
    first starts and after the last ends): a converged store asks the Hub nothing.
    """
    runs = {
        "verify": ("playbooks/verify.yml", {}),
        "second": ("site.yml", {}),
        "mitogen": ("site.yml", {"envvars": {"ANSIBLE_STRATEGY": "mitogen_linear"}}),
        "check": ("site.yml", {"check": True, "diff": True}),
        "plan": ("playbooks/plan.yml", {}),
    }
    containers = lab["hosts"].values()
    store = lab["hosts"]["localcloud"]
    apt_offline(containers, True)
    try:
        hub_before = len(hub_requests(store))
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs)) as pool:
            futures = {name: pool.submit(run_playbook, path, **kw) for name, (path, kw) in runs.items()}
            done = {name: future.result() for name, future in futures.items()}
        done["hub_requests"] = hub_requests(store)[hub_before:]
        return done
    finally:
        apt_offline(containers, False)


def test_first_converge_leaves_every_instance_serving(converged_runs):
    report = converged_runs["verify"]
    assert report.rc == 0, report.failure_messages() or report.stdout[-3000:]
    assert (REPO / "reports" / "health.md").exists()
    assert "<table>" in (REPO / "reports" / "health.html").read_text()
    # What each instance uses now, beside its plan: its unit's memory, as systemd counts it.
    markdown = (REPO / "reports" / "health.md").read_text()
    for name in ("tiny", "coder", "hfchat", "chat", "amdchat", "amdcoder"):
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))
        planned, used = row.split("|")[7].strip().split(" / ")
        assert planned.isdigit() and used.isdigit() and int(used) > 0, row


def test_second_converge_changes_nothing(converged_runs):
    second = converged_runs["second"]
    assert second.rc == 0, second.failure_messages()
    assert second.changed_tasks() == []


def test_a_converge_asks_each_host_for_its_facts_once(converged_runs):
    """The preflight gathers what every play needs; the later plays reuse it (ansible.cfg:
    gathering = smart, memory cache: within this run only)."""
    gathered: dict = {}
    for ev in converged_runs["second"].events:
        data = ev.get("event_data", {})
        if ev.get("event") == "runner_on_ok" and data.get("task_action") in (
            "gather_facts",
            "ansible.builtin.gather_facts",
            "setup",
            "ansible.builtin.setup",
        ):
            gathered[data["host"]] = gathered.get(data["host"], 0) + 1
    assert set(gathered) == {"localcloud", "workstation", "amdbox"}, gathered
    assert all(n == 1 for n in gathered.values()), gathered


def test_second_converge_downloads_no_repository_file(converged_runs):
    """A repository entry pinned to a commit, its record and stamps in place, costs no
    network: while the second converge (and the runs beside it) ran, the Hub stand-in
    answered no request, neither model info nor file."""
    assert converged_runs["second"].rc == 0
    assert converged_runs["hub_requests"] == []


def repo_entries() -> list:
    entries = yaml.safe_load((REPO / "inventory" / "lab" / "group_vars" / "all.yml").read_text())
    return [m for m in entries["model_store_models"] if m.get("repo")]


def test_repository_entries_are_in_the_store_at_their_pinned_commit(lab):
    """Each repository entry's directory holds the files its include picks, byte for byte the
    stand-in's (the same files `make artifacts` wrote under $AILAB_CACHE/models/hub), and its
    record names the pinned commit, which the stand-in gives those files on this machine too."""
    store = lab["hosts"]["localcloud"]
    hub_dir = Path(os.environ.get("AILAB_CACHE", "/var/cache/ailab")) / "models" / "hub"
    commits = subprocess.run(
        [
            str(VENV_BIN / "python"),
            str(REPO / "tests" / "standins" / "hf_hub" / "hf_hub_standin.py"),
            "--repos",
            str(hub_dir / "repos.json"),
            "--print-commits",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    commits = json.loads(commits.stdout)
    spec = {r["id"]: r for r in json.loads((hub_dir / "repos.json").read_text())["repos"]}
    entries = repo_entries()
    assert len(entries) == 2
    for entry in entries:
        assert commits[entry["repo"]]["main"] == entry["revision"], (
            f"{entry['repo']}: the stand-in's files give another commit than the inventory pins"
        )
        record = json.loads(
            host_exec(store, "cat", f"/srv/models/.model_store/{entry['name']}/repo.json").stdout
        )
        assert record["commit"] == entry["revision"]
        files = spec[entry["repo"]]["commits"][-1]["files"]
        wanted = sorted(
            p
            for p in files
            if not entry.get("include") or any(fnmatch.fnmatchcase(p, g) for g in entry["include"])
        )
        assert sorted(f["path"] for f in record["files"]) == wanted
        listed = host_exec(store, "find", f"/srv/models/{entry['name']}", "-type", "f", "-printf", "%P\\n")
        assert sorted(listed.stdout.split()) == wanted
        sums = host_exec(
            store, "sh", "-c", f"cd /srv/models/{entry['name']} && sha256sum " + " ".join(wanted)
        )
        got = dict(reversed(line.split("  ", 1)) for line in sums.stdout.splitlines())
        for path in wanted:
            source = files[path]
            data = (hub_dir / source["path"]).read_bytes() if "path" in source else source["text"].encode()
            assert got[path] == hashlib.sha256(data).hexdigest(), path
    # Two quantizations in the GGUF repository, the one include picks in the store.
    gguf = next(e for e in entries if e["name"] == "tiny-llama-GGUF")
    assert {"tiny-llama-F32.gguf", "tiny-llama-F16.gguf"} <= set(spec[gguf["repo"]]["commits"][-1]["files"])
    assert host_exec(
        store, "test", "-e", "/srv/models/tiny-llama-GGUF/tiny-llama-F16.gguf", check=False
    ).returncode


def test_instance_on_a_repository_file_answers_a_completion(lab):
    """hubtiny's model is a path inside the repository entry's directory in the store."""
    store = lab["hosts"]["localcloud"]
    unit = host_exec(store, "systemctl", "cat", "llamacpp-hubtiny.service").stdout
    assert "/srv/models/tiny-llama-GGUF/tiny-llama-F32.gguf" in unit
    reply = complete(store, "hubtiny", 8085)
    assert reply["choices"][0]["text"] is not None and reply["usage"]["completion_tokens"] > 0


def test_instance_on_a_safetensors_repository_is_loaded_by_textgens_transformers_loader(lab, gateway_client):
    """workstation's hfchat serves the safetensors repository entry: textgen's Transformers
    loader takes --model-dir (the store's mount) and the entry's directory name; the
    stand-in checks the directory as transformers 5.6.2 would (config, weights, tokenizer)
    and generates nothing, so the chat through the gateway says it is the stand-in."""
    ws = lab["hosts"]["workstation"]
    flags = host_exec(ws, "cat", "/srv/textgen/hfchat/CMD_FLAGS.txt").stdout.splitlines()
    assert {
        "--model-dir /media/data/models",
        "--model tiny-llama-safetensors",
        "--loader Transformers",
    } <= set(flags)
    log = host_exec(ws, "journalctl", "-u", "textgen-hfchat.service", "--no-pager", "-o", "cat").stdout
    assert (
        "Checked tiny-llama-safetensors as Transformers would load it: model type llama, "
        "weights model.safetensors, tokenizer tokenizer.json"
    ) in log
    reply = openai_client(gateway_client).chat.completions.create(
        model="hfchat", max_tokens=8, messages=[{"role": "user", "content": "Hello"}]
    )
    assert "stand-in" in reply.choices[0].message.content


def test_a_staged_instance_loads_its_verified_local_copy(converged_runs, lab):
    """workstation's coder has stage: local: textgen's llama-server loads the model from
    /var/lib/ailab/stage, a copy of the store file (over NFS) with the store's digest."""
    ws = lab["hosts"]["workstation"]
    staged, store = "/var/lib/ailab/stage/tiny-llama-F32.gguf", "/media/data/models/tiny-llama-F32.gguf"
    flags = host_exec(ws, "cat", "/srv/textgen/coder/CMD_FLAGS.txt").stdout
    assert f"--model {staged}" in flags and store not in flags
    record = json.loads(
        host_exec(ws, "cat", "/media/data/models/.model_store/tiny-llama-F32.gguf.json").stdout
    )
    assert host_exec(ws, "sha256sum", staged).stdout.split()[0] == record["digest"]
    stamp = json.loads(host_exec(ws, "cat", "/var/lib/ailab/stage/.stage/tiny-llama-F32.gguf.json").stdout)
    assert stamp["verified"] is True and stamp["digest"] == record["digest"]
    # The llama-server textgen started maps (or holds open) the staged file, not the store's.
    held = host_exec(
        ws,
        "sh",
        "-c",
        "{ cat /proc/[0-9]*/maps; ls -l /proc/[0-9]*/fd; } 2>/dev/null | grep -F tiny-llama-F32.gguf",
    ).stdout
    assert staged in held and store not in held, held


def test_mitogen_no_op_run_matches_the_default_one(converged_runs):
    """The optional executor (plugins/strategy/mitogen_linear.py) runs the same tasks with
    the same outcome on every host: only the transport differs."""
    second, mitogen = converged_runs["second"], converged_runs["mitogen"]
    assert mitogen.rc == 0, mitogen.failure_messages() or mitogen.stdout[-3000:]
    # ansible-core names a third-party strategy when it loads one: ours, which is Mitogen's.
    assert "strategy plugins not included in ansible.builtin" in " ".join(mitogen.stdout.split())
    # Mitogen takes over a connection only by its short name: the lab's must be one.
    lab_vars = yaml.safe_load((REPO / "inventory" / "lab" / "group_vars" / "lab.yml").read_text())
    assert lab_vars["ansible_connection"] in ansible_mitogen.strategy.REDIRECTED_CONNECTION_PLUGINS
    assert mitogen.changed_tasks() == []
    for outcome in ("ok", "skipped", "failures", "dark"):
        assert mitogen.stats.get(outcome, {}) == second.stats.get(outcome, {}), outcome


def test_check_diff_on_converged_lab_reports_no_change_and_no_failure(converged_runs):
    check = converged_runs["check"]
    assert check.rc == 0, check.failure_messages()
    assert check.changed_tasks() == []


def test_plan_writes_a_json_plan_per_host(converged_runs):
    plan = converged_runs["plan"]
    assert plan.rc == 0, plan.failure_messages()
    for host in ("localcloud", "workstation", "amdbox"):
        data = json.loads((REPO / ".plan" / f"{host}.json").read_text())
        assert data["instances"], host
        assert all(inst["fits"] for inst in data["instances"])
    # The gateway's routes: localcloud's own instance on loopback (it runs the gateway).
    assert "gateway on localcloud:" in plan.stdout
    assert "tiny -> http://127.0.0.1:8081/v1 (localcloud/tiny, llamacpp" in plan.stdout


def lab_instance_names() -> set:
    names = set()
    for host in ("localcloud", "workstation", "amdbox"):
        data = yaml.safe_load((REPO / "inventory" / "lab" / "host_vars" / f"{host}.yml").read_text())
        names |= {
            i["name"] for i in data.get("model_instances", []) if i.get("state", "present") == "present"
        }
    return names


@pytest.fixture(scope="module")
def gateway_client(lab):
    """How `make lab` tells this machine to reach the gateway: lab_complete.yml's .lab/gateway.json."""
    run = run_playbook("playbooks/lab_complete.yml")
    assert run.rc == 0, run.failure_messages()
    info = json.loads((REPO / ".lab" / "gateway.json").read_text())
    assert info["url"].startswith("https://") and info["url"] in run.stdout
    return info


def openai_client(info, key=None, ca=None):
    tls = ssl.create_default_context(cafile=ca or info["ca_file"])
    key = Path(info["api_key_file"]).read_text().strip() if key is None else key
    return openai.OpenAI(
        base_url=info["url"] + "/v1",
        api_key=key,
        max_retries=0,
        http_client=httpx.Client(verify=tls, timeout=120),
    )


def test_gateway_lists_a_route_for_every_lab_instance(gateway_client):
    routes = {m.id for m in openai_client(gateway_client).models.list()}
    # And a model's own name where one instance alone serves it (gateway_routes_from_hostvars):
    # only hfchat's; the tiny GGUF is served by several.
    assert routes == lab_instance_names() | {"tiny-llama-safetensors"}


@pytest.mark.parametrize("route", ["tiny", "coder"])
def test_chat_by_route_name_reaches_llama_server_through_the_gateway(gateway_client, route):
    """tiny: llama.cpp's llama-server; coder: textgen, whose GGUF loader runs llama-server."""
    reply = openai_client(gateway_client).chat.completions.create(
        model=route, max_tokens=8, temperature=0, messages=[{"role": "user", "content": "Once upon a time"}]
    )
    assert reply.usage.completion_tokens > 0 and reply.choices[0].message.content
    assert "stand-in" not in reply.choices[0].message.content


def test_gateway_refuses_a_missing_or_wrong_key_with_401(gateway_client):
    with pytest.raises(openai.AuthenticationError) as wrong:
        openai_client(gateway_client, key="wrong-key-0123456789").models.list()
    assert wrong.value.status_code == 401
    tls = ssl.create_default_context(cafile=gateway_client["ca_file"])
    assert httpx.get(gateway_client["url"] + "/v1/models", verify=tls, timeout=30).status_code == 401


def test_gateway_certificate_verifies_against_the_lab_ca_only(gateway_client):
    with pytest.raises(openai.APIConnectionError) as refused:
        openai_client(gateway_client, ca=certifi.where()).models.list()
    assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value.__cause__)


_CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close(); print('answered')\n"
    "except ConnectionRefusedError:\n"
    "    print('refused')\n"
    "except OSError as e:\n"
    "    print(type(e).__name__)\n"
)


def connect(container: str, address: str, port: int) -> str:
    """From inside ``container``: 'answered', 'refused' or the error's name."""
    return host_exec(container, "python3", "-c", _CONNECT, address, str(port)).stdout.strip()


def container_address(container: str) -> str:
    """The lab host's address on the lab network (its only network)."""
    return host_exec(container, "hostname", "-I").stdout.split()[0]


def test_instance_ports_answer_the_gateway_host_only_and_keep_doing_so_after_a_restart(lab):
    """workstation's instances listen on its lab address (the gateway on localcloud must
    reach them); nftables admits localcloud and loopback and refuses amdbox, also after
    the host restarts (the rules load at boot, before the network)."""
    ws, lc, amd = (lab["hosts"][h] for h in ("workstation", "localcloud", "amdbox"))
    address = container_address(ws)
    ports = (5010, 7861, 11435)  # coder's API and UI, chat's Ollama

    def states():
        return {p: (connect(lc, address, p), connect(amd, address, p)) for p in ports}

    assert states() == {p: ("answered", "refused") for p in ports}
    subprocess.run(["docker", "restart", ws], check=True, capture_output=True)
    host_exec(ws, "systemctl", "is-system-running", "--wait", check=False)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and states() != {p: ("answered", "refused") for p in ports}:
        time.sleep(3)
    assert states() == {p: ("answered", "refused") for p in ports}
    assert "ailab_instances" in host_exec(ws, "nft", "list", "tables").stdout


_STATUS = (
    "import sys, urllib.request, urllib.error\n"
    "auth = {'Authorization': 'Bearer ' + sys.argv[3]} if len(sys.argv) > 3 else {}\n"
    "req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode() or None,"
    " headers={'Content-Type': 'application/json', **auth})\n"
    "try:\n"
    "    print(urllib.request.urlopen(req, timeout=60).status)\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code)\n"
)


def status(container: str, url: str, body: str = "", *key: str) -> str:
    return host_exec(container, "python3", "-c", _STATUS, url, body, *key).stdout.strip()


def test_instances_behind_the_gateway_refuse_a_request_without_their_key(lab):
    """No lab instance has an api_key in the inventory, and every llama-server and textgen API
    still gets one, derived from the gateway's master key: a request that reaches the port
    (on the instance's own host, or from the gateway host the firewall admits) needs it."""
    lc, ws = lab["hosts"]["localcloud"], lab["hosts"]["workstation"]
    body = '{"prompt": "Hello", "max_tokens": 4}'
    tiny = "http://127.0.0.1:8081/v1/completions"
    key = host_exec(lc, "cat", "/var/lib/llamacpp/tiny/api-key").stdout.strip()
    assert status(lc, tiny, body) == "401"
    assert status(lc, tiny, body, "not-the-key") == "401"
    assert status(lc, tiny, body, key) == "200"
    # llama-server: the key is read from its 0600 file, never on the command line.
    assert key not in host_exec(lc, "ps", "-eo", "args").stdout
    coder = f"http://{container_address(ws)}:5010/v1/models"
    assert status(lc, coder) == "401"
    assert status(lc, coder, "", key) == "401"  # one instance's key opens no other


def test_ollama_gets_upstream_rocm_libraries_on_the_amd_host_only(lab):
    """docs/linux.md upstream: an AMD host needs the -rocm archive extracted over the release
    (lib/ollama/rocm/); without it Ollama finds no usable GPU. The NVIDIA host gets none."""
    version = yaml.safe_load((REPO / "roles" / "ollama" / "defaults" / "main.yml").read_text())[
        "ollama_version"
    ]
    rocm = f"/opt/ollama/{version}/lib/ollama/rocm/STANDIN.txt"
    assert host_exec(lab["hosts"]["amdbox"], "test", "-f", rocm, check=False).returncode == 0
    assert host_exec(lab["hosts"]["workstation"], "test", "-e", rocm, check=False).returncode != 0


def test_nvidia_host_instances_start_after_its_device_nodes(lab):
    """workstation plans for its (simulated) NVIDIA card: its units order themselves after
    gpu_driver's device-node unit, which the missing module skips here without failing."""
    ws = lab["hosts"]["workstation"]
    for unit in ("textgen-coder.service", "ollama-chat.service"):
        after = host_exec(ws, "systemctl", "show", "-p", "After", "-p", "Wants", "--value", unit).stdout
        assert "ailab-nvidia-devices.service" in after, unit
    state = host_exec(ws, "systemctl", "show", "-p", "ActiveState", "--value", "ailab-nvidia-devices.service")
    assert state.stdout.strip() != "failed"
    other = host_exec(
        lab["hosts"]["localcloud"], "systemctl", "show", "-p", "After", "--value", "llamacpp-tiny.service"
    )
    assert "ailab-nvidia-devices" not in other.stdout


NEW_INSTANCE = {
    "name": "extra",
    "backend": "llamacpp",
    "model": "tiny-llama-F32.gguf",
    "port": 8091,
    "ctx_size": 256,
    "ready_timeout": 180,
}


def _localcloud_instances(extra):
    base = yaml.safe_load((REPO / "inventory" / "lab" / "host_vars" / "localcloud.yml").read_text())
    return base["model_instances"] + [extra]


def test_add_instance_changes_only_that_instance(lab, tmp_path):
    container = lab["hosts"]["localcloud"]
    before = main_pids(container)
    inventory = write_overlay_inventory(
        tmp_path, host_vars={"localcloud": {"model_instances": _localcloud_instances(NEW_INSTANCE)}}
    )
    start = time.monotonic()
    run = run_playbook("site.yml", inventory=inventory, tags="instances", limit="localcloud")
    elapsed = time.monotonic() - start
    assert run.rc == 0, run.failure_messages()
    changed = run.changed_tasks()
    assert changed, "adding an instance changed nothing"
    after = main_pids(container)
    assert "llamacpp-extra.service" in after
    for unit, pid in before.items():
        assert after.get(unit) == pid, f"{unit} was restarted"
    assert complete(container, "extra", 8091)["choices"][0]["text"] is not None
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / "add_instance_seconds").write_text(f"{elapsed:.1f}\n")


def test_remove_instance_leaves_others_untouched(lab, tmp_path):
    container = lab["hosts"]["localcloud"]
    before = main_pids(container)
    absent = {"name": "extra", "backend": "llamacpp", "state": "absent"}
    inventory = write_overlay_inventory(
        tmp_path, host_vars={"localcloud": {"model_instances": _localcloud_instances(absent)}}
    )
    run = run_playbook("site.yml", inventory=inventory, tags="instances", limit="localcloud")
    assert run.rc == 0, run.failure_messages()
    assert_removed_alone(container, before, "llamacpp-extra.service", 8091)
    # The directory held only what the role wrote (instance_service's remove.yml).
    assert host_exec(container, "test", "-e", "/var/lib/llamacpp/extra", check=False).returncode != 0


def test_instance_deleted_from_the_inventory_is_removed_and_frees_its_port(lab, tmp_path):
    """Deleting an instance from model_instances (no state: absent) stops and removes it."""
    container = lab["hosts"]["localcloud"]
    orphan = dict(NEW_INSTANCE, name="orphan", port=8092)
    inventory = write_overlay_inventory(
        tmp_path, host_vars={"localcloud": {"model_instances": _localcloud_instances(orphan)}}
    )
    added = run_playbook("site.yml", inventory=inventory, tags="instances", limit="localcloud")
    assert added.rc == 0, added.failure_messages()
    before = main_pids(container)
    assert "llamacpp-orphan.service" in before
    run = run_playbook("site.yml", tags="instances", limit="localcloud")
    assert run.rc == 0, run.failure_messages()
    assert_removed_alone(container, before, "llamacpp-orphan.service", 8092)
    assert host_exec(container, "test", "-e", "/var/lib/llamacpp/orphan", check=False).returncode != 0
    assert run_playbook("site.yml", tags="instances", limit="localcloud").changed_tasks() == []


# A completion from a llamacpp instance on its host's loopback (localcloud runs the gateway,
# so its instances listen there), with the key the role gave it: behind the gateway every
# llama-server has one (derived from the master key; argv: port, key file).
_COMPLETION = (
    "import json, sys, urllib.request;"
    "key = open(sys.argv[2]).read().strip();"
    "req = urllib.request.Request('http://127.0.0.1:%s/v1/completions' % sys.argv[1],"
    " data=json.dumps({'prompt': 'Hello', 'max_tokens': 8}).encode(),"
    " headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + key});"
    "print(urllib.request.urlopen(req, timeout=60).read().decode())"
)


def complete(container: str, name: str, port: int) -> dict:
    out = host_exec(container, "python3", "-c", _COMPLETION, str(port), f"/var/lib/llamacpp/{name}/api-key")
    return json.loads(out.stdout)


def test_interrupted_converge_completes_on_the_next_run(lab):
    """Kill ansible-playbook midway through the instances play, then converge again."""
    host_exec(lab["hosts"]["workstation"], "systemctl", "stop", "textgen-coder.service")
    proc = subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "site.yml", "--tags", "instances"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        seen.append(line)
        if "TASK [textgen_webui" in line or "TASK [ollama" in line or time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert any("TASK [" in line for line in seen), "".join(seen[-40:])
    again = run_playbook("site.yml")
    assert again.rc == 0, again.failure_messages()
    report = run_playbook("playbooks/verify.yml")
    assert report.rc == 0, report.failure_messages()


def test_rebuilt_host_comes_back_whole(lab, tmp_path):
    """Destroy workstation, recreate it from the base image, converge only it: every file
    the toolkit manages comes back byte for byte, every unit in the state it was in.

    One of its instances serves a model someone copied into the store by hand (on the store
    server, at model_store.path; not in model_store_models): the fresh host, whose store is
    not mounted yet when the plan is made, must plan it from the store server and serve it
    again, as a user's rebuilt host would."""
    container = lab["hosts"]["workstation"]
    store = lab["hosts"]["localcloud"]
    host_exec(store, "cp", "/srv/models/tiny-llama-F32.gguf", "/srv/models/hand-copied.gguf")
    workstation = yaml.safe_load((REPO / "inventory" / "lab" / "host_vars" / "workstation.yml").read_text())
    handmade = {
        "name": "handmade",
        "backend": "ollama",
        "model": "hand-copied.gguf",
        "port": 11436,
        "ready_timeout": 120,
    }
    inventory = write_overlay_inventory(
        tmp_path, host_vars={"workstation": {"model_instances": workstation["model_instances"] + [handmade]}}
    )
    try:
        added = run_playbook("site.yml", inventory=inventory, limit="workstation")
        assert added.rc == 0, added.failure_messages()
        before = snapshot([container])[container]
        assert "ollama-handmade.service" in before
        subprocess.run(["docker", "rm", "-f", container], check=True, capture_output=True)
        up = run_playbook("playbooks/lab_up.yml")
        assert up.rc == 0, up.failure_messages()
        assert (
            host_exec(
                container, "test", "-e", "/etc/systemd/system/textgen-coder.service", check=False
            ).returncode
            != 0
        )
        start = time.monotonic()
        rebuild = run_playbook("site.yml", inventory=inventory, limit="workstation")
        (REPO / ".cache").mkdir(exist_ok=True)
        (REPO / ".cache" / "rebuild_seconds").write_text(f"{time.monotonic() - start:.1f}\n")
        assert rebuild.rc == 0, rebuild.failure_messages()
        report = run_playbook("playbooks/verify.yml", inventory=inventory, limit="workstation")
        assert report.rc == 0, report.failure_messages()
        after = snapshot([container])[container]
        lost = sorted(set(before.splitlines()) - set(after.splitlines()))
        gained = sorted(set(after.splitlines()) - set(before.splitlines()))
        assert not lost and not gained, f"not as before the rebuild:\nlost: {lost}\ngained: {gained}"
        third = run_playbook("site.yml", inventory=inventory, limit="workstation")
        assert third.rc == 0, third.failure_messages()
        assert third.changed_tasks() == []
    finally:
        # Back to the lab's own inventory: the extra instance goes, the copy with it.
        back = run_playbook("site.yml", limit="workstation", tags="instances")
        host_exec(store, "rm", "-f", "/srv/models/hand-copied.gguf", check=False)
    assert back.rc == 0, back.failure_messages()
    assert "ollama-handmade.service" not in snapshot([container])[container]


def _repack_llama_server(tmp_path, tag):
    """The lab's llama-server archive under another release tag, as a new upstream release."""
    import hashlib
    import tarfile

    pinned = yaml.safe_load((REPO / "roles" / "llamacpp_server" / "defaults" / "main.yml").read_text())[
        "llamacpp_server_version"
    ]
    cache = os.environ.get("AILAB_CACHE", "/var/cache/ailab")
    source = f"{cache}/llama-server/llama-{pinned}-bin-ubuntu-x64.tar.gz"
    target = tmp_path / f"llama-{tag}-bin-ubuntu-x64.tar.gz"
    with tarfile.open(source) as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            member.name = member.name.replace(f"llama-{pinned}", f"llama-{tag}", 1)
            dst.addfile(member, data)
    return str(target), hashlib.sha256(target.read_bytes()).hexdigest()


def test_new_llama_server_release_restarts_only_llamacpp_instances(lab, tmp_path):
    """A new llama-server build (here a new tag) reinstalls it and restarts only the llamacpp
    instances; the next run changes nothing; going back removes the unused build."""
    archive, sha = _repack_llama_server(tmp_path, "0c1e570-r2")
    overlay = {
        "llamacpp_server_version": "0c1e570-r2",
        "llamacpp_server_archive": archive,
        "llamacpp_server_archive_sha256": sha,
    }
    inventory = write_overlay_inventory(tmp_path, host_vars={"localcloud": overlay})
    before = {name: main_pids(c) for name, c in lab["hosts"].items()}
    run = run_playbook("site.yml", inventory=inventory, tags="instances")
    assert run.rc == 0, run.failure_messages()
    after = {name: main_pids(c) for name, c in lab["hosts"].items()}
    assert after["localcloud"]["llamacpp-tiny.service"] != before["localcloud"]["llamacpp-tiny.service"]
    for host in ("workstation", "amdbox"):
        assert after[host] == before[host], f"instances on {host} were restarted"
    container = lab["hosts"]["localcloud"]
    unit = host_exec(container, "cat", "/etc/systemd/system/llamacpp-tiny.service").stdout
    assert "/opt/llama-server/llama-0c1e570-r2-cpu/llama-server " in unit
    assert host_exec(container, "ls", "/opt/llama-server").stdout.split() == [
        "build.json",
        "llama-0c1e570-r2-cpu",
    ]
    again = run_playbook("site.yml", inventory=inventory, tags="instances")
    assert again.rc == 0, again.failure_messages()
    assert again.changed_tasks() == []
    back = run_playbook("site.yml", tags="instances", limit="localcloud")
    assert back.rc == 0, back.failure_messages()
    assert host_exec(container, "ls", "/opt/llama-server").stdout.split()[1:] == ["llama-0c1e570-cpu"]
    assert complete(container, "tiny", 8081)["choices"][0]["text"] is not None
