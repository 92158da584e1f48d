"""The Dramatiq app: RedisBroker with its default middleware."""

import os

import dramatiq
from bench_project.taskbody import record
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(label):
    record(label)


@dramatiq.actor(queue_name="bench", max_retries=0, time_limit=3_600_000)
def sleep(label, seconds):
    record(label, seconds)
