"""The model_store role with Hugging Face repository entries, run against localhost and the
Hub stand-in (tests/standins/hf_hub/): files fetched into <store>/<name>/…, verified (sha256
for LFS files, git blob id for small ones), no network once complete, an interrupted fetch
completed by fetching only what is missing, moving revisions, private repositories, removal."""

import json
import os

from hf_hub_fixtures import PRIVATE_TOKEN
from model_store_play import Store, commit_of, needs_playbook, sha256_of

pytestmark = needs_playbook


def test_repositories_are_fetched_verified_and_cost_no_network_when_complete(tmp_path, hub):
    store = Store(tmp_path, hub)
    models = [
        {"name": "tiny-gguf", "repo": "ailab/tiny-gguf", "revision": commit_of(hub), "exclude": ["*Q8_0*"]},
        {
            "name": "hf/tiny-llama",
            "repo": "ailab/tiny-llama-hf",
            "revision": commit_of(hub, "ailab/tiny-llama-hf"),
        },
    ]
    first = store.run(models)
    assert first["failed"] == 0, store.output
    assert first["changed"] > 0
    assert store.files("tiny-gguf") == ["README.md", "tiny-F32.gguf"]
    assert sha256_of(store.path / "tiny-gguf" / "tiny-F32.gguf") == sha256_of(hub.files / "tiny-F32.gguf")
    assert (store.path / "tiny-gguf" / "README.md").read_text() == "# tiny-gguf\nsecond\n"
    assert store.files("hf/tiny-llama") == sorted(os.listdir(hub.files / "hf") + ["extra/notes.txt"])
    assert (store.path / "hf/tiny-llama/extra").stat().st_mode & 0o777 == 0o755
    stamps = store.path / ".model_store" / "tiny-gguf"
    assert json.loads((stamps / "files" / "README.md.json").read_text())["algo"] == "git-sha1"
    assert json.loads((stamps / "files" / "tiny-F32.gguf.json").read_text())["algo"] == "sha256"
    assert json.loads((stamps / "repo.json").read_text())["commit"] == commit_of(hub)
    assert [line for line in hub.lines if line.startswith("hub GET /api/")] != []

    second = store.run(models)
    assert second == {"changed": 0, "failed": 0}, store.output
    assert hub.lines == []  # neither the Hub nor its CDN was asked
    check = store.run(models, check=True)
    assert check == {"changed": 0, "failed": 0}, store.output
    assert hub.lines == []


def test_an_interrupted_repository_fetch_is_completed_fetching_only_what_is_missing(tmp_path, hub):
    store = Store(tmp_path, hub)
    models = [{"name": "tiny-gguf", "repo": "ailab/tiny-gguf", "revision": commit_of(hub)}]
    assert store.run(models)["failed"] == 0, store.output
    # What an interrupted run leaves: one file placed (README.md), one half downloaded, one not begun.
    repo = store.path / "tiny-gguf"
    data = (repo / "tiny-F32.gguf").read_bytes()
    half = len(data) // 2
    (repo / ".tiny-F32.gguf.part").write_bytes(data[:half])
    (repo / "tiny-F32.gguf").unlink()
    (repo / "tiny-Q8_0.gguf").unlink()
    for stamp in ("tiny-F32.gguf.json", "tiny-Q8_0.gguf.json"):
        (store.path / ".model_store" / "tiny-gguf" / "files" / stamp).unlink()

    rerun = store.run(models)
    assert rerun["failed"] == 0, store.output
    gets = [line for line in hub.lines if " GET " in line]
    f32, q8 = hub.repos["ailab/tiny-gguf"].commits[commit_of(hub)]["tiny-F32.gguf"].sha256, None
    q8 = hub.repos["ailab/tiny-gguf"].commits[commit_of(hub)]["tiny-Q8_0.gguf"].sha256
    assert [g for g in gets if g.startswith("cdn GET")] == [g for g in gets if "/lfs/" in g]
    assert any(f"/lfs/{f32} range=bytes={half}-" in g for g in gets), gets
    assert any(f"/lfs/{q8} range=-" in g or f"/lfs/{q8} range=bytes=0-" in g for g in gets), gets
    assert not any("README.md" in g or "/api/" in g for g in gets), gets
    assert sha256_of(repo / "tiny-F32.gguf") == sha256_of(hub.files / "tiny-F32.gguf")
    assert sha256_of(repo / "tiny-Q8_0.gguf") == sha256_of(hub.files / "tiny-Q8_0.gguf")
    assert sorted(os.listdir(repo)) == ["README.md", "tiny-F32.gguf", "tiny-Q8_0.gguf"]


def test_an_allowed_branch_is_fetched_at_its_commit_and_recorded(tmp_path, hub):
    store = Store(tmp_path, hub)
    models = [{"name": "m", "repo": "ailab/tiny-gguf", "revision": "v1.0", "allow_moving_revision": True}]
    assert store.run(models)["failed"] == 0, store.output
    assert store.files("m") == ["README.md", "tiny-F32.gguf"]
    assert (store.path / "m" / "README.md").read_text() == "# tiny-gguf\nfirst\n"
    record = json.loads((store.path / ".model_store" / "m" / "repo.json").read_text())
    assert (record["revision"], record["commit"]) == ("v1.0", commit_of(hub, ref="v1.0"))
    again = store.run(models)
    assert again == {"changed": 0, "failed": 0}, store.output
    assert [line for line in hub.lines if " GET " in line and "/api/" not in line] == []


def test_a_private_repository_is_fetched_with_its_token_kept_out_of_output_and_store(tmp_path, hub):
    store = Store(tmp_path, hub)
    models = [{"name": "p", "repo": "ailab/private-gguf", "revision": commit_of(hub, "ailab/private-gguf")}]
    result = store.run(
        models, model_store_hf_token=PRIVATE_TOKEN, __model_store_auth_dir=str(tmp_path / "auth")
    )
    assert result["failed"] == 0, store.output
    assert store.files("p") == ["tiny-Q8_0.gguf"]
    assert PRIVATE_TOKEN not in store.output
    assert not any(
        PRIVATE_TOKEN in p.read_text(errors="replace") for p in store.path.rglob("*") if p.is_file()
    )
    assert os.listdir(tmp_path / "auth") == []  # the header file is gone once curl ended
    resolves = [line for line in hub.lines if "private-gguf/resolve" in line]
    assert resolves and all("auth=yes" in line for line in resolves)
    assert all("auth=no" in line for line in hub.lines if line.startswith("cdn"))


def test_an_absent_repository_is_removed_with_its_stamps(tmp_path, hub):
    store = Store(tmp_path, hub)
    entry = {"name": "m", "repo": "ailab/tiny-gguf", "revision": commit_of(hub), "include": ["README.md"]}
    assert store.run([entry])["failed"] == 0, store.output
    assert store.run([{"name": "m", "repo": "ailab/tiny-gguf", "state": "absent"}])["failed"] == 0, (
        store.output
    )
    assert not (store.path / "m").exists()
    assert not (store.path / ".model_store" / "m").exists()
