"""A one-process lock on an embedded folder (``filelock``), with a message that says what to do."""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

from ragcun.errors import StoreLockedError


class FolderLock:
    """Exclusive, non-blocking lock on ``folder/.lock``; the holder's pid is kept in ``folder/.lock.pid``.

    On POSIX the lock is an ``flock``, which the OS drops when the process dies, even on ``kill -9``, so
    a crash never leaves a stale lock behind (a stale pid file only names the last holder). A second
    opener, in this process or another, is refused at once.
    """

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / ".lock"
        self.pid_path = folder / ".lock.pid"
        # is_singleton=False, thread_local=False: every opener is its own lock, so a second one in this
        # process is refused like one in another process.
        self._lock = FileLock(self.path, timeout=0, thread_local=False, is_singleton=False)
        try:
            self._lock.acquire()
        except Timeout:
            try:
                holder = self.pid_path.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise StoreLockedError(
                f"{folder} is in use by another process (pid {holder}); the embedded store allows one "
                "process at a time: wait for it, or run a Qdrant server and set QDRANT_URL"
            ) from None
        self.pid_path.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
