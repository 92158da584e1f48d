"""Running a function in a forked child of the test process, with a bounded wait."""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Callable

from django_blueque.protocol import faults


def run_forked(body: Callable[[], object], *, crash_at: str | None = None, timeout: float = 30.0) -> int:
    """Run ``body`` in a forked child, with ``BLUEQUE_CRASH_AT=crash_at`` there; return its exit code.

    0 when ``body`` returned, 1 when it raised (the traceback goes to stderr),
    ``faults.CRASH_EXIT`` when fault injection ended it. The child is killed
    (and the test fails) if it is still running after ``timeout`` seconds.
    """
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            if crash_at is None:
                os.environ.pop(faults.ENV, None)
            else:
                os.environ[faults.ENV] = crash_at
            body()
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"forked child {pid} still ran after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
