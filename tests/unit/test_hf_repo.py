"""plugins/module_utils/hf_repo.py: resolving a repository entry of the model store against
the Hugging Face Hub stand-in (commit pinning, moving revisions, include/exclude, errors, and
no network once the record answers) and the hf_repo_manifest module around it."""

import hashlib
import json

import pytest
from ansible.module_utils import hf_repo
from hf_hub_fixtures import PRIVATE_TOKEN
from module_run import run_main


def _commits(hub, repo="ailab/tiny-gguf"):
    return hub.repos[repo].refs


def _entry(**kwargs):
    return dict({"name": "tiny", "repo": "ailab/tiny-gguf", "include": [], "exclude": []}, **kwargs)


def _api_requests(hub):
    return [line for line in hub.lines if line.startswith("hub GET /api/")]


def test_a_commit_is_resolved_once_then_read_from_the_record_without_the_hub(hub, tmp_path):
    record = tmp_path / "store" / ".model_store" / "tiny" / "repo.json"
    entry = _entry(revision=_commits(hub)["main"])
    first = hf_repo.resolve(entry, str(record), hub.endpoint)
    assert (first["changed"], first["network"]) == (True, True)
    assert first["manifest"]["commit"] == entry["revision"]
    assert json.loads(record.read_text()) == first["manifest"]
    assert len(_api_requests(hub)) == 1

    hub.stop()  # the Hub is gone: the record must answer alone
    second = hf_repo.resolve(entry, str(record), hub.endpoint)
    assert (second["changed"], second["network"]) == (False, False)
    assert second["manifest"] == first["manifest"]


def test_every_file_carries_its_checksum_size_and_url_at_the_commit(hub, tmp_path):
    commit = _commits(hub)["main"]
    manifest = hf_repo.resolve(_entry(revision=commit), str(tmp_path / "r.json"), hub.endpoint)["manifest"]
    files = {f["path"]: f for f in manifest["files"]}
    assert sorted(files) == ["README.md", "tiny-F32.gguf", "tiny-Q8_0.gguf"]
    gguf = (hub.files / "tiny-F32.gguf").read_bytes()
    assert files["tiny-F32.gguf"]["algo"] == "sha256"
    assert files["tiny-F32.gguf"]["digest"] == hashlib.sha256(gguf).hexdigest()
    assert files["tiny-F32.gguf"]["size"] == len(gguf)
    assert files["README.md"]["algo"] == "git-sha1"
    assert files["README.md"]["digest"] == hf_repo.git_blob_sha1(b"# tiny-gguf\nsecond\n")
    assert files["tiny-F32.gguf"]["url"] == f"{hub.endpoint}/ailab/tiny-gguf/resolve/{commit}/tiny-F32.gguf"


def test_a_changed_include_asks_the_hub_again(hub, tmp_path):
    record = str(tmp_path / "r.json")
    commit = _commits(hub)["main"]
    hf_repo.resolve(_entry(revision=commit), record, hub.endpoint)
    again = hf_repo.resolve(_entry(revision=commit, include=["*Q8_0.gguf"]), record, hub.endpoint)
    assert (again["changed"], again["network"]) == (True, True)
    assert [f["path"] for f in again["manifest"]["files"]] == ["tiny-Q8_0.gguf"]


def test_another_endpoint_asks_the_hub_again(hub, tmp_path):
    record = str(tmp_path / "r.json")
    entry = _entry(revision=_commits(hub)["main"])
    hf_repo.resolve(entry, record, hub.endpoint)
    mirror = hub.endpoint.replace("127.0.0.1", "localhost")
    again = hf_repo.resolve(entry, record, mirror)
    assert again["network"] and again["manifest"]["files"][0]["url"].startswith(mirror)


def test_a_branch_is_refused_without_the_allowance_before_asking_the_hub(hub, tmp_path):
    with pytest.raises(hf_repo.HubError) as err:
        hf_repo.resolve(_entry(revision="main"), str(tmp_path / "r.json"), hub.endpoint)
    assert str(err.value).startswith("model_store_models[tiny]: revision 'main' is a branch, a tag")
    assert "allow_moving_revision: true" in str(err.value)
    assert _api_requests(hub) == []
    assert not (tmp_path / "r.json").exists()


def test_a_short_commit_id_counts_as_moving(hub, tmp_path):
    with pytest.raises(hf_repo.HubError, match="can move"):
        hf_repo.resolve(_entry(revision=_commits(hub)["main"][:12]), str(tmp_path / "r.json"), hub.endpoint)


def test_an_allowed_branch_is_resolved_every_run_and_its_commit_recorded(hub, tmp_path):
    record = tmp_path / "r.json"
    entry = _entry(revision="main", allow_moving_revision=True)
    first = hf_repo.resolve(entry, str(record), hub.endpoint)
    assert first["manifest"]["commit"] == _commits(hub)["main"]
    assert json.loads(record.read_text())["commit"] == _commits(hub)["main"]
    second = hf_repo.resolve(entry, str(record), hub.endpoint)
    assert (second["changed"], second["network"], second["moved_from"]) == (False, True, None)
    assert len(_api_requests(hub)) == 2


def test_a_moved_branch_is_recorded_with_the_commit_it_moved_from(hub, tmp_path):
    record = tmp_path / "r.json"
    entry = _entry(revision="main", allow_moving_revision=True)
    refs = _commits(hub)
    refs["main"] = refs["v1.0"]  # the branch points at the older commit
    hf_repo.resolve(entry, str(record), hub.endpoint)
    refs["main"] = [c for c in hub.repos["ailab/tiny-gguf"].commits if c != refs["v1.0"]][0]
    moved = hf_repo.resolve(entry, str(record), hub.endpoint)
    assert moved["changed"] and moved["moved_from"] == refs["v1.0"]
    assert json.loads(record.read_text())["commit"] == refs["main"]
    assert "tiny-Q8_0.gguf" in [f["path"] for f in moved["manifest"]["files"]]


def test_a_tag_resolves_to_its_commit(hub, tmp_path):
    result = hf_repo.resolve(
        _entry(revision="v1.0", allow_moving_revision=True), str(tmp_path / "r.json"), hub.endpoint
    )
    assert result["manifest"]["commit"] == _commits(hub)["v1.0"]
    assert [f["path"] for f in result["manifest"]["files"]] == ["README.md", "tiny-F32.gguf"]


def test_an_include_matching_nothing_is_refused_naming_the_entry_and_the_files(hub, tmp_path):
    with pytest.raises(hf_repo.HubError) as err:
        hf_repo.resolve(
            _entry(revision=_commits(hub)["main"], include=["*Q4_K_M*.gguf"]),
            str(tmp_path / "r.json"),
            hub.endpoint,
        )
    message = str(err.value)
    assert message.startswith("model_store_models[tiny]: include ['*Q4_K_M*.gguf']")
    assert "match none of the 3 files of ailab/tiny-gguf" in message
    assert "tiny-Q8_0.gguf" in message
    assert not (tmp_path / "r.json").exists()


def test_a_commit_the_repo_does_not_have_is_refused(hub, tmp_path):
    with pytest.raises(hf_repo.HubError) as err:
        hf_repo.resolve(_entry(revision="0" * 40), str(tmp_path / "r.json"), hub.endpoint)
    assert str(err.value).startswith(
        f"model_store_models[tiny]: revision '{'0' * 40}' does not exist in ailab/tiny-gguf"
    )


def test_an_unknown_repository_is_refused(hub, tmp_path):
    with pytest.raises(
        hf_repo.HubError, match=r"model_store_models\[tiny\]: repository ailab/nope was not found"
    ):
        hf_repo.resolve(_entry(repo="ailab/nope", revision="0" * 40), str(tmp_path / "r.json"), hub.endpoint)


def test_a_private_repository_resolves_with_its_token_only(hub, tmp_path):
    entry = _entry(repo="ailab/private-gguf", revision=_commits(hub, "ailab/private-gguf")["main"])
    with pytest.raises(hf_repo.HubError, match="give a token"):
        hf_repo.resolve(entry, str(tmp_path / "r.json"), hub.endpoint)
    with pytest.raises(hf_repo.HubError, match="Invalid credentials"):
        hf_repo.resolve(entry, str(tmp_path / "r.json"), hub.endpoint, token="hf_wrong")
    result = hf_repo.resolve(entry, str(tmp_path / "r.json"), hub.endpoint, token=PRIVATE_TOKEN)
    assert [f["path"] for f in result["manifest"]["files"]] == ["tiny-Q8_0.gguf"]
    assert PRIVATE_TOKEN not in (tmp_path / "r.json").read_text()


def test_an_unreachable_hub_is_named(hub, tmp_path):
    endpoint = hub.endpoint
    hub.stop()
    with pytest.raises(
        hf_repo.HubError, match=r"model_store_models\[tiny\]: cannot reach the Hub at http://127"
    ):
        hf_repo.resolve(_entry(revision="0" * 40), str(tmp_path / "r.json"), endpoint, timeout=5)


def test_the_proxy_variable_carries_the_requests(hub, tmp_path):
    """A proxy that is not there fails the request: it was used (the endpoint itself answers)."""
    from loopback import free_port

    with pytest.raises(hf_repo.HubError, match="cannot reach the Hub"):
        hf_repo.resolve(
            _entry(revision="0" * 40),
            str(tmp_path / "r.json"),
            hub.endpoint,
            proxy=f"http://127.0.0.1:{free_port()}",
        )
    assert _api_requests(hub) == []


def test_check_mode_writes_no_record(hub, tmp_path):
    record = tmp_path / "r.json"
    result = hf_repo.resolve(
        _entry(revision=_commits(hub)["main"]), str(record), hub.endpoint, check_mode=True
    )
    assert result["changed"] and not record.exists()


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ([], [], ["README.md", "a/b.gguf", "x-Q4_K_M.gguf", "x-Q8_0.gguf"]),
        (["*Q4_K_M*"], [], ["x-Q4_K_M.gguf"]),
        (["*.gguf"], ["*Q8_0*"], ["a/b.gguf", "x-Q4_K_M.gguf"]),
        (["a/"], [], ["a/b.gguf"]),  # a directory pattern (upstream's _add_wildcard_to_directories)
        ("*.md", None, ["README.md"]),  # a single string, as upstream accepts
        (["*.GGUF"], [], []),  # case-sensitive (fnmatchcase)
    ],
)
def test_include_and_exclude_are_upstreams_globs(include, exclude, expected):
    paths = ["README.md", "a/b.gguf", "x-Q4_K_M.gguf", "x-Q8_0.gguf"]
    assert hf_repo.select_files(paths, include, exclude) == expected


def test_the_git_blob_id_is_gits():
    # git hash-object of "hello\n"
    assert hf_repo.git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_a_path_leaving_the_directory_is_refused():
    info = {"sha": "a" * 40, "siblings": [{"rfilename": "../x", "size": 1, "blobId": "b" * 40}]}
    with pytest.raises(hf_repo.HubError, match="refuses"):
        hf_repo.manifest_from_info("w", info, {"repo": "o/r", "revision": "a" * 40}, "http://h")


def test_a_small_file_without_blob_id_is_refused():
    info = {"sha": "a" * 40, "siblings": [{"rfilename": "x.json"}]}
    with pytest.raises(hf_repo.HubError, match="blobs=true"):
        hf_repo.manifest_from_info("w", info, {"repo": "o/r", "revision": "a" * 40}, "http://h")


# --- the module around it ---------------------------------------------------------------------


def _run_module(capsys, args, check_mode=False):
    import hf_repo_manifest

    run_main(hf_repo_manifest.main, args, check_mode)
    return json.loads(capsys.readouterr().out)


def test_the_module_resolves_then_answers_from_the_record(hub, tmp_path, capsys):
    args = {
        "name": "tiny",
        "repo": "ailab/tiny-gguf",
        "revision": _commits(hub)["main"],
        "include": ["*.gguf"],
        "endpoint": hub.endpoint,
        "record": str(tmp_path / "r.json"),
    }
    first = _run_module(capsys, args)
    assert first["changed"] and first["network"]
    assert [f["path"] for f in first["files"]] == ["tiny-F32.gguf", "tiny-Q8_0.gguf"]
    second = _run_module(capsys, args, check_mode=True)
    assert (second["changed"], second["network"], second["commit"]) == (False, False, args["revision"])


def test_the_module_fails_naming_the_entry_and_hides_the_token(hub, tmp_path, capsys):
    args = {
        "name": "tiny",
        "repo": "ailab/tiny-gguf",
        "revision": "main",
        "token": "hf_secret_value",
        "endpoint": hub.endpoint,
        "record": str(tmp_path / "r.json"),
    }
    out = _run_module(capsys, args)
    assert out["failed"] and out["msg"].startswith("model_store_models[tiny]: revision 'main'")
    assert "hf_secret_value" not in json.dumps(out)


def test_the_module_makes_the_entry_directories_in_the_same_call(hub, tmp_path, capsys):
    import grp
    import os
    import pwd

    import hf_repo_manifest

    owner, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    args = {
        "name": "tiny",
        "repo": "ailab/tiny-gguf",
        "revision": _commits(hub)["main"],
        "endpoint": hub.endpoint,
        "record": str(tmp_path / "r.json"),
        "directory": str(tmp_path / "store" / "tiny"),
        "owner": owner,
        "group": group,
        "dir_mode": "0750",
    }
    (tmp_path / "store").mkdir()
    check = _run_module(capsys, args, check_mode=True)
    assert check["directories"] == [args["directory"]] and not (tmp_path / "store" / "tiny").exists()
    first = _run_module(capsys, args)
    assert first["changed"] and first["directories"] == [args["directory"]]
    assert (tmp_path / "store" / "tiny").stat().st_mode & 0o7777 == 0o750
    again = _run_module(capsys, args)
    assert (again["changed"], again["network"], again["directories"]) == (False, False, [])
    # Nested files: every parent below the entry's directory, parents first; a wrong mode is corrected.
    nested = [{"path": "a/b/c.safetensors"}, {"path": "a/d.json"}, {"path": "e.json"}]
    base = str(tmp_path / "store" / "tiny")
    made = hf_repo_manifest.ensure_directories(base, nested, owner, group, "0750", False)
    assert made == [f"{base}/a", f"{base}/a/b"]
    os.chmod(f"{base}/a", 0o777)
    assert hf_repo_manifest.ensure_directories(base, nested, owner, group, "0750", False) == [f"{base}/a"]
    assert os.stat(f"{base}/a").st_mode & 0o7777 == 0o750
    # Numeric ids work as names do (the file module took both).
    ids = (str(os.getuid()), str(os.getgid()))
    assert hf_repo_manifest.ensure_directories(base, nested, *ids, "0750", False) == []
