"""The serving filter plugin: registration, loading outside the test harness, behaviour."""

import json
import os
import subprocess
import sys

import pytest
import serving
from ansible.errors import AnsibleFilterError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = {
    "format": "gguf",
    "layers": 2,
    "heads": 4,
    "kv_heads": 4,
    "embedding_length": 64,
    "context_length": 2048,
    "size_bytes": 17 * 1024 * 1024,
    "complete": True,
    "servable": True,
    "name_tags": {"purpose": []},
}
INSTANCES = [{"name": "tiny", "backend": "textgen", "model": "tiny.gguf", "port": 7861, "api_port": 5010}]
GPU = {"vendor": "none", "total_vram_mib": 0}


def test_filter_module_registers_every_filter():
    names = set(serving.FilterModule().filters())
    assert names == {
        "serving_plan_host",
        "serving_default_bind",
        "serving_orphans",
        "serving_model_paths",
        "serving_repo_records",
        "serving_stage_items",
        "serving_plan_table",
        "serving_store_pending",
        "serving_store_root",
        "textgen_cmd_flags",
        "textgen_flags_check",
    }


def test_serving_plan_host_filter_plans_with_string_memory_from_inventory():
    hp = serving.serving_plan_host(INSTANCES, "lab", {"/m/tiny.gguf": MODEL}, GPU, "2048", [], "/m")
    assert hp["refused"] is False
    (p,) = hp["instances"]
    assert p["loader"] == "llama.cpp" and "--gpu-layers 0" in p["flags"]
    json.dumps(hp)  # the playbook writes it as JSON


def test_serving_plan_host_filter_rejects_non_numeric_memory():
    with pytest.raises(AnsibleFilterError):
        serving.serving_plan_host(INSTANCES, "lab", {}, GPU, "lots")


def test_serving_model_paths_filter_resolves_relative_paths():
    assert serving.serving_model_paths(INSTANCES, "/m") == ["/m/tiny.gguf"]


def test_serving_plan_table_filter_returns_lines():
    hp = serving.serving_plan_host(INSTANCES, "lab", {"/m/tiny.gguf": MODEL}, GPU, None, [], "/m")
    lines = serving.serving_plan_table(hp)
    assert lines[0].startswith("HOST") and lines[1].startswith("lab")


def test_textgen_cmd_flags_filter_takes_a_plan_or_lines():
    assert serving.textgen_cmd_flags({"cmd_flags": "x\n"}) == "x\n"
    assert serving.textgen_cmd_flags(["--cpu"], "managed") == "# managed\n--cpu\n"


def test_textgen_cmd_flags_filter_refuses_an_inline_comment():
    with pytest.raises(AnsibleFilterError):
        serving.textgen_cmd_flags(["--cpu # why"])


def test_textgen_flags_check_filter_reports_errors_and_normalised_flags():
    out = serving.textgen_flags_check(["--n-gpu-layers 3", "--use_flash_attention_2"])
    assert out["flags"] == ["--gpu-layers 3"]
    assert "--attn-implementation flash_attention_2" in out["errors"][0]
    assert out["warnings"]


def test_filter_loads_without_the_test_harness_as_ansible_would():
    # A fresh interpreter without conftest: ansible.module_utils has no serving_plan
    # or textgen_flags, so the filter must load them by file path.
    code = (
        "import sys; sys.path.insert(0, 'plugins/filter'); import serving; "
        "print(serving.textgen_flags_check(['--listen'])['errors'][0]); "
        "print(serving.serving_plan.textgen_flags.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert "--listen is set by the planner" in first
    assert second == "lab_textgen_flags"


def test_store_pending_finds_missing_models_the_store_will_copy_or_download():
    models = {
        "/m/a.gguf": {"error": "/m/a.gguf does not exist"},
        "/m/b.gguf": {"error": "/m/b.gguf does not exist"},
        "/m/c.gguf": {"error": "/m/c.gguf does not exist"},
        "/m/ok.gguf": MODEL,
    }
    store_models = [
        {"name": "a.gguf", "src": "/srv/in/a.gguf"},
        {"name": "b.gguf", "url": "https://example.org/b.gguf", "checksum": "sha256:" + "0" * 64},
        {"name": "c.gguf", "src": "/srv/in/c.gguf", "state": "absent"},
    ]
    instances = [
        {"name": "one", "model": "a.gguf"},
        {"name": "two", "model": "b.gguf"},
        {"name": "three", "model": "/m/ok.gguf"},
    ]
    pending = serving.serving_store_pending(models, store_models, "/m", instances)
    assert pending["src"] == {"/m/a.gguf": "/srv/in/a.gguf"}
    assert pending["url"] == {"/m/b.gguf": "https://example.org/b.gguf"}
    assert pending["instances"] == ["two"]


def test_store_pending_waits_for_a_file_inside_a_repository_entry_the_store_will_fetch():
    """A model inside a repository entry's directory comes only with the store's download."""
    models = {
        "/m/repo-GGUF/q4.gguf": {"error": "/m/repo-GGUF/q4.gguf does not exist"},
        "/m/repo-GGUF-other.gguf": {"error": "/m/repo-GGUF-other.gguf does not exist"},
    }
    commit = "0123456789abcdef0123456789abcdef01234567"
    store_models = [{"name": "repo-GGUF", "repo": "org/repo-GGUF", "revision": commit}]
    instances = [
        {"name": "one", "model": "repo-GGUF/q4.gguf"},
        {"name": "two", "model": "repo-GGUF-other.gguf"},
    ]
    pending = serving.serving_store_pending(models, store_models, "/m", instances, store_path="/srv/store")
    assert pending["url"] == {"/m/repo-GGUF/q4.gguf": f"hf:org/repo-GGUF@{commit}/q4.gguf"}
    assert pending["instances"] == ["one"]
    # A name sharing only a prefix with the repository is no part of it: inspected in the store.
    assert pending["src"] == {"/m/repo-GGUF-other.gguf": "/srv/store/repo-GGUF-other.gguf"}
    # Once fetched, the file is planned like any other.
    fetched = serving.serving_store_pending({"/m/repo-GGUF/q4.gguf": MODEL}, store_models, "/m", instances)
    assert fetched == {"src": {}, "url": {}, "instances": []}


def test_store_pending_waits_for_a_repository_entry_the_store_holds_at_another_revision():
    """A repository entry's directory is there, from the commit pinned before (here without
    the tokenizer the new one adds): the instance is planned after the store fetched the
    declared commit, not refused for what the old files lack. What the store holds is its
    record, .model_store/<name>/repo.json (hf_repo_manifest)."""
    old, new = "1" * 40, "2" * 40
    store_models = [
        {"name": "st", "repo": "org/st", "revision": new},
        {"name": "gguf", "repo": "org/gguf", "revision": old, "include": ["*Q4*"]},
    ]
    instances = [{"name": "hf", "model": "st"}, {"name": "q4", "model": "gguf/m-Q4.gguf"}]
    models = {"/m/st": MODEL, "/m/gguf/m-Q4.gguf": MODEL}
    assert serving.serving_repo_records(store_models, "/m") == [
        "/m/.model_store/st/repo.json",
        "/m/.model_store/gguf/repo.json",
    ]

    def record(repo, commit, include=()):
        return {"repo": repo, "revision": commit, "commit": commit, "include": list(include), "exclude": []}

    records = {
        "/m/.model_store/st/repo.json": record("org/st", old),
        "/m/.model_store/gguf/repo.json": record("org/gguf", old, ["*Q4*"]),
    }
    pending = serving.serving_store_pending(models, store_models, "/m", instances, records=records)
    assert pending == {"src": {}, "url": {"/m/st": f"hf:org/st@{new}"}, "instances": ["hf"]}
    # Held as declared: planned now. No record yet (a store that never fetched it): pending.
    records["/m/.model_store/st/repo.json"] = record("org/st", new)
    assert (
        serving.serving_store_pending(models, store_models, "/m", instances, records=records)["instances"]
        == []
    )
    records["/m/.model_store/gguf/repo.json"] = None
    assert serving.serving_store_pending(models, store_models, "/m", instances, records=records)[
        "instances"
    ] == ["q4"]
    # Another include is another set of files.
    records["/m/.model_store/gguf/repo.json"] = record("org/gguf", old, ["*Q8*"])
    assert serving.serving_store_pending(models, store_models, "/m", instances, records=records)[
        "instances"
    ] == ["q4"]
    # Without records (model_facts not asked), only missing models wait, as before.
    assert serving.serving_store_pending(models, store_models, "/m", instances)["instances"] == []


def test_store_pending_waits_for_a_whole_repository_directory_not_there_yet():
    store_models = [{"name": "st", "repo": "org/st", "revision": "3" * 40}]
    models = {"/m/st": {"error": "/m/st does not exist"}}
    pending = serving.serving_store_pending(models, store_models, "/m", [{"name": "hf", "model": "st"}])
    assert pending == {"src": {}, "url": {"/m/st": "hf:org/st@" + "3" * 40}, "instances": ["hf"]}


def test_store_pending_is_empty_when_every_model_is_there():
    pending = serving.serving_store_pending(
        {"/m/ok.gguf": MODEL}, [{"name": "ok.gguf", "src": "/x"}], "/m", []
    )
    assert pending == {"src": {}, "url": {}, "instances": []}


def test_orphans_are_units_of_instances_no_longer_declared_or_moved_to_another_backend():
    from serving import serving_orphans

    units = [
        "/etc/systemd/system/llamacpp-tiny.service",  # still declared: kept
        "/etc/systemd/system/llamacpp-chat.service",  # chat moved to ollama: the old unit goes
        "/etc/systemd/system/ollama-chat.service",
        "/etc/systemd/system/textgen-old.service",  # deleted from the list without state: absent
        "/etc/systemd/system/ollama-gone.service",  # listed absent already: not twice
    ]
    present = [
        {"name": "tiny", "backend": "llamacpp"},
        {"name": "chat", "backend": "ollama"},
    ]
    absent = [{"name": "gone", "backend": "ollama", "purge": True}]
    assert serving_orphans(units, present, absent) == [
        {"name": "chat", "backend": "llamacpp", "purge": False, "orphan": True},
        {"name": "old", "backend": "textgen", "purge": False, "orphan": True},
    ]


def test_orphans_ignore_other_units_and_an_auto_absent_entry():
    from serving import serving_orphans

    units = ["/etc/systemd/system/ollama.service", "/etc/systemd/system/textgen-x.service"]
    assert serving_orphans(units, [], [{"name": "x", "backend": "auto"}]) == []


def test_store_pending_inspects_a_hand_copied_model_in_the_store_while_the_host_has_no_mount():
    """A rebuilt client has no NFS mount at preflight: a model the store holds but does not
    declare (copied there by hand) is inspected on the store server under its own path."""
    models = {
        "/m/hand/copied.gguf": {"error": "/m/hand/copied.gguf does not exist"},
        "/elsewhere/x.gguf": {"error": "/elsewhere/x.gguf does not exist"},
        "/m/ok.gguf": MODEL,
    }
    instances = [{"name": "one", "model": "hand/copied.gguf"}, {"name": "two", "model": "/elsewhere/x.gguf"}]
    pending = serving.serving_store_pending(models, [], "/m", instances, store_path="/srv/store")
    assert pending == {
        "src": {"/m/hand/copied.gguf": "/srv/store/hand/copied.gguf"},
        "url": {},
        "instances": [],
    }
    # Without the store's path (plan.yml, the store server itself) nothing is looked up elsewhere.
    assert serving.serving_store_pending(models, [], "/m", instances)["src"] == {}


def test_store_root_is_the_store_itself_on_its_server_and_the_mount_elsewhere():
    store = {"server": "nas", "path": "/srv/store", "mount_path": "/media/data/models"}
    assert serving.serving_store_root(store, "nas") == "/srv/store"
    assert serving.serving_store_root(store, "ws") == "/media/data/models"
    assert serving.serving_store_root({}, "ws") is None


# The one default listen address (model_instances_bind, playbooks/plan.yml).
def test_default_bind_is_loopback_without_a_gateway_elsewhere():
    from serving import serving_default_bind

    assert serving_default_bind("ws", {}, "10.0.0.5") == "127.0.0.1"
    # On the gateway host itself the gateway reaches loopback.
    assert serving_default_bind("lc", {"host": "lc"}, "10.0.0.2") == "127.0.0.1"


def test_default_bind_is_the_hosts_address_when_a_gateway_elsewhere_must_reach_it():
    from serving import serving_default_bind

    assert serving_default_bind("ws", {"host": "lc"}, "10.0.0.5") == "10.0.0.5"
    # No address known: loopback, which the gateway's routes then refuse by name.
    assert serving_default_bind("ws", {"host": "lc"}, "") == "127.0.0.1"
