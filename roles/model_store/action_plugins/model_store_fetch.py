"""Action model_store_fetch: put one verified model file in the store, reporting progress.

The transfer runs on the store server with curl (``--continue-at -``: a partial
``.<name>.part`` left by an interrupted run is resumed with an HTTP Range
request). This action starts it in the background, prints bytes and percent
every ``poll`` seconds while it runs, then verifies the checksum on the server
and renames the file into place atomically. A file whose checksum does not
match is removed, never left under its final name.

A verified file gets a stamp (JSON: algorithm, digest, size, mtime) so the next
run skips it without re-reading it; a file changed behind the stamp's back
(size or mtime differ) is hashed again.
"""

import json
import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

HASH_TOOLS = {"sha256": "sha256sum", "sha512": "sha512sum"}


def human_bytes(count):
    """1536 -> '1.5 KiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def progress_line(name, done, total, elapsed, start=0):
    """The line printed while a download runs (rate over the bytes fetched since start)."""
    rate = max(0, done - start) / elapsed if elapsed > 0 else 0
    if total:
        percent = min(100.0, 100.0 * done / total)
        return f"{name}: {human_bytes(done)} of {human_bytes(total)} ({percent:.0f}%), {human_bytes(rate)}/s"
    return f"{name}: {human_bytes(done)} (size unknown), {human_bytes(rate)}/s"


def stamp_matches(stamp, algo, digest, size, mtime):
    """Whether a stamp proves the file at (size, mtime) was verified against digest."""
    if not isinstance(stamp, dict):
        return False
    if stamp.get("size") != size or stamp.get("mtime") != mtime:
        return False
    if not digest:
        return bool(stamp.get("digest"))
    return stamp.get("algo") == algo and stamp.get("digest") == digest


def curl_argv(url, part, resume=True, connect_timeout=30):
    """The curl command that fetches url into part."""
    argv = [
        "curl",
        "--fail",
        "--silent",
        "--show-error",
        "--location",
        "--connect-timeout",
        str(connect_timeout),
    ]
    if resume:
        argv += ["--continue-at", "-"]
    return argv + ["--output", part, url]


class ActionModule(ActionBase):
    """Fetch, verify and place one model file."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        ("url", "dest", "algo", "digest", "stamp", "owner", "group", "mode", "poll", "timeout", "name")
    )

    def _sh(self, script, check=True):
        result = self._low_level_execute_command(f"/bin/sh -c {shlex.quote(script)}", sudoable=True)
        if check and result["rc"] != 0:
            raise AnsibleActionFail(
                f"command failed on the store server (rc={result['rc']}): {script}\n"
                f"{result['stderr'].strip()}"
            )
        return result

    def _size_mtime(self, path):
        out = self._sh(f"stat -c '%s %Y' {shlex.quote(path)} 2>/dev/null || true")["stdout"].split()
        return (int(out[0]), int(out[1])) if len(out) == 2 else (None, None)

    def _hash(self, algo, path, name, size):
        display.display(f"model_store: {name}: verifying {human_bytes(size or 0)} ({algo})")
        out = self._sh(f"{HASH_TOOLS[algo]} {shlex.quote(path)}")["stdout"].split()
        return out[0].lower()

    def _remote_size(self, url):
        if url.startswith("file://"):
            return self._size_mtime(url[len("file://") :])[0]
        q = shlex.quote(url)
        out = self._sh(f"curl --silent --location --head --connect-timeout 30 {q} || true")["stdout"]
        length = None
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())  # the last response (after redirects) wins
        return length

    def _download(self, name, url, part, poll, timeout):
        """Run curl in the background on the server, print progress, return (rc, stderr)."""
        total = self._remote_size(url)
        have = self._size_mtime(part)[0]
        if total and have == total:
            display.display(f"model_store: {name}: the partial file is complete, verifying it")
            return 0, ""
        base = shlex.quote(part)
        for resume in (True, False):
            if have and resume:
                display.display(f"model_store: {name}: resuming at {human_bytes(have)}")
            argv = " ".join(shlex.quote(a) for a in curl_argv(url, part, resume=resume))
            job = f"{argv} 2>{base}.log; echo $? > {base}.rc"
            self._sh(
                f"rm -f {base}.rc {base}.log; "
                # A transient systemd unit outlives the ssh session that started it;
                # setsid alone is killed with the session on some hosts.
                f"if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then "
                f"systemd-run --quiet --collect --unit=ailab-fetch-$$-$(date +%s) sh -c {shlex.quote(job)}; "
                f"else setsid sh -c {shlex.quote(job)} </dev/null >/dev/null 2>&1 & fi"
            )
            started = time.time()
            while True:
                time.sleep(poll)
                status = self._sh(f"cat {base}.rc 2>/dev/null; stat -c %s {base} 2>/dev/null || echo 0")
                lines = status["stdout"].split()
                done = int(lines[-1]) if lines else 0
                elapsed = time.time() - started
                if len(lines) == 2:
                    rc = int(lines[0])
                    break
                display.display(f"model_store: {progress_line(name, done, total, elapsed, have or 0)}")
                if elapsed > timeout:
                    self._sh(f"pkill -f -- {shlex.quote('--output ' + part)} || true", check=False)
                    raise AnsibleActionFail(
                        f"{name}: download did not finish within {timeout} s ({human_bytes(done)} fetched); "
                        f"the partial file {part} is kept and the next run resumes it"
                    )
            err = self._sh(f"cat {base}.log 2>/dev/null; rm -f {base}.rc {base}.log")["stdout"].strip()
            display.display(
                f"model_store: {progress_line(name, done, total, time.time() - started, have or 0)}, curl rc={rc}"
            )
            if rc == 33 and resume:  # the server ignores Range: start over
                display.display(f"model_store: {name}: the server cannot resume; downloading from the start")
                self._sh(f"rm -f {base}")
                have = None
                continue
            return rc, err
        return rc, err  # pragma: no cover

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [k for k in ("url", "dest", "stamp") if not args.get(k)]
        if missing:
            raise AnsibleActionFail(f"model_store_fetch needs {', '.join(missing)}")
        url, dest, stamp_path = args["url"], args["dest"], args["stamp"]
        algo, digest = args.get("algo") or "sha256", (args.get("digest") or "").lower()
        if algo not in HASH_TOOLS:
            raise AnsibleActionFail(f"checksum algorithm {algo!r} is not accepted")
        name = args.get("name") or dest
        poll = max(1, int(args.get("poll", 10)))
        timeout = int(args.get("timeout", 86400))
        directory, _, base = dest.rpartition("/")
        part = f"{directory}/.{base}.part"
        result.update(dest=dest, changed=False)

        size, mtime = self._size_mtime(dest)
        stamp = None
        if size is not None:
            raw = self._sh(f"cat {shlex.quote(stamp_path)} 2>/dev/null || true")["stdout"]
            try:
                stamp = json.loads(raw) if raw.strip() else None
            except ValueError:
                stamp = None
            if stamp_matches(stamp, algo, digest, size, mtime):
                result.update(msg="present and verified (stamp)", size=size, digest=stamp["digest"])
                return result
        if self._play_context.check_mode:
            result.update(changed=True, msg="would verify or fetch the file (check mode)")
            return result

        if size is not None:
            found = self._hash(algo, dest, name, size)
            if not digest or found == digest:
                self._write_stamp(stamp_path, algo, found, dest)
                result.update(changed=True, msg="present; verified and stamped", size=size, digest=found)
                return result
            display.warning(f"model_store: {name}: {dest} has {algo} {found}, wanted {digest}; replacing it")

        self._sh(f"mkdir -p {shlex.quote(directory)}")
        rc, err = self._download(name, url, part, poll, timeout)
        if rc != 0:
            raise AnsibleActionFail(
                f"{name}: fetching {url} failed (curl rc={rc}): {err or 'no message'}; "
                f"the partial file {part} is kept for the next run to resume"
            )
        got_size = self._size_mtime(part)[0]
        found = self._hash(algo, part, name, got_size)
        if digest and found != digest:
            self._sh(f"rm -f {shlex.quote(part)}")
            raise AnsibleActionFail(
                f"{name}: checksum mismatch for {url}: expected {algo}:{digest}, got {algo}:{found}; "
                f"the download was removed and nothing was written to {dest}"
            )
        owner = shlex.quote(f"{args.get('owner', 'root')}:{args.get('group', 'root')}")
        mode = shlex.quote(str(args.get("mode", "0644")))
        self._sh(
            f"chown {owner} {shlex.quote(part)} && chmod {mode} {shlex.quote(part)} && "
            f"mv -f -T {shlex.quote(part)} {shlex.quote(dest)}"
        )
        self._write_stamp(stamp_path, algo, found, dest)
        result.update(changed=True, msg=f"fetched and verified ({algo})", size=got_size, digest=found)
        return result

    def _write_stamp(self, stamp_path, algo, digest, dest):
        size, mtime = self._size_mtime(dest)
        body = json.dumps({"algo": algo, "digest": digest, "size": size, "mtime": mtime}, sort_keys=True)
        directory = stamp_path.rpartition("/")[0]
        tmp = f"{stamp_path}.tmp"
        self._sh(
            f"mkdir -p {shlex.quote(directory)} && "
            f"printf '%s\\n' {shlex.quote(body)} > {shlex.quote(tmp)} && "
            f"chmod 0644 {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(stamp_path)}"
        )
