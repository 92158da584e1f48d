"""The one task body every system runs: append ``"<label> <time.time()>"`` to the file named by
``$BENCH_LOG`` (one ``write`` with ``O_APPEND``, no Redis round trip), then sleep ``seconds``.

Standard library only: it is imported by the workers of every peer, each in its own virtualenv.
"""

from __future__ import annotations

import os
import time


def record(label: str, seconds: float = 0.0) -> None:
    line = f"{label} {time.time()!r}\n".encode()
    fd = os.open(os.environ["BENCH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    if seconds:
        time.sleep(seconds)
