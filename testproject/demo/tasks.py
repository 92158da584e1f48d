"""The demo's Django tasks."""

import time

from django_blueque.compat import task
from django_blueque.progress import report_progress


@task
def reverse(text: str) -> str:
    return text[::-1]


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task(queue_name="slow")
def long_report(steps: int = 60, seconds_per_step: float = 2.0) -> dict[str, int]:
    for step in range(steps):
        time.sleep(seconds_per_step)
        report_progress((step + 1) / steps, f"step {step + 1} of {steps}")
    return {"steps": steps}
