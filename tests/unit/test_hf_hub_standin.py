"""The Hugging Face Hub stand-in speaks the Hub's download protocol: the official client,
huggingface_hub (pinned in requirements.txt), downloads byte-identical files from it, gets
the errors it maps from the Hub's X-Error-Code header, and reads the same model info the
model store's resolver (plugins/module_utils/hf_repo.py) reads."""

import hashlib
import os
import urllib.request

import pytest
from ansible.module_utils.hf_repo import fetch_info, git_blob_sha1, manifest_from_info
from hf_hub_fixtures import PRIVATE_TOKEN
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors.numpy import load_file


def _sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _download(hub, tmp_path, repo, **kwargs):
    return snapshot_download(
        repo,
        endpoint=hub.endpoint,
        cache_dir=tmp_path / "cache",
        local_dir=tmp_path / "out",
        token=False,
        **kwargs,
    )


def test_snapshot_download_gets_every_file_of_main_byte_identical(hub, tmp_path):
    out = _download(hub, tmp_path, "ailab/tiny-gguf")
    for name in ("tiny-F32.gguf", "tiny-Q8_0.gguf"):
        assert _sha256(os.path.join(out, name)) == _sha256(hub.files / name)
    with open(os.path.join(out, "README.md")) as fh:
        assert fh.read() == "# tiny-gguf\nsecond\n"


def test_snapshot_download_with_allow_patterns_gets_one_quantization(hub, tmp_path):
    out = _download(hub, tmp_path, "ailab/tiny-gguf", allow_patterns=["*Q8_0.gguf"])
    assert sorted(n for n in os.listdir(out) if not n.startswith(".")) == ["tiny-Q8_0.gguf"]


def test_a_tag_names_its_own_commit(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint, token=False)
    tag, main = api.model_info("ailab/tiny-gguf", revision="v1.0").sha, api.model_info("ailab/tiny-gguf").sha
    assert tag != main
    path = hf_hub_download(
        "ailab/tiny-gguf",
        "README.md",
        revision="v1.0",
        endpoint=hub.endpoint,
        cache_dir=tmp_path / "c",
        token=False,
    )
    assert f"/snapshots/{tag}/" in path
    with open(path) as fh:
        assert fh.read() == "# tiny-gguf\nfirst\n"
    assert sorted(s.rfilename for s in api.model_info("ailab/tiny-gguf", revision=tag).siblings) == [
        "README.md",
        "tiny-F32.gguf",
    ]


def test_a_safetensors_directory_with_a_subdirectory_loads(hub, tmp_path):
    out = _download(hub, tmp_path, "ailab/tiny-llama-hf")
    shards = sorted(n for n in os.listdir(out) if n.endswith(".safetensors"))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert "model.embed_tokens.weight" in {
        **load_file(os.path.join(out, shards[0])),
        **load_file(os.path.join(out, shards[1])),
    }
    with open(os.path.join(out, "extra", "notes.txt")) as fh:
        assert fh.read() == "a file in a subdirectory\n"


def test_lfs_file_metadata_is_on_the_redirect_and_the_cdn_is_another_origin(hub):
    """get_hf_file_metadata (file_download.py) reads X-Repo-Commit, X-Linked-Etag and X-Linked-Size from the 302."""
    commit = HfApi(endpoint=hub.endpoint, token=False).model_info("ailab/tiny-gguf").sha
    url = hf_hub_url("ailab/tiny-gguf", "tiny-F32.gguf", endpoint=hub.endpoint)
    meta = get_hf_file_metadata(url, token=False, endpoint=hub.endpoint)
    assert meta.commit_hash == commit
    assert meta.etag == _sha256(hub.files / "tiny-F32.gguf")
    assert meta.size == os.path.getsize(hub.files / "tiny-F32.gguf")
    assert meta.location.startswith(f"http://127.0.0.1:{hub.cdn_port}/")


def test_small_file_etag_is_its_git_blob_id(hub):
    url = hf_hub_url("ailab/tiny-gguf", "README.md", endpoint=hub.endpoint)
    meta = get_hf_file_metadata(url, token=False, endpoint=hub.endpoint)
    assert meta.etag == git_blob_sha1(b"# tiny-gguf\nsecond\n")
    assert meta.size == len(b"# tiny-gguf\nsecond\n")


@pytest.mark.parametrize("lfs", [True, False])
def test_range_requests_are_answered_206_with_content_range(hub, lfs):
    name = "tiny-Q8_0.gguf" if lfs else "README.md"
    data = (hub.files / name).read_bytes() if lfs else b"# tiny-gguf\nsecond\n"
    request = urllib.request.Request(hf_hub_url("ailab/tiny-gguf", name, endpoint=hub.endpoint))
    request.add_header("Range", "bytes=10-")
    with urllib.request.urlopen(request, timeout=10) as response:  # follows the 302 to the CDN
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
        assert response.read() == data[10:]


def test_a_range_past_the_end_is_416(hub):
    size = os.path.getsize(hub.files / "tiny-Q8_0.gguf")
    request = urllib.request.Request(hf_hub_url("ailab/tiny-gguf", "tiny-Q8_0.gguf", endpoint=hub.endpoint))
    request.add_header("Range", f"bytes={size}-")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 416


def test_unknown_repo_revision_and_file_raise_the_clients_errors(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("ailab/no-such-repo")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("ailab/tiny-gguf", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("ailab/tiny-gguf", revision="0" * 40)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(
            "ailab/tiny-gguf", "nope.gguf", endpoint=hub.endpoint, cache_dir=tmp_path / "c", token=False
        )


def test_a_private_repo_needs_its_token_which_never_reaches_the_cdn(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("ailab/private-gguf", token=False)
    path = hf_hub_download(
        "ailab/private-gguf",
        "tiny-Q8_0.gguf",
        endpoint=hub.endpoint,
        cache_dir=tmp_path / "c",
        token=PRIVATE_TOKEN,
    )
    assert _sha256(path) == _sha256(hub.files / "tiny-Q8_0.gguf")
    hub_lines = [line for line in hub.lines if line.startswith("hub ") and "private-gguf/resolve" in line]
    cdn_lines = [line for line in hub.lines if line.startswith("cdn GET")]
    assert hub_lines and all("auth=yes" in line for line in hub_lines)
    assert cdn_lines and all("auth=no" in line for line in cdn_lines)


def test_the_resolver_reads_the_model_info_the_client_reads(hub):
    """The model store's resolver and HfApi.model_info(files_metadata=True) agree on commit, sizes and checksums."""
    info = HfApi(endpoint=hub.endpoint, token=False).model_info("ailab/tiny-gguf", files_metadata=True)
    raw = fetch_info("t", hub.endpoint, "ailab/tiny-gguf", "main")
    manifest = manifest_from_info("t", raw, {"repo": "ailab/tiny-gguf", "revision": "main"}, hub.endpoint)
    assert manifest["commit"] == info.sha
    theirs = {
        s.rfilename: (s.size, "sha256", s.lfs.sha256) if s.lfs else (s.size, "git-sha1", s.blob_id)
        for s in info.siblings
    }
    assert {f["path"]: (f["size"], f["algo"], f["digest"]) for f in manifest["files"]} == theirs
    for f in manifest["files"]:
        assert f["url"] == hf_hub_url("ailab/tiny-gguf", f["path"], revision=info.sha, endpoint=hub.endpoint)
