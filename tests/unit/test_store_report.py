"""Tests for the store report and pruning: roles/model_store/library/model_store_inventory.py
through AnsibleModule on real files, and playbooks/store_report.yml run for real."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from module_run import run_main
from test_module_docs import docs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIBRARY = os.path.join(ROOT, "roles", "model_store", "library")
if LIBRARY not in sys.path:
    sys.path.insert(0, LIBRARY)

import model_store_inventory  # noqa: E402

BIN = os.path.dirname(sys.executable)
PLAYBOOK_BIN = os.path.join(BIN, "ansible-playbook")


def run_module(args, check_mode=False):
    """Run main() with ``args``; return its exit code (the result is on stdout)."""
    return run_main(model_store_inventory.main, args, check_mode)


@pytest.fixture
def captured(capsys):
    def read():
        return json.loads(capsys.readouterr().out)

    return read


def write(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.fixture
def store(tmp_path):
    """A store as a lab leaves it: a declared file, a repository entry, Ollama's blob store, a
    file copied in by hand that an instance uses, a file and a directory nobody uses (each with
    a stamp or record), a safetensors directory an instance uses, and a partial download."""
    root = tmp_path / "store"
    write(root / "tiny.gguf", 1000)
    write(root / ".model_store" / "tiny.gguf.json", 10)
    write(root / ".tiny.gguf.part", 7)  # a declared file's download under way
    write(root / "tiny-llama-GGUF" / "tiny-llama-F32.gguf", 2000)
    write(root / "tiny-llama-GGUF" / "README.md", 20)
    write(root / ".model_store" / "tiny-llama-GGUF" / "repo.json", 30)
    write(root / "ollama" / "blobs" / "sha256-abc", 500)
    write(root / "hand-copied.gguf", 3000)
    write(root / "old.gguf", 400)
    write(root / ".model_store" / "old.gguf.json", 10)
    write(root / "stale-repo" / "model.gguf", 600)
    write(root / "stale-repo" / "sub" / "config.json", 6)
    write(root / ".model_store" / "stale-repo" / "repo.json", 30)
    write(root / "tiny-st" / "model.safetensors", 800)
    write(root / "tiny-st" / "config.json", 8)
    return root


def args_for(root, **extra):
    args = {
        "path": str(root),
        "declared": ["tiny.gguf"],
        "repositories": ["tiny-llama-GGUF"],
        "used": [
            {"path": "tiny-llama-GGUF/tiny-llama-F32.gguf", "users": ["localcloud/hubtiny"]},
            {"path": "hand-copied.gguf", "users": ["workstation/chat"]},
            {"path": "tiny.gguf", "users": ["workstation/coder", "amdbox/amdchat"]},
            {"path": "tiny.gguf", "users": ["localcloud/tiny"]},
            {"path": "tiny-st", "users": ["workstation/st"]},
        ],
        "protected": ["ollama"],
    }
    args.update(extra)
    return args


def by_path(out):
    return {item["path"]: item for item in out["items"]}


def test_report_lists_every_item_with_its_size_declaration_and_users_and_changes_nothing(store, captured):
    assert run_module(args_for(store)) == 0
    out = captured()
    assert out["changed"] is False and out["removed"] == [] and out["stamps_removed"] == []
    items = by_path(out)
    assert set(items) == {
        "tiny.gguf",
        "tiny-llama-GGUF",
        "ollama",
        "hand-copied.gguf",
        "old.gguf",
        "stale-repo",
        "tiny-st",
    }  # no .model_store, no partial download of a declared file
    assert items["tiny.gguf"] == {
        "path": "tiny.gguf",
        "type": "file",
        "size": 1000,
        "declared": True,
        "managed": False,
        "users": ["amdbox/amdchat", "localcloud/tiny", "workstation/coder"],
        "unused": False,
    }
    assert items["tiny-llama-GGUF"]["size"] == 2020 and items["tiny-llama-GGUF"]["type"] == "directory"
    assert (
        items["tiny-llama-GGUF"]["users"] == ["localcloud/hubtiny"] and items["tiny-llama-GGUF"]["declared"]
    )
    assert items["ollama"]["managed"] and items["ollama"]["size"] == 500 and not items["ollama"]["unused"]
    assert items["hand-copied.gguf"]["declared"] is False and items["hand-copied.gguf"]["users"] == [
        "workstation/chat"
    ]
    assert items["stale-repo"]["size"] == 606 and items["stale-repo"]["unused"]
    assert out["unused"] == ["old.gguf", "stale-repo"]
    assert out["total_size"] == 1000 + 2020 + 500 + 3000 + 400 + 606 + 808
    assert out["unused_size"] == 1006
    report = out["report"]
    assert any(
        line.startswith("hand-copied.gguf ") and "2.9 KiB" in line and "used by workstation/chat" in line
        for line in report
    )
    assert any(line.startswith("old.gguf ") and line.endswith("UNUSED") for line in report)
    assert any(line.startswith("stale-repo/ ") and line.endswith("UNUSED") for line in report)
    assert any(line.startswith("ollama/ ") and "never pruned" in line for line in report)
    assert "total: 8.1 KiB in 7 items; unused: 1006 B in 2 items" in report
    assert "nothing removed (model_store_prune is false)" in report
    assert (store / "old.gguf").exists() and (store / "stale-repo").exists()


def test_prune_removes_the_unused_file_and_stale_directory_with_their_stamps_and_keeps_the_rest(
    store, captured
):
    assert run_module(args_for(store, prune=True)) == 0
    out = captured()
    assert out["changed"] is True
    assert out["removed"] == ["old.gguf", "stale-repo"]
    assert out["stamps_removed"] == [".model_store/old.gguf.json", ".model_store/stale-repo"]
    assert not (store / "old.gguf").exists() and not (store / "stale-repo").exists()
    assert not (store / ".model_store" / "old.gguf.json").exists()
    assert not (store / ".model_store" / "stale-repo").exists()
    # The hand-copied file an instance uses, the declared file, the repository, the files
    # inside a used directory, the backend's store and the declared file's stamps and
    # partial download all stay.
    for kept in (
        "hand-copied.gguf",
        "tiny.gguf",
        ".tiny.gguf.part",
        "tiny-llama-GGUF/README.md",
        "tiny-st/model.safetensors",
        "tiny-st/config.json",
        "ollama/blobs/sha256-abc",
        ".model_store/tiny.gguf.json",
        ".model_store/tiny-llama-GGUF/repo.json",
    ):
        assert (store / kept).exists(), kept
    assert "removed: old.gguf (400 B)" in out["report"]
    assert "removed: .model_store/stale-repo (its stamp or record)" in out["report"]


def test_prune_again_finds_nothing_to_remove(store, captured):
    assert run_module(args_for(store, prune=True)) == 0
    captured()
    assert run_module(args_for(store, prune=True)) == 0
    out = captured()
    assert out["changed"] is False and out["removed"] == [] and out["unused"] == []
    assert "removed: nothing" in out["report"]


def test_prune_keeps_a_declared_file_that_no_instance_uses(store, captured):
    args = args_for(store, prune=True)
    args["used"] = [u for u in args["used"] if u["path"] != "tiny.gguf"]
    assert run_module(args) == 0
    out = captured()
    assert by_path(out)["tiny.gguf"]["users"] == [] and by_path(out)["tiny.gguf"]["unused"] is False
    assert (store / "tiny.gguf").exists() and "tiny.gguf" not in out["removed"]
    assert any(
        line.startswith("tiny.gguf ") and "declared; not used by any instance" in line
        for line in out["report"]
    )


def test_prune_keeps_the_files_beside_a_model_inside_an_undeclared_directory(tmp_path, captured):
    root = tmp_path / "store"
    write(root / "vision" / "model.gguf", 100)
    write(root / "vision" / "mmproj.gguf", 10)
    write(root / "unused-dir" / "model.gguf", 100)
    args = {"path": str(root), "used": [{"path": "vision/model.gguf", "users": ["ws/v"]}], "prune": True}
    assert run_module(args) == 0
    out = captured()
    assert out["removed"] == ["unused-dir"]
    assert by_path(out)["vision"]["users"] == ["ws/v"]
    assert (root / "vision" / "mmproj.gguf").exists()


def test_prune_walks_into_a_directory_that_only_holds_declared_files(tmp_path, captured):
    root = tmp_path / "store"
    write(root / "sub" / "declared.gguf", 100)
    write(root / "sub" / "stray.gguf", 50)
    write(root / ".model_store" / "sub" / "declared.gguf.json", 5)
    write(root / ".model_store" / "sub" / "stray.gguf.json", 5)
    assert run_module({"path": str(root), "declared": ["sub/declared.gguf"], "prune": True}) == 0
    out = captured()
    assert set(by_path(out)) == {"sub/declared.gguf", "sub/stray.gguf"}
    assert out["removed"] == ["sub/stray.gguf"]
    assert out["stamps_removed"] == [".model_store/sub/stray.gguf.json"]
    assert (root / "sub" / "declared.gguf").exists() and not (root / "sub" / "stray.gguf").exists()
    assert (root / ".model_store" / "sub" / "declared.gguf.json").exists()


def test_check_mode_removes_nothing_and_lists_what_would_go(store, captured):
    before = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    assert run_module(args_for(store, prune=True), check_mode=True) == 0
    out = captured()
    assert out["changed"] is True
    assert out["removed"] == ["old.gguf", "stale-repo"]
    assert out["stamps_removed"] == [".model_store/old.gguf.json", ".model_store/stale-repo"]
    assert "would remove: old.gguf (400 B)" in out["report"]
    assert "would remove: stale-repo (606 B)" in out["report"]
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == before


def test_the_other_parts_of_a_split_set_and_a_links_target_count_as_used(tmp_path, captured):
    root = tmp_path / "store"
    for part in (1, 2, 3):
        write(root / f"Big-Q4_K_M-0000{part}-of-00003.gguf", 10)
    write(root / "real.gguf", 10)
    (root / "current.gguf").symlink_to("real.gguf")
    write(root / "Other-00002-of-00002.gguf", 10)
    used = [
        {"path": "Big-Q4_K_M-00001-of-00003.gguf", "users": ["ws/big"]},
        {"path": "current.gguf", "users": ["ws/cur"]},
    ]
    assert run_module({"path": str(root), "used": used, "prune": True}) == 0
    out = captured()
    assert out["removed"] == ["Other-00002-of-00002.gguf"]
    assert by_path(out)["Big-Q4_K_M-00003-of-00003.gguf"]["users"] == ["ws/big"]
    assert by_path(out)["real.gguf"]["users"] == ["ws/cur"] and by_path(out)["current.gguf"]["type"] == "link"
    assert (root / "real.gguf").exists() and (root / "Big-Q4_K_M-00002-of-00003.gguf").exists()


def test_an_unused_link_out_of_the_store_is_removed_and_its_target_left_alone(tmp_path, captured):
    outside = write(tmp_path / "elsewhere" / "big.gguf", 5000)
    root = tmp_path / "store"
    root.mkdir()
    (root / "big.gguf").symlink_to(outside)
    (root / "elsewhere").symlink_to(outside.parent)
    assert run_module({"path": str(root), "prune": True}) == 0
    out = captured()
    assert sorted(out["removed"]) == ["big.gguf", "elsewhere"]
    assert all(item["size"] < 5000 for item in out["items"])  # links are not followed
    assert outside.exists() and not os.path.lexists(root / "big.gguf")


def test_backend_stores_nfs_silly_renames_lost_found_and_undeclared_partials(tmp_path, captured):
    root = tmp_path / "store"
    write(root / "lost+found" / "#1234", 10)
    write(root / ".nfs000000000123abcd00000001", 10)
    write(root / "backends" / "ollama" / "blobs" / "sha256-x", 10)
    write(root / "backends" / "leftover.gguf", 10)
    write(root / ".dropped.gguf.part", 10)  # the download of an entry no longer declared
    args = {"path": str(root), "protected": ["backends/ollama"], "prune": True}
    assert run_module(args) == 0
    out = captured()
    assert set(by_path(out)) == {"backends/ollama", "backends/leftover.gguf", ".dropped.gguf.part"}
    assert sorted(out["removed"]) == [".dropped.gguf.part", "backends/leftover.gguf"]
    assert (root / "lost+found" / "#1234").exists() and (root / ".nfs000000000123abcd00000001").exists()
    assert (root / "backends" / "ollama" / "blobs" / "sha256-x").exists()


def test_missing_declared_and_used_paths_are_listed(tmp_path, captured):
    root = tmp_path / "store"
    root.mkdir()
    args = {"path": str(root), "declared": ["gone.gguf"], "used": [{"path": "lost.gguf", "users": ["ws/a"]}]}
    assert run_module(args) == 0
    out = captured()
    assert out["missing"] == [
        {"path": "gone.gguf", "declared": True, "users": []},
        {"path": "lost.gguf", "declared": False, "users": ["ws/a"]},
    ]
    assert "missing: lost.gguf (used by ws/a)" in out["report"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            {"used": [{"path": "../outside.gguf", "users": ["ws/a"]}]},
            "used[0]: '../outside.gguf' is not a path inside the store",
        ),
        ({"used": [{"path": "a/../../x", "users": []}]}, "is not a path inside the store"),
        ({"used": [{"path": "/etc/passwd", "users": []}]}, "used[0]: '/etc/passwd' is absolute"),
        ({"declared": [".."]}, "declared[0]: '..' is not a path inside the store"),
        ({"repositories": ["."]}, "repositories[0]: '.' is not a path inside the store"),
        ({"protected": ["/srv"]}, "protected[0]: '/srv' is absolute"),
    ],
)
def test_paths_that_leave_the_store_are_refused_and_nothing_is_removed(store, captured, extra, message):
    assert run_module(args_for(store, prune=True, **extra)) == 1
    out = captured()
    assert out["failed"] is True and message in out["msg"]
    assert (store / "old.gguf").exists()


def test_a_store_path_that_is_not_a_directory_is_refused(tmp_path, captured):
    assert run_module({"path": str(tmp_path / "nope")}) == 1
    assert "is not a directory" in captured()["msg"]


def test_module_documentation_parses_and_ansible_doc_reads_it():
    path = os.path.join(LIBRARY, "model_store_inventory.py")
    parsed = {name: yaml.safe_load(text) for name, text in docs(path).items()}
    assert parsed["DOCUMENTATION"]["module"] == "model_store_inventory"
    assert set(parsed["DOCUMENTATION"]["options"]) == {
        "path",
        "declared",
        "repositories",
        "used",
        "protected",
        "stamp_dir",
        "prune",
    }
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-doc"), "-M", LIBRARY, "-t", "module", "model_store_inventory"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "model_store_inventory" in proc.stdout and "prune" in proc.stdout


# playbooks/store_report.yml, for real: two hosts on this machine, the store under tmp_path.


def write_lab(tmp_path, client_instances=None, **extra_vars):
    root = tmp_path / "store"
    write(root / "tiny.gguf", 1000)
    write(root / ".model_store" / "tiny.gguf.json", 10)
    write(root / "ollama" / "blobs" / "sha256-abc", 500)
    write(root / "hand-copied.gguf", 3000)
    write(root / "old.gguf", 400)
    write(root / ".model_store" / "old.gguf.json", 10)
    write(root / "stale-dir" / "model.gguf", 600)
    mount = "/media/data/models-of-the-test"
    variables = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "model_store": {"server": "storesrv", "path": str(root), "mount_path": mount, "clients": ["client"]},
        "model_store_models": [{"name": "tiny.gguf", "src": str(tmp_path / "sources" / "tiny.gguf")}],
    }
    variables.update(extra_vars)
    if client_instances is None:
        client_instances = [
            # An absolute path under the client's mount: the hand-copied file, not declared.
            {"name": "chat", "backend": "llamacpp", "model": f"{mount}/hand-copied.gguf", "port": 8080},
            {"name": "coder", "backend": "textgen", "model": "tiny.gguf", "port": 7861, "api_port": 5010},
            # An instance being removed does not keep its model.
            {"name": "gone", "backend": "llamacpp", "model": "old.gguf", "port": 8081, "state": "absent"},
        ]
    inventory = {
        "all": {
            "vars": variables,
            "hosts": {
                "storesrv": {
                    "model_instances": [
                        {"name": "tiny", "backend": "llamacpp", "model": "tiny.gguf", "port": 8082}
                    ]
                },
                "client": {"model_instances": client_instances},
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(json.dumps(inventory))  # JSON is YAML
    return root, str(path)


def run_report(tmp_path, inventory, *extra):
    proc = subprocess.run(
        [PLAYBOOK_BIN, "-i", inventory, "playbooks/store_report.yml", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
            ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-tmp"),
        ),
    )
    return proc, proc.stdout + proc.stderr


def files_of(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


needs_playbook = pytest.mark.skipif(
    not os.path.exists(PLAYBOOK_BIN), reason="ansible-playbook is not beside this Python"
)


@needs_playbook
def test_playbook_reports_then_check_shows_what_would_go_then_prune_removes_only_that(tmp_path):
    root, inventory = write_lab(tmp_path)
    before = files_of(root)

    proc, output = run_report(tmp_path, inventory)
    assert proc.returncode == 0, output
    assert "hand-copied.gguf" in output and "used by client/chat" in output
    assert "declared; used by client/coder, storesrv/tiny" in output
    assert "UNUSED" in output and "nothing removed (model_store_prune is false)" in output
    assert "total: 5.4 KiB in 5 items; unused: 1000 B in 2 items" in output
    assert files_of(root) == before

    proc, output = run_report(tmp_path, inventory, "-e", "model_store_prune=true", "--check")
    assert proc.returncode == 0, output
    assert "would remove: old.gguf (400 B)" in output and "would remove: stale-dir (600 B)" in output
    assert "would remove: .model_store/old.gguf.json (its stamp or record)" in output
    assert files_of(root) == before

    proc, output = run_report(tmp_path, inventory, "-e", "model_store_prune=true")
    assert proc.returncode == 0, output
    assert "removed: old.gguf (400 B)" in output and "removed: stale-dir (600 B)" in output
    assert files_of(root) == [
        ".model_store/tiny.gguf.json",
        "hand-copied.gguf",
        "ollama/blobs/sha256-abc",
        "tiny.gguf",
    ]
    assert "storesrv                   : ok=" in output and "client                     : ok=" in output
    assert "client                     : ok=3    changed=0" in output


@needs_playbook
def test_playbook_counts_store_paths_in_flags_and_lists_models_outside_the_store(tmp_path):
    write(tmp_path / "store" / "mmproj.gguf", 10)
    instances = [
        {
            "name": "vision",
            "backend": "llamacpp",
            "model": "/opt/models/vision.gguf",
            "port": 8080,
            "flags": ["--mmproj /media/data/models-of-the-test/mmproj.gguf"],
        },
        {"name": "up", "backend": "llamacpp", "model": "../up.gguf", "port": 8081},
    ]
    root, inventory = write_lab(tmp_path, instances)
    proc, output = run_report(tmp_path, inventory, "-e", "model_store_prune=true")
    assert proc.returncode == 0, output
    assert (root / "mmproj.gguf").exists()
    assert "used by client/vision" in output
    assert "outside the store, not checked: client/vision: /opt/models/vision.gguf" in output
    assert "outside the store, not checked: client/up: ../up.gguf" in output
    assert not (root / "hand-copied.gguf").exists()  # nothing uses it any more


@needs_playbook
@pytest.mark.parametrize(
    "extra_vars, message",
    [
        ({"model_store": "oops"}, "model_store is not set"),
        (
            {"model_store": {"server": "nas", "path": "/srv/m", "mount_path": "/m", "clients": []}},
            'model_store.server "nas" is not a host of this inventory',
        ),
        (
            {"model_store_directories": ["ollama", "../etc"]},
            'model_store_directories ["../etc"] must stay inside the store',
        ),
    ],
)
def test_playbook_refuses_bad_input_naming_the_variable(tmp_path, extra_vars, message):
    root, inventory = write_lab(tmp_path, **extra_vars)
    before = files_of(root)
    proc, output = run_report(tmp_path, inventory, "-e", "model_store_prune=true")
    assert proc.returncode != 0 and message in output, output
    assert files_of(root) == before


@needs_playbook
def test_playbook_refuses_to_prune_when_a_limit_leaves_hosts_out(tmp_path):
    root, inventory = write_lab(tmp_path)
    before = files_of(root)
    proc, output = run_report(tmp_path, inventory, "-e", "model_store_prune=true", "--limit", "storesrv")
    assert proc.returncode != 0, output
    assert "the instances of client were not read" in output
    assert files_of(root) == before
