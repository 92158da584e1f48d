"""The handler of the demo's raw Blueque queue: 1.0-style string parameters in, a string out.

Any Blueque client can enqueue here, e.g. with the published blueque 1.0.1::

    from blueque import Client
    Client("redis://127.0.0.1:6379/0").get_queue("raw").enqueue("some text")
"""

from django_blueque.protocol import Task

QUEUE = "raw"


def reverse_text(task: Task) -> str:
    return (task.parameters or "")[::-1]
