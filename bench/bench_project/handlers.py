"""The raw Blueque handler of the queue ``raw``: JSON parameters ``{"label": ..., "seconds": ...}``,
as the peers' Blueque 1.0.1 worker reads them."""

import json

from django_blueque.protocol import Task

from .taskbody import record


def run(task: Task) -> str:
    params = json.loads(task.parameters or "{}")
    record(str(params["label"]), float(params.get("seconds", 0.0)))
    return ""
