"""One writer per run directory: an exclusive lock file, ``<dir>/.segrl.lock``.

``segrl train`` and ``segrl eval`` hold :func:`run_lock` on their output directory for the whole
run. The lock is the kernel's (``fcntl.flock`` on the lock file, non-blocking), so it is released
by the kernel whenever its holder dies, however it dies; the file's content only *names* the holder
(pid, host, command, start time) for the messages:

* a second process asking for a held lock fails at once with :class:`RunLockedError` naming the
  holder (``pid 4242 on host gpu7, segrl train ..., since 2026-12-01T10:31:02+00:00``);
* a lock file left by a holder that died (``SIGKILL``, OOM, power loss) has no kernel lock on it:
  it is taken over, and the take-over is reported (``stale lock ... taken over``) on stderr and in
  :attr:`RunLock.stale`, never silently;
* a holder that exits normally removes the file.

The idea is that of the ``filelock`` package's ``UnixFileLock`` (flock + an inode check after
acquiring, so a file removed and re-created meanwhile is never locked twice); written out here
because segrl needs the holder's identity in the file and the stale-holder report. ``flock`` is
advisory and local to one kernel unless the file system forwards it (Linux NFSv4 does; old NFS
mounts do not: keep run directories on a local or NFSv4 disk).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = ".segrl.lock"


class RunLockedError(RuntimeError):
    """The run directory is locked by another live process; the message names the holder."""


@dataclass
class RunLock:
    """A held lock: ``path`` (the lock file), ``holder`` (what this process wrote into it) and ``stale``
    (the record of a dead previous holder that was taken over, or None)."""

    path: Path
    holder: dict
    stale: dict | None
    _fd: int
    _created: bool = False  # the directory was made by acquire(): removed again on release if still empty

    def release(self) -> None:
        """Remove the lock file, then drop the kernel lock (idempotent)."""
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = -1
        if self._created:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only succeeds when nothing was written


def describe(holder: dict | None) -> str:
    """``pid 4242 on host gpu7 (segrl train ...), since <time>`` for a lock file's record."""
    if not holder:
        return "an unknown process (the lock file is empty)"
    what = f" ({holder['command']})" if holder.get("command") else ""
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}{what}, since {holder.get('started', '?')}"


def read_holder(path: str | Path) -> dict | None:
    """The record in a lock file (or None: missing, empty or unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def acquire(directory: str | Path, command: str | None = None) -> RunLock:
    """Take the exclusive lock of ``directory`` (created if needed); never blocks.

    Args:
        directory: the run (output) directory.
        command: what the holder is doing, for other processes' messages (default: this process's
            command line).

    Returns:
        The held :class:`RunLock`; release it with :meth:`RunLock.release` (or use :func:`run_lock`).

    Raises:
        RunLockedError: another live process holds the lock; the message names the directory, the
            holder (pid, host, command, since when) and the fix.
    """
    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    for _ in range(10):  # re-try only if the file was replaced between open and flock
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"{directory} is in use by {describe(read_holder(path))}: wait for it to finish, stop it, "
                "or use another output directory"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:  # pragma: no cover - ten replacements in a row
        raise RunLockedError(f"{path} keeps being replaced by another process")
    previous = read_holder(path)
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    os.fsync(fd)
    lock = RunLock(path=path, holder=holder, stale=previous, _fd=fd, _created=created)
    if previous is not None:
        print(f"segrl: stale lock in {directory}: its holder, {describe(previous)}, died without releasing "
              "it; taken over (check that run's outputs)", file=sys.stderr, flush=True)
    return lock


@contextlib.contextmanager
def run_lock(directory: str | Path, command: str | None = None):
    """``with run_lock(out): ...`` holds :func:`acquire`'s lock for the block, released on any exit.

    Raises:
        RunLockedError: as :func:`acquire`.
    """
    lock = acquire(directory, command)
    try:
        yield lock
    finally:
        lock.release()


@contextlib.contextmanager
def rank_zero_lock(directory: str | Path, command: str | None = None):
    """:func:`run_lock` in the main process of a (possibly distributed) launch, nothing in the others.

    Under ``accelerate launch`` / ``torchrun`` every rank runs the same command on the same output
    directory; only global rank 0 (``$RANK``, 0 when unset) takes the lock, so a second *launch* is
    refused while the ranks of one launch are not.

    Raises:
        RunLockedError: as :func:`acquire`, in rank 0.
    """
    if int(os.environ.get("RANK", "0") or 0) != 0:
        yield None
        return
    with run_lock(directory, command) as lock:
        yield lock
