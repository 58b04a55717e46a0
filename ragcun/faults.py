"""Named fault points on the write paths, so recovery is tested by killing a process at an exact step.

A write path calls ``fault_point("ingest.after_upsert")`` between the steps whose order makes it safe. When
the environment variable ``RAGCUN_FAULT`` names that step, the process sends itself ``SIGKILL`` there, exactly
as a crash, an OOM kill or a power cut would stop it (no ``finally``, no ``atexit``, no flush).
``RAGCUN_FAULT=STEP@N`` kills at the N-th time the step is reached (1-based), for steps inside a loop.

The variable is read on every call, not once through ``Settings``: fault points sit deep in write paths that
hold no settings object, and a test sets the variable in the child process it is about to kill. Unset, a
fault point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

FAULT_ENV = "RAGCUN_FAULT"
_reached: Counter[str] = Counter()


def fault_point(step: str) -> None:
    """Kill this process with SIGKILL if ``RAGCUN_FAULT`` names ``step`` (and, with ``@N``, this is its N-th call)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != step:
        return
    _reached[step] += 1
    if _reached[step] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
