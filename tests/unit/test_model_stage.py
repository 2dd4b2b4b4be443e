"""plugins/modules/model_stage.py: local copies of store models, verified, reused, pruned.

The store records are the model_store role's (roles/model_store/action_plugins/
model_store_fetch.py writes ``{algo, digest, size, mtime}`` to ``.model_store/<name>.json``
and, for a repository entry, ``.model_store/<repo>/files/<path>.json``)."""

import hashlib
import json

import model_stage
import pytest
from module_run import run_main


def run_module(args, capsys, check_mode=False):
    return run_main(model_stage.main, args, check_mode), json.loads(capsys.readouterr().out)


def put(path, data, record=None, algo="sha256"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        if algo == "git-sha1":
            digest = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        else:
            digest = hashlib.sha256(data).hexdigest()
        record.write_text(json.dumps({"algo": algo, "digest": digest, "size": len(data), "mtime": 0}))


@pytest.fixture
def store(tmp_path):
    """A store with a file entry, a repository entry (an LFS file and a small git blob) and
    a hand-copied file with no record."""
    root = tmp_path / "store"
    meta = root / ".model_store"
    put(root / "tiny.gguf", b"GGUF" + b"\1" * 5000, meta / "tiny.gguf.json")
    put(root / "repo" / "model.safetensors", b"\2" * 7000, meta / "repo" / "files" / "model.safetensors.json")
    put(root / "repo" / "config.json", b'{"a": 1}', meta / "repo" / "files" / "config.json.json", "git-sha1")
    put(root / "repo" / ".gitattributes", b"*.safetensors lfs")
    put(root / "hand.gguf", b"GGUF" + b"\3" * 100)
    return root


def args(tmp_path, store, *models):
    stage = tmp_path / "stage"
    return {
        "dir": str(stage),
        "store": str(store),
        "models": [{"src": str(store / m), "dest": str(stage / m)} for m in models],
    }


def test_models_are_copied_verified_and_reused_unchanged(tmp_path, store, capsys):
    a = args(tmp_path, store, "tiny.gguf", "repo")
    rc, out = run_module(a, capsys)
    assert rc == 0 and out["changed"] is True, out
    assert sorted(out["copied"]) == ["repo/config.json", "repo/model.safetensors", "tiny.gguf"]
    assert out["unverified"] == [] and out["bytes_copied"] == 5004 + 7000 + 8
    stage = tmp_path / "stage"
    assert (stage / "tiny.gguf").read_bytes() == (store / "tiny.gguf").read_bytes()
    assert (stage / "repo" / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (stage / "tiny.gguf").stat().st_mtime_ns == (store / "tiny.gguf").stat().st_mtime_ns
    stamp = json.loads((stage / ".stage" / "tiny.gguf.json").read_text())
    assert (
        stamp["verified"] is True
        and stamp["digest"] == hashlib.sha256((store / "tiny.gguf").read_bytes()).hexdigest()
    )
    assert not (stage / "repo" / ".gitattributes").exists()  # hidden files are not model files
    rc, again = run_module(a, capsys)
    assert rc == 0 and again["changed"] is False and again["copied"] == []
    assert sorted(again["reused"]) == ["repo/config.json", "repo/model.safetensors", "tiny.gguf"]


def test_a_store_file_that_does_not_match_its_record_is_not_staged(tmp_path, store, capsys):
    (store / "tiny.gguf").write_bytes(b"GGUF" + b"\0" * 5000)  # damaged behind the record's back
    rc, out = run_module(args(tmp_path, store, "tiny.gguf"), capsys)
    assert rc == 1 and out["failed"]
    assert "tiny.gguf has sha256" in out["msg"] and "as the store's record says" in out["msg"]
    stage = tmp_path / "stage"
    assert not (stage / "tiny.gguf").exists() and not (stage / ".tiny.gguf.part").exists()


def test_a_hand_copied_model_is_staged_and_reported_unverified(tmp_path, store, capsys):
    rc, out = run_module(args(tmp_path, store, "hand.gguf"), capsys)
    assert rc == 0 and out["unverified"] == ["hand.gguf"]


def test_a_changed_store_file_is_copied_again(tmp_path, store, capsys):
    a = args(tmp_path, store, "hand.gguf")
    run_module(a, capsys)
    (store / "hand.gguf").write_bytes(b"GGUF" + b"\4" * 200)
    rc, out = run_module(a, capsys)
    assert rc == 0 and out["copied"] == ["hand.gguf"]
    assert (tmp_path / "stage" / "hand.gguf").read_bytes() == b"GGUF" + b"\4" * 200


def test_models_no_longer_staged_and_partial_copies_are_removed(tmp_path, store, capsys):
    run_module(args(tmp_path, store, "tiny.gguf", "repo"), capsys)
    stage = tmp_path / "stage"
    (stage / "repo" / ".model.safetensors.part").write_bytes(b"half")
    (stage / "notes.txt").write_text("a file the module did not stage")
    check_rc, check = run_module(args(tmp_path, store, "tiny.gguf"), capsys, check_mode=True)
    assert check_rc == 0 and check["changed"] is True
    assert (stage / "repo" / "model.safetensors").exists()  # check mode removes nothing
    rc, out = run_module(args(tmp_path, store, "tiny.gguf"), capsys)
    assert rc == 0 and out["removed"] == check["removed"]
    assert "repo/.model.safetensors.part" in out["removed"] and "repo/model.safetensors" in out["removed"]
    left = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
    assert left == [".stage", ".stage/tiny.gguf.json", "notes.txt", "tiny.gguf"]
    rc, empty = run_module(args(tmp_path, store), capsys)
    assert rc == 0 and sorted(p.name for p in stage.iterdir()) == ["notes.txt"]


def test_check_mode_copies_nothing(tmp_path, store, capsys):
    rc, out = run_module(args(tmp_path, store, "tiny.gguf"), capsys, check_mode=True)
    assert rc == 0 and out["changed"] is True and out["copied"] == ["tiny.gguf"]
    assert not (tmp_path / "stage").exists()


def test_a_host_without_staged_models_changes_nothing(tmp_path, store, capsys):
    rc, out = run_module(args(tmp_path, store), capsys)
    assert rc == 0 and out["changed"] is False and not (tmp_path / "stage").exists()


def test_too_little_free_space_copies_nothing_and_gives_the_numbers(tmp_path, store, capsys, monkeypatch):
    monkeypatch.setattr(model_stage, "_free_bytes", lambda path: 4096)
    rc, out = run_module(args(tmp_path, store, "tiny.gguf", "repo"), capsys)
    assert rc == 1
    assert "has 0 MiB free, and the models to stage need 1 MiB" in out["msg"]
    assert "nothing was copied" in out["msg"] and not (tmp_path / "stage").exists()


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"src": "/etc/passwd", "dest": "STAGE/passwd"}, "is not in the model store"),
        ({"src": "STORE/tiny.gguf", "dest": "/tmp/elsewhere.gguf"}, "is not in the staging directory"),
        ({"src": "STORE/missing.gguf", "dest": "STAGE/missing.gguf"}, "is not in the store (no such file"),
    ],
)
def test_paths_outside_the_store_or_the_staging_directory_are_refused(tmp_path, store, capsys, bad, message):
    stage = tmp_path / "stage"
    item = {k: v.replace("STORE", str(store)).replace("STAGE", str(stage)) for k, v in bad.items()}
    rc, out = run_module({"dir": str(stage), "store": str(store), "models": [item]}, capsys)
    assert rc == 1 and message in out["msg"], out["msg"]
