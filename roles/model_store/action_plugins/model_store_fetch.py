"""Action model_store_fetch: put one verified model file in the store, reporting progress.

The transfer runs on the store server with curl (``--continue-at -``: a partial
``.<name>.part`` left by an interrupted run is resumed with an HTTP Range
request). This action starts it in the background, prints bytes and percent
every ``poll`` seconds while it runs, then verifies the checksum on the server
and renames the file into place atomically. A file whose checksum does not
match is removed, never left under its final name.

One file has one writer. The downloader holds an exclusive ``flock`` on the
``.part`` file while curl writes it, and runs as a transient unit named after
the file (``ailab-fetch-<hash>``). A run that finds that lock held or that unit
active (an interrupted run's download, still going) does not start a second
writer: it waits for that one, printing its progress, and takes over what it
leaves (verifies and places a finished file, resumes a failed one, checks a file
the run that started it put in place meanwhile). curl's status stays in
``<part>.rc`` until the file is placed or the next download starts, so every run
waiting on one download reads it.

A verified file gets a stamp (JSON: algorithm, digest, size, mtime) so the next
run skips it without re-reading it; a file changed behind the stamp's back
(size or mtime differ) is hashed again.

The checksum is sha256, sha512, or ``git-sha1``: git's blob id (sha1 of
``blob <size>\0`` and the content), which is what the Hugging Face Hub lists for
a small (non-LFS) file of a repository (``blobId``; its ``ETag`` on download).
It is computed on the server with ``sha1sum``, like the others.

Repository files come with their ``size`` (no HEAD request then), a ``proxy``
(curl's ``--proxy``; without it curl reads the environment's) and, for private
repositories, a ``token``: it reaches the server through the command's standard
input, never its command line, into a 0600 header file under ``auth_dir`` that
curl reads (``--header @file``) and the download job removes when curl ends.
curl sends it to the Hub only, not to the host a redirect leads to (the CDN),
as huggingface_hub drops it off the Hub (``_get_metadata_or_catch_error`` in
``file_download.py``).
"""

import hashlib
import json
import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

HASH_TOOLS = {"sha256": "sha256sum", "sha512": "sha512sum", "git-sha1": "sha1sum"}
# flock's exit status when another downloader already holds the .part file.
LOCK_BUSY = 75
# What _download reports when the file it waited for was placed by the run that started it.
PLACED = "placed"


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


def hash_script(algo, path):
    """The shell command printing path's digest first (git-sha1: sha1 of "blob <size>\\0" and the content)."""
    q = shlex.quote(path)
    if algo == "git-sha1":
        return f"{{ printf 'blob %s\\000' \"$(stat -c %s {q})\" && cat {q}; }} | sha1sum"
    return f"{HASH_TOOLS[algo]} {q}"


def curl_argv(url, part, resume=True, connect_timeout=30, proxy="", header_file=""):
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
    if proxy:
        argv += ["--proxy", proxy]
    if header_file:
        argv += ["--header", f"@{header_file}"]
    if resume:
        argv += ["--continue-at", "-"]
    return argv + ["--output", part, url]


def unit_name(part):
    """The transient unit that downloads into part: the same name for the same file."""
    return "ailab-fetch-" + hashlib.sha256(part.encode()).hexdigest()[:16]


def fetch_job(url, part, resume=True, proxy="", header_file=""):
    """The shell job that downloads url into part, curl's status in <part>.rc, its errors in <part>.log.

    curl runs only while the job holds an exclusive flock on part; when another
    downloader holds it the job exits with LOCK_BUSY at once and writes nothing.
    A header file (the token) is removed when curl ends.
    """
    base = shlex.quote(part)
    curl = " ".join(
        shlex.quote(a) for a in curl_argv(url, part, resume=resume, proxy=proxy, header_file=header_file)
    )
    inner = f"{curl} 2>{base}.log; echo $? > {base}.rc"
    if header_file:
        inner += f"; rm -f {shlex.quote(header_file)}"
    return f"flock --nonblock --conflict-exit-code {LOCK_BUSY} {base} sh -c {shlex.quote(inner)}"


def status_script(part, unit):
    """Prints whether a downloader is at work on part (1/0), part's size (- when missing), <part>.rc if any.

    Busy means the file's transient unit is active or another process holds the
    lock on part. The lock is looked at before the status file, so a status is
    only read once its writer has finished.
    """
    base = shlex.quote(part)
    return (
        "if [ -d /run/systemd/system ] && systemctl is-active --quiet "
        f"{shlex.quote(unit)}.service 2>/dev/null; then echo 1; "
        f"elif [ -e {base} ] && ! flock --nonblock {base} true; then echo 1; else echo 0; fi; "
        f"stat -c %s {base} 2>/dev/null || echo -; cat {base}.rc 2>/dev/null || true"
    )


def parse_status(stdout):
    """(busy, size or None when there is no part file, rc or None) from the output of status_script."""
    lines = stdout.split()
    busy = bool(lines) and lines[0] == "1"
    size = int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else None
    rc = int(lines[2]) if len(lines) > 2 and lines[2].lstrip("-").isdigit() else None
    return busy, size, rc


class ActionModule(ActionBase):
    """Fetch, verify and place one model file."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(
        (
            "url",
            "dest",
            "algo",
            "digest",
            "stamp",
            "owner",
            "group",
            "mode",
            "poll",
            "timeout",
            "name",
            "size",
            "proxy",
            "token",
            "auth_dir",
        )
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
        out = self._sh(hash_script(algo, path))["stdout"].split()
        return out[0].lower()

    def _remote_size(self, url):
        if self._known_size is not None:
            return self._known_size
        if url.startswith("file://"):
            return self._size_mtime(url[len("file://") :])[0]
        q = shlex.quote(url)
        proxy = f"--proxy {shlex.quote(self._proxy)} " if self._proxy else ""
        out = self._sh(f"curl --silent --location --head --connect-timeout 30 {proxy}{q} || true")["stdout"]
        length = None
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())  # the last response (after redirects) wins
        return length

    def _status(self, part, unit):
        return parse_status(self._sh(status_script(part, unit))["stdout"])

    def _header_file(self, unit):
        """Write the token's Authorization header to a 0600 file under auth_dir, through stdin; its path."""
        if not self._token:
            return ""
        path = f"{self._auth_dir}/{unit}.auth"
        result = self._low_level_execute_command(
            "/bin/sh -c "
            + shlex.quote(
                f"umask 077 && mkdir -p {shlex.quote(self._auth_dir)} && cat > {shlex.quote(path)}"
            ),
            sudoable=True,
            in_data=f"Authorization: Bearer {self._token}\n".encode(),
        )
        if result["rc"] != 0:
            raise AnsibleActionFail(
                f"could not write the token's header file under {self._auth_dir} (rc={result['rc']})"
            )
        return path

    def _start(self, url, part, unit, resume):
        """Start the download job in the background, outliving this connection."""
        base = shlex.quote(part)
        header_file = self._header_file(unit)
        job = shlex.quote(fetch_job(url, part, resume=resume, proxy=self._proxy, header_file=header_file))
        result = self._sh(
            f"rm -f {base}.rc {base}.log; "
            # A transient systemd unit outlives the ssh session that started it;
            # setsid alone is killed with the session on some hosts. The unit is
            # named after the file, so systemd refuses a second one for it.
            f"if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null; then "
            f"systemd-run --quiet --collect --unit={shlex.quote(unit)} sh -c {job}; "
            f"else setsid sh -c {job} </dev/null >/dev/null 2>&1 & fi",
            check=False,
        )
        if result["rc"] != 0 and not self._status(part, unit)[0]:
            raise AnsibleActionFail(
                f"could not start the download into {part} (rc={result['rc']}): {result['stderr'].strip()}"
            )

    def _stop(self, part, unit):
        self._sh(
            f"if [ -d /run/systemd/system ]; then systemctl stop {shlex.quote(unit)}.service 2>/dev/null; fi; "
            f"pkill -f -- {shlex.quote('--output ' + part)} || true",
            check=False,
        )

    def _wait(self, name, part, unit, total, poll, deadline, start, timeout, own):
        """Print progress while a downloader works on part; return (rc or None, stderr, size) once it ends.

        The run that started a job removes its status when it failed. Any other
        status stays for whoever else waits on the job: placing the file, or
        starting the next job, removes it.
        """
        base = shlex.quote(part)
        begun = time.time()
        while True:
            time.sleep(poll)
            busy, done, rc = self._status(part, unit)
            elapsed = time.time() - begun
            if not busy:
                tidy = f"; rm -f {base}.rc {base}.log" if own and rc != 0 else ""
                err = self._sh(f"cat {base}.log 2>/dev/null{tidy}; true")["stdout"].strip()
                if rc is None and done is None:
                    display.display(
                        f"model_store: {name}: the download ended and another run put the file in place"
                    )
                else:
                    display.display(
                        f"model_store: {progress_line(name, done or 0, total, elapsed, start)}, "
                        f"curl rc={'none' if rc is None else rc}"
                    )
                return rc, err, done
            display.display(f"model_store: {progress_line(name, done or 0, total, elapsed, start)}")
            if time.time() > deadline:
                self._stop(part, unit)
                raise AnsibleActionFail(
                    f"{name}: download did not finish within {timeout} s ({human_bytes(done or 0)} fetched); "
                    f"the partial file {part} is kept and the next run resumes it"
                )

    def _download(self, name, url, part, poll, timeout):
        """Fetch url into part with one writer at a time, print progress, return (rc, stderr).

        rc is PLACED when the download this run waited for was put in place by
        the run that started it.
        """
        deadline = time.time() + timeout
        unit = unit_name(part)
        total = self._remote_size(url)
        busy, have, last_rc = self._status(part, unit)
        if not busy and last_rc == 0 and have is not None:
            display.display(
                f"model_store: {name}: the download an earlier run started has finished, verifying it"
            )
            return 0, ""
        if busy:
            display.display(
                f"model_store: {name}: a download of this file is still running (unit {unit}, or a process "
                f"holding {part}); waiting for it instead of starting a second one"
            )
            rc, err, have = self._wait(name, part, unit, total, poll, deadline, have or 0, timeout, own=False)
            if rc == 0:
                return 0, ""
            if rc is None and have is None:
                return PLACED, ""
            display.display(
                f"model_store: {name}: that download stopped "
                f"({'without a status' if rc is None else f'curl rc={rc}'}: {err or 'no message'}); resuming it"
            )
        if total and have == total:
            display.display(f"model_store: {name}: the partial file is complete, verifying it")
            return 0, ""
        for resume in (True, False):
            if have and resume:
                display.display(f"model_store: {name}: resuming at {human_bytes(have)}")
            self._start(url, part, unit, resume)
            start = (have or 0) if resume else 0
            rc, err, done = self._wait(name, part, unit, total, poll, deadline, start, timeout, own=True)
            if rc is None and done is None:  # another run waiting on this download placed it first
                return PLACED, ""
            if rc is None:
                return -1, err or f"the download stopped without a status (unit {unit} stopped or killed?)"
            if rc == 33 and resume:  # the server ignores Range: start over (curl truncates the file)
                display.display(f"model_store: {name}: the server cannot resume; downloading from the start")
                have = None
                continue
            return rc, err
        return rc, err  # pragma: no cover

    def _adopt(self, result, name, algo, digest, dest, stamp_path, part):
        """Another run placed the file this run waited for: check it as a present file."""
        size, mtime = self._size_mtime(dest)
        stamp = self._read_stamp(stamp_path)
        if size is not None and stamp_matches(stamp, algo, digest, size, mtime):
            result.update(
                changed=True,
                msg="placed and verified by another run meanwhile",
                size=size,
                digest=stamp["digest"],
            )
            return result
        found = self._hash(algo, dest, name, size) if size is not None else None
        if found is None or (digest and found != digest):
            raise AnsibleActionFail(
                f"{name}: the download into {part} this run waited for was taken by another run, and {dest} "
                f"does not hold the wanted file ({algo}:{found or 'missing'}); run again"
            )
        self._write_stamp(stamp_path, algo, found, dest)
        result.update(
            changed=True, msg="placed by another run meanwhile; verified and stamped", size=size, digest=found
        )
        return result

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
        size_arg = args.get("size")
        self._known_size = int(size_arg) if size_arg not in (None, "") else None
        self._proxy = str(args.get("proxy") or "")
        self._token = str(args.get("token") or "")
        self._auth_dir = str(args.get("auth_dir") or "/run/ailab-model-store")
        poll = max(1, int(args.get("poll", 10)))
        timeout = int(args.get("timeout", 86400))
        directory, _, base = dest.rpartition("/")
        part = f"{directory}/.{base}.part"
        qpart = shlex.quote(part)
        result.update(dest=dest, changed=False)

        size, mtime = self._size_mtime(dest)
        if size is not None:
            stamp = self._read_stamp(stamp_path)
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
        if rc == PLACED:
            return self._adopt(result, name, algo, digest, dest, stamp_path, part)
        if rc != 0:
            raise AnsibleActionFail(
                f"{name}: fetching {url} failed (curl rc={rc}): {err or 'no message'}; "
                f"the partial file {part} is kept for the next run to resume"
            )
        got_size = self._size_mtime(part)[0]
        if got_size is None:  # another run waiting on the same download placed it first
            return self._adopt(result, name, algo, digest, dest, stamp_path, part)
        try:
            found = self._hash(algo, part, name, got_size)
        except AnsibleActionFail:
            if self._size_mtime(part)[0] is None:  # placed meanwhile by another run that waited on it
                return self._adopt(result, name, algo, digest, dest, stamp_path, part)
            raise
        if digest and found != digest:
            self._sh(f"rm -f {qpart} {qpart}.rc {qpart}.log")
            raise AnsibleActionFail(
                f"{name}: checksum mismatch for {url}: expected {algo}:{digest}, got {algo}:{found}; "
                f"the download was removed and nothing was written to {dest}"
            )
        owner = shlex.quote(f"{args.get('owner', 'root')}:{args.get('group', 'root')}")
        mode = shlex.quote(str(args.get("mode", "0644")))
        placed = self._sh(
            f"chown {owner} {qpart} && chmod {mode} {qpart} && mv -f -T {qpart} {shlex.quote(dest)} && "
            f"rm -f {qpart}.rc {qpart}.log",
            check=False,
        )
        if placed["rc"] != 0:
            if self._size_mtime(part)[0] is None:  # placed meanwhile by another run that waited on it
                return self._adopt(result, name, algo, digest, dest, stamp_path, part)
            raise AnsibleActionFail(
                f"{name}: could not put {part} in place as {dest} (rc={placed['rc']}): {placed['stderr'].strip()}"
            )
        self._write_stamp(stamp_path, algo, found, dest)
        result.update(changed=True, msg=f"fetched and verified ({algo})", size=got_size, digest=found)
        return result

    def _read_stamp(self, stamp_path):
        raw = self._sh(f"cat {shlex.quote(stamp_path)} 2>/dev/null || true")["stdout"]
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            return None

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
