"""A worker of the published blueque 1.0.1: its ``ForkingRunner``, which runs one task at a time
in a forked child; ``CONCURRENCY`` runners side by side make ``CONCURRENCY`` slots.

    python blueque101_worker.py CONCURRENCY   (queue ``bench101``, Redis at $BENCH_REDIS_URL)

SIGTERM stops the runners (1.0.1 has no graceful stop of its own).
"""

import contextlib
import json
import os
import signal
import sys

from bench_project.taskbody import record
from blueque import Client
from blueque.forking_runner import ForkingRunner


def run(task):
    params = json.loads(task.parameters)
    record(params["label"], params.get("seconds", 0.0))
    return ""


def serve():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ForkingRunner(Client(os.environ["BENCH_REDIS_URL"]), "bench101", run).run()


def main(concurrency):
    children = []
    for _ in range(concurrency):
        pid = os.fork()
        if pid == 0:
            try:
                serve()
            finally:
                os._exit(1)
        children.append(pid)

    def stop(signum, frame):
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break


if __name__ == "__main__":
    main(int(sys.argv[1]))
