"""The Huey app: RedisHuey (blocking pops, the default), results off since the tasks return nothing."""

import os

from bench_project.taskbody import record
from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"], results=False)


@huey.task()
def noop(label):
    record(label)


@huey.task()
def sleep(label, seconds):
    record(label, seconds)
