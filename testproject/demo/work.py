"""What the demo's worker does with a task: wait a little, then reverse a text."""

import json
import time

from django_blueque.protocol import Task

QUEUE = "demo"


def parameters(text: str, seconds: float) -> str:
    return json.dumps({"text": text, "seconds": seconds})


def reverse_text(task: Task) -> str:
    data = json.loads(task.parameters or "{}")
    time.sleep(float(data.get("seconds", 0)))
    return str(data["text"])[::-1]
