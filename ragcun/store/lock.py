"""A one-process lock on an embedded folder (``filelock``), with a message that says what to do."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from filelock import FileLock, Timeout

from ragcun.errors import StoreLockedError

logger = logging.getLogger(__name__)


class FolderLock:
    """Exclusive lock on ``folder/.lock``; the holder's pid is kept in ``folder/.lock.pid``.

    On POSIX the lock is an ``flock``, which the OS drops when the process dies, even on ``kill -9``, so
    a crash never leaves a stale lock behind (a stale pid file only names the last holder). A second
    opener, in this process or another, waits up to ``wait`` seconds (saying once who holds the lock),
    then is refused.
    """

    def __init__(self, folder: Path, wait: float = 0.0):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / ".lock"
        self.pid_path = folder / ".lock.pid"
        # is_singleton=False, thread_local=False: every opener is its own lock, so a second one in this
        # process is refused like one in another process.
        self._lock = FileLock(self.path, timeout=0, thread_local=False, is_singleton=False)
        try:
            self._lock.acquire()
        except Timeout:
            holder = self._holder()
            if not wait > 0 or not self._wait(folder, holder, wait):
                raise StoreLockedError(
                    f"{folder} is in use by another process (pid {holder}); the embedded store allows one "
                    "process at a time: wait for it, or run a Qdrant server and set QDRANT_URL"
                ) from None
        self.pid_path.write_text(str(os.getpid()))

    def _holder(self) -> str:
        try:
            return self.pid_path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def _wait(self, folder: Path, holder: str, wait: float) -> bool:
        """Block up to ``wait`` seconds for the lock; whether it was acquired."""
        logger.warning("%s is in use by process %s: waiting up to %g s for it (--wait)", folder, holder, wait)
        try:
            self._lock.acquire(timeout=wait, poll_interval=0.05)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
