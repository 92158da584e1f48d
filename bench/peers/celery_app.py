"""The Celery app: Redis broker, no result backend, the shipped defaults otherwise."""

import os

from bench_project.taskbody import record
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_default_queue="bench",
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(label):
    record(label)


@app.task(name="bench.sleep")
def sleep(label, seconds):
    record(label, seconds)
