"""The benchmark's Django tasks: the common body, on the queue ``bench``."""

from django_blueque.compat import task

from .taskbody import record


@task(queue_name="bench")
def noop(label: str) -> None:
    record(label)


@task(queue_name="bench")
def sleep(label: str, seconds: float) -> None:
    record(label, seconds)
