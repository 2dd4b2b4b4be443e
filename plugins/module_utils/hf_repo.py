"""Resolve a Hugging Face repository entry of the model store into a verified file list.

Plain functions (standard library only: the store server gets no extra Python packages),
used by the ``hf_repo_manifest`` module and by the tests. Each behaviour mirrors the official
client, ``huggingface_hub`` (the version requirements.txt pins, 2.4.0):

- the model info of one revision with the files' metadata:
  ``GET {endpoint}/api/models/{repo_id}/revision/{quote(revision, safe="")}?blobs=true``
  (``HfApi.model_info(files_metadata=True)`` in ``hf_api.py``); its ``sha`` is the commit
  the revision names, its ``siblings`` the files: ``rfilename``, ``size``, ``blobId`` (the
  git blob id) and, for LFS files, ``lfs.sha256`` (``RepoSibling``/``BlobLfsInfo``);
- a file's URL: ``{endpoint}/{repo_id}/resolve/{revision}/{quote(path)}`` (``hf_hub_url`` in
  ``file_download.py``), here always at the resolved commit, so a branch that moves later
  cannot change what is fetched;
- include/exclude: ``fnmatch.fnmatchcase`` on the file's path, a pattern ending in ``/``
  matching everything under it, ``*`` crossing ``/`` (``filter_repo_objects`` in
  ``utils/_paths.py``, what ``snapshot_download(allow_patterns=, ignore_patterns=)`` uses);
- a commit id is 40 lowercase hex digits (``REGEX_COMMIT_HASH`` in ``file_download.py``);
- errors by the ``X-Error-Code`` header: ``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``, ``GatedRepo`` (``hf_raise_for_status`` in ``utils/_http.py``);
- the token as ``Authorization: Bearer <token>`` (``build_hf_headers`` in
  ``utils/_headers.py``).

Every file gets a checksum the store verifies on the server before the file takes its
final name: an LFS file its ``sha256``, a small (non-LFS) file its git blob id
(``git-sha1``: sha1 of ``b"blob <size>\\0"`` and the content), which is what the Hub lists
as its ``blobId`` and sends as its ``ETag``.

The resolved manifest is recorded on the server. When the entry names a full commit and
the record holds the same repository, revision, include, exclude and endpoint, the record
is the answer and the Hub is not asked.
"""

import fnmatch
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request

COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# The keys a record must share with the entry to be used without asking the Hub.
RECORD_KEYS = ("repo", "revision", "include", "exclude", "endpoint")
RECORD_VERSION = 1


class HubError(Exception):
    """A refusal or failure, its message naming the entry."""


def is_commit(revision):
    """Whether revision is a full commit id (immutable), not a branch or tag."""
    return isinstance(revision, str) and bool(COMMIT.match(revision))


def git_blob_sha1(data):
    """The git blob id of data: what the Hub lists as a small file's blobId."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _patterns(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _wildcard_dirs(pattern):
    """'sub/' matches everything under sub/ (upstream's _add_wildcard_to_directories)."""
    return pattern + "*" if pattern.endswith("/") else pattern


def select_files(paths, include=None, exclude=None):
    """The paths include lets through and exclude does not stop, in the given order."""
    allow = [_wildcard_dirs(p) for p in _patterns(include)]
    deny = [_wildcard_dirs(p) for p in _patterns(exclude)]
    return [
        p
        for p in paths
        if (not allow or any(fnmatch.fnmatchcase(p, a) for a in allow))
        and not any(fnmatch.fnmatchcase(p, d) for d in deny)
    ]


def info_url(endpoint, repo, revision):
    return f"{endpoint.rstrip('/')}/api/models/{repo}/revision/{urllib.parse.quote(revision, safe='')}?blobs=true"


def file_url(endpoint, repo, revision, path):
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(path)}"


def opener(proxy=""):
    """A urllib opener through proxy; with no proxy, the environment's (http_proxy, https_proxy, no_proxy)."""
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
    return urllib.request.build_opener(*handlers)


def _hub_error(where, repo, revision, err):
    code = err.headers.get("X-Error-Code", "") if err.headers else ""
    message = err.headers.get("X-Error-Message", "") if err.headers else ""
    if code == "RevisionNotFound":
        return HubError(f"{where}: revision {revision!r} does not exist in {repo} ({err.code} {code})")
    if code == "RepoNotFound":
        return HubError(
            f"{where}: repository {repo} was not found ({err.code} {code}); if it is private or gated, "
            "give a token (token, model_store_hf_token) that may read it"
        )
    if code == "GatedRepo":
        return HubError(
            f"{where}: {repo} is gated ({err.code}): accept its terms on the Hub with the token's account"
        )
    return HubError(
        f"{where}: the Hub answered {err.code} for {repo} at {revision!r}: {message or err.reason}"
    )


def fetch_info(where, endpoint, repo, revision, token="", proxy="", timeout=30):
    """The model info of repo at revision, with the files' metadata (raises HubError)."""
    headers = {"Accept": "application/json", "User-Agent": "ailab-model-store/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(info_url(endpoint, repo, revision), headers=headers)
    try:
        with opener(proxy).open(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        raise _hub_error(where, repo, revision, err) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise HubError(f"{where}: cannot reach the Hub at {endpoint} ({reason})") from None
    except ValueError as err:
        raise HubError(f"{where}: the Hub at {endpoint} did not answer JSON for {repo}: {err}") from None


def manifest_from_info(where, info, entry, endpoint):
    """The record for entry from the Hub's model info: the commit and the selected files with checksums."""
    repo, revision = entry["repo"], entry["revision"]
    commit = info.get("sha") if isinstance(info, dict) else None
    if not is_commit(commit):
        raise HubError(f"{where}: the Hub's answer for {repo} at {revision!r} carries no commit id (sha)")
    if is_commit(revision) and commit != revision:
        raise HubError(f"{where}: the Hub answered commit {commit} for revision {revision}")
    siblings = {s.get("rfilename"): s for s in info.get("siblings") or [] if isinstance(s, dict)}
    chosen = select_files(sorted(p for p in siblings if p), entry.get("include"), entry.get("exclude"))
    if not chosen:
        raise HubError(
            f"{where}: include {_patterns(entry.get('include'))} and exclude {_patterns(entry.get('exclude'))} "
            f"match none of the {len(siblings)} files of {repo} at {commit}"
            + (
                f" ({', '.join(sorted(siblings)[:10])}{', …' if len(siblings) > 10 else ''})"
                if siblings
                else ""
            )
        )
    files = []
    for path in chosen:
        sibling = siblings[path]
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise HubError(f"{where}: {repo} lists a file path the store refuses: {path!r}")
        size, lfs = sibling.get("size"), sibling.get("lfs") or None
        if lfs:
            algo, digest, size = "sha256", str(lfs.get("sha256", "")).lower(), lfs.get("size", size)
            if not _HEX64.match(digest):
                raise HubError(f"{where}: {repo} lists no sha256 for the LFS file {path}")
        else:
            algo, digest = "git-sha1", str(sibling.get("blobId") or "").lower()
            if not COMMIT.match(digest):
                raise HubError(
                    f"{where}: {repo} lists no blob id for {path} (was the model info asked with blobs=true?)"
                )
        if not isinstance(size, int) or size < 0:
            raise HubError(f"{where}: {repo} lists no size for {path}")
        files.append(
            {
                "path": path,
                "size": size,
                "algo": algo,
                "digest": digest,
                "url": file_url(endpoint, repo, commit, path),
            }
        )
    return {
        "version": RECORD_VERSION,
        "repo": repo,
        "revision": revision,
        "include": _patterns(entry.get("include")),
        "exclude": _patterns(entry.get("exclude")),
        "endpoint": endpoint.rstrip("/"),
        "commit": commit,
        "files": files,
    }


def record_matches(record, entry, endpoint):
    """Whether a recorded manifest answers entry without asking the Hub (full commit ids only)."""
    if (
        not isinstance(record, dict)
        or record.get("version") != RECORD_VERSION
        or not is_commit(entry["revision"])
    ):
        return False
    wanted = {
        "repo": entry["repo"],
        "revision": entry["revision"],
        "include": _patterns(entry.get("include")),
        "exclude": _patterns(entry.get("exclude")),
        "endpoint": endpoint.rstrip("/"),
    }
    return (
        all(record.get(k) == wanted[k] for k in RECORD_KEYS)
        and record.get("commit") == entry["revision"]
        and isinstance(record.get("files"), list)
        and bool(record["files"])
    )


def read_record(path):
    """The recorded manifest at path, or None when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def write_record(path, record):
    """Write the record atomically (temporary file in the same directory, then rename), mode 0644."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".record-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def resolve(entry, record_path, endpoint, token="", proxy="", timeout=30, check_mode=False):
    """Resolve entry (name, repo, revision, include, exclude, allow_moving_revision) into its manifest.

    Returns {"manifest", "changed" (the record was or would be rewritten), "network" (the Hub
    was asked), "moved_from" (the commit recorded before, when a moving revision moved)}.
    Raises HubError, naming the entry, for what the store refuses.
    """
    where = f"model_store_models[{entry['name']}]"
    revision = entry.get("revision")
    if not isinstance(revision, str) or not revision:
        raise HubError(f"{where}: revision is required (a 40-hex commit id)")
    if not is_commit(revision) and not entry.get("allow_moving_revision"):
        raise HubError(
            f"{where}: revision {revision!r} is a branch, a tag or a short id, which can move; give the full "
            "40-hex commit id, or set allow_moving_revision: true to resolve it on every run"
        )
    record = read_record(record_path)
    if record_matches(record, entry, endpoint):
        return {"manifest": record, "changed": False, "network": False, "moved_from": None}
    info = fetch_info(where, endpoint, entry["repo"], revision, token=token, proxy=proxy, timeout=timeout)
    manifest = manifest_from_info(where, info, entry, endpoint)
    changed = manifest != record
    moved_from = None
    if (
        isinstance(record, dict)
        and record.get("revision") == revision
        and record.get("commit") != manifest["commit"]
    ):
        moved_from = record.get("commit")
    if changed and not check_mode:
        write_record(record_path, manifest)
    return {"manifest": manifest, "changed": changed, "network": True, "moved_from": moved_from}
