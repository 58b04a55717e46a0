import os
import subprocess
import sys

import pytest

from ragcun.faults import FAULT_ENV, fault_point

PROGRAM = """
from ragcun.faults import fault_point
for i in range(5):
    print(i, flush=True)
    fault_point("loop.step")
print("done", flush=True)
"""


@pytest.mark.parametrize(
    ("fault", "printed", "killed"), [("", "0 1 2 3 4 done", False), ("loop.step@3", "0 1 2", True)]
)
def test_a_fault_point_kills_the_process_at_its_named_step(fault, printed, killed):
    env = {**os.environ, FAULT_ENV: fault}
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == printed.split()
    assert done.returncode == (-9 if killed else 0)


def test_other_steps_and_an_unset_variable_do_nothing(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "elsewhere")
    fault_point("loop.step")
    monkeypatch.delenv(FAULT_ENV)
    fault_point("loop.step")
