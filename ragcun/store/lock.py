"""A one-process lock on an embedded folder, with a message that says what to do."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ragcun.errors import StoreLockedError


class FolderLock:
    """Exclusive, non-blocking ``flock`` on ``folder/.lock``; the holder's pid is written inside.

    The OS drops the lock when the process dies, even on ``kill -9``, so a crash never leaves a
    stale lock behind.
    """

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / ".lock"
        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "unknown"
            self._handle.close()
            raise StoreLockedError(
                f"{folder} is in use by another process (pid {holder}); the embedded store allows one "
                "process at a time: wait for it, or run a Qdrant server and set QDRANT_URL"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()))
        self._handle.flush()

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
