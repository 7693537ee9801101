"""Named crash points for the fault-injection tests: ``FEDVST_CRASH_AT=PATTERN`` makes the process
kill itself (SIGKILL, no clean-up, exactly what ``kill -9`` does) when it reaches a point whose
``name:detail`` matches the shell pattern. Unset, which is always the case outside the tests,
a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import fnmatch
import os
import signal

CRASH_ENV = "FEDVST_CRASH_AT"


def crash_point(name: str, detail: str = "") -> None:
    """Die here (SIGKILL) if $FEDVST_CRASH_AT matches ``name:detail``."""
    pattern = os.environ.get(CRASH_ENV)
    if pattern and fnmatch.fnmatchcase(f"{name}:{detail}", pattern):
        os.kill(os.getpid(), signal.SIGKILL)
