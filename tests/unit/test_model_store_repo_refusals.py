"""The model_store role refuses bad Hugging Face repository entries and files that fail their
checksum (sha256 of an LFS file, git blob id of a small one) with a message naming the entry,
leaving nothing under the final names (run against localhost and the Hub stand-in)."""

import pytest
from model_store_play import Store, commit_of, needs_playbook

pytestmark = needs_playbook


def test_a_file_whose_checksum_does_not_match_fails_leaving_nothing_under_its_name(tmp_path, hub):
    store = Store(tmp_path, hub)
    # The Hub listed the sha256 of the file it had; the CDN now serves other bytes.
    (hub.files / "tiny-Q8_0.gguf").write_bytes(b"GGUF" + b"\0" * 796)
    result = store.run(
        [{"name": "q8", "repo": "ailab/tiny-gguf", "revision": commit_of(hub), "include": ["*Q8_0*"]}]
    )
    assert result["failed"] == 1
    assert "q8/tiny-Q8_0.gguf: checksum mismatch" in store.output
    assert store.files("q8") == []


def test_a_changed_small_file_fails_its_git_blob_id(tmp_path, hub):
    store = Store(tmp_path, hub)
    commit = commit_of(hub)
    blob = hub.repos["ailab/tiny-gguf"].commits[commit]["README.md"]
    blob.text = b"# tiny-gguf\ntampered\n"  # the same size would not matter: the content is hashed
    result = store.run(
        [{"name": "t", "repo": "ailab/tiny-gguf", "revision": commit, "include": ["README.md"]}]
    )
    assert result["failed"] == 1
    assert "t/README.md: checksum mismatch" in store.output and "git-sha1" in store.output
    assert store.files("t") == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"revision": "main"},
            "model_store_models[0] (m).revision 'main' is a branch, a tag or a short id",
        ),
        ({"revision": "0" * 40}, "model_store_models[m]: revision '" + "0" * 40 + "' does not exist"),
        ({"include": ["*Q4_K_M*"]}, "model_store_models[m]: include ['*Q4_K_M*'] and exclude [] match none"),
    ],
)
def test_bad_repository_entries_fail_naming_the_entry_and_write_nothing(tmp_path, hub, entry, message):
    store = Store(tmp_path, hub)
    result = store.run([dict({"name": "m", "repo": "ailab/tiny-gguf", "revision": commit_of(hub)}, **entry)])
    assert result["failed"] == 1
    assert message in store.output, store.output
    assert not (store.path / "m").exists()
    assert not (store.path / ".model_store" / "m").exists()
    assert not any("/resolve/" in line or line.startswith("cdn") for line in hub.lines)
