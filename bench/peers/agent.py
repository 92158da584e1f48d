"""The producer side of one system, run under that system's own interpreter and virtualenv.

    python agent.py SYSTEM       (Redis at $BENCH_REDIS_URL; run with bench/ on PYTHONPATH)

SYSTEM is one of ``django`` (a django-blueque Django task, ``.enqueue()``), ``raw`` (a raw
Blueque task through django-blueque's protocol ``Queue.enqueue()``), ``blueque101``, ``rq``,
``celery``, ``huey``, ``dramatiq``. It reads one JSON request a line on stdin and answers each with
one JSON line on stdout:

- ``{"op": "enqueue", "task": "noop" | "sleep", "labels": [...], "seconds": S, "bulk": false}``:
  enqueues one task per label, one call each (or, with ``"bulk": true``, one call of the
  system's bulk API); answers ``{"elapsed": seconds, "stamps": [time.time() before each call]}``.
- ``{"op": "bulk_api"}``: ``{"api": "<what bulk enqueue calls>"}`` or ``{"api": null}``.
- ``{"op": "quit"}``.

Every system's task body is ``bench_project.taskbody.record(label, seconds)``.
"""

import json
import os
import sys
import time

URL = os.environ["BENCH_REDIS_URL"]


def raw_parameters(label, seconds):
    return json.dumps({"label": label, "seconds": seconds}) if seconds else json.dumps({"label": label})


class Django:
    def __init__(self):
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_project.settings")
        import django

        django.setup()
        from bench_project import tasks

        from django_blueque.backends import BluequeBackend

        self.tasks = tasks
        self.bulk_api = "BluequeBackend.enqueue_many()" if hasattr(BluequeBackend, "enqueue_many") else None

    def one(self, task, label, seconds):
        if task == "noop":
            self.tasks.noop.enqueue(label)
        else:
            self.tasks.sleep.enqueue(label, seconds)

    def bulk(self, task, labels, seconds):
        from django_blueque.compat import task_backends

        if task == "noop":
            calls = [((label,), {}) for label in labels]
            task_backends["default"].enqueue_many(self.tasks.noop, calls)
        else:
            calls = [((label, seconds), {}) for label in labels]
            task_backends["default"].enqueue_many(self.tasks.sleep, calls)


class Raw:
    def __init__(self):
        from django_blueque.protocol import Client, Queue

        self.queue = Client(URL).get_queue("raw")
        self.bulk_api = "Queue.enqueue_many()" if hasattr(Queue, "enqueue_many") else None

    def one(self, task, label, seconds):
        self.queue.enqueue(raw_parameters(label, seconds))

    def bulk(self, task, labels, seconds):
        self.queue.enqueue_many([raw_parameters(label, seconds) for label in labels])


class Blueque101:
    bulk_api = None

    def __init__(self):
        from blueque import Client

        self.queue = Client(URL).get_queue("bench101")

    def one(self, task, label, seconds):
        self.queue.enqueue(raw_parameters(label, seconds))


class RQ:
    bulk_api = "Queue.enqueue_many() (one pipeline)"

    def __init__(self):
        import rq_app
        from redis import Redis
        from rq import Queue

        self.Queue = Queue
        self.queue = Queue("bench", connection=Redis.from_url(URL))
        self.funcs = {"noop": rq_app.noop, "sleep": rq_app.sleep}

    def args(self, task, label, seconds):
        return (label,) if task == "noop" else (label, seconds)

    def one(self, task, label, seconds):
        self.queue.enqueue(self.funcs[task], *self.args(task, label, seconds))

    def bulk(self, task, labels, seconds):
        func = self.funcs[task]
        self.queue.enqueue_many(
            [self.Queue.prepare_data(func, args=self.args(task, label, seconds)) for label in labels]
        )


class Celery:
    bulk_api = "group().apply_async() (one LPUSH each)"

    def __init__(self):
        import celery_app
        from celery import group

        self.group = group
        self.funcs = {"noop": celery_app.noop, "sleep": celery_app.sleep}

    def sig(self, task, label, seconds):
        return self.funcs[task].s(label) if task == "noop" else self.funcs[task].s(label, seconds)

    def one(self, task, label, seconds):
        self.sig(task, label, seconds).apply_async()

    def bulk(self, task, labels, seconds):
        self.group([self.sig(task, label, seconds) for label in labels]).apply_async()


class Huey:
    bulk_api = "task.map() (one LPUSH each)"

    def __init__(self):
        import huey_app

        self.funcs = {"noop": huey_app.noop, "sleep": huey_app.sleep}

    def one(self, task, label, seconds):
        if task == "noop":
            self.funcs[task](label)
        else:
            self.funcs[task](label, seconds)

    def bulk(self, task, labels, seconds):
        self.funcs[task].map([(label,) if task == "noop" else (label, seconds) for label in labels])


class Dramatiq:
    bulk_api = "group().run() (one script call each)"

    def __init__(self):
        import dramatiq_app
        from dramatiq import group

        self.group = group
        self.funcs = {"noop": dramatiq_app.noop, "sleep": dramatiq_app.sleep}

    def message(self, task, label, seconds):
        return self.funcs[task].message(label) if task == "noop" else self.funcs[task].message(label, seconds)

    def one(self, task, label, seconds):
        if task == "noop":
            self.funcs[task].send(label)
        else:
            self.funcs[task].send(label, seconds)

    def bulk(self, task, labels, seconds):
        self.group([self.message(task, label, seconds) for label in labels]).run()


SYSTEMS = {
    "django": Django,
    "raw": Raw,
    "blueque101": Blueque101,
    "rq": RQ,
    "celery": Celery,
    "huey": Huey,
    "dramatiq": Dramatiq,
}


def reply(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main(name):
    system = SYSTEMS[name]()
    reply(ready=True, pid=os.getpid())
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "quit":
                reply(ok=True)
                return
            if op == "bulk_api":
                reply(api=system.bulk_api)
            elif op == "enqueue":
                task, labels, seconds = request["task"], request["labels"], float(request.get("seconds", 0.0))
                stamps = []
                begun = time.perf_counter()
                if request.get("bulk"):
                    stamps.append(time.time())
                    system.bulk(task, labels, seconds)
                else:
                    for label in labels:
                        stamps.append(time.time())
                        system.one(task, label, seconds)
                reply(elapsed=time.perf_counter() - begun, stamps=stamps)
            else:
                reply(error=f"unknown op {op!r}")
        except Exception as exc:  # reported to the harness, which stops
            reply(error=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1])
