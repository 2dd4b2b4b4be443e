"""roles/model_store/action_plugins/model_store_fetch.py: the pure helpers."""

import importlib.util
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_SPEC = importlib.util.spec_from_file_location(
    "model_store_fetch", os.path.join(ROOT, "roles", "model_store", "action_plugins", "model_store_fetch.py")
)
fetch = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fetch)

DIGEST = "a" * 64


def test_stamp_with_same_digest_size_and_mtime_skips_hashing():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert fetch.stamp_matches(stamp, "sha256", DIGEST, 10, 100)


def test_stamp_is_stale_when_size_or_mtime_changed():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert not fetch.stamp_matches(stamp, "sha256", DIGEST, 11, 100)
    assert not fetch.stamp_matches(stamp, "sha256", DIGEST, 10, 101)


def test_stamp_for_another_checksum_does_not_match():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert not fetch.stamp_matches(stamp, "sha256", "b" * 64, 10, 100)
    assert not fetch.stamp_matches(stamp, "sha512", DIGEST, 10, 100)


def test_missing_or_broken_stamp_does_not_match():
    assert not fetch.stamp_matches(None, "sha256", DIGEST, 10, 100)
    assert not fetch.stamp_matches("garbage", "sha256", DIGEST, 10, 100)


def test_stamp_without_wanted_digest_matches_any_recorded_digest():
    stamp = {"algo": "sha256", "digest": DIGEST, "size": 10, "mtime": 100}
    assert fetch.stamp_matches(stamp, "sha256", "", 10, 100)


def test_progress_line_shows_bytes_percent_and_rate_of_this_run():
    line = fetch.progress_line("m.gguf", 3 * 1024**2, 4 * 1024**2, 2.0, start=1024**2)
    assert line == "m.gguf: 3.0 MiB of 4.0 MiB (75%), 1.0 MiB/s"


def test_progress_line_without_a_size():
    assert "size unknown" in fetch.progress_line("m.gguf", 2048, None, 1.0)


def test_curl_resumes_unless_told_not_to():
    assert fetch.curl_argv("http://x/m", "/s/.m.part")[-5:] == [
        "--continue-at",
        "-",
        "--output",
        "/s/.m.part",
        "http://x/m",
    ]
    assert "--continue-at" not in fetch.curl_argv("http://x/m", "/s/.m.part", resume=False)
    assert "--fail" in fetch.curl_argv("http://x/m", "/s/.m.part")
