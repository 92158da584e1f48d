"""Drives the published ``blueque`` 1.0.1 package for the interoperability tests.

Runs under an interpreter that has blueque 1.0.1 installed (it pins
redis-py < 6, so it lives in its own virtualenv). Usage:
``python blueque101_agent.py COMMAND REDIS_URL [ARGS...]``; prints JSON.
"""

import json
import os
import sys
import time

from blueque import Client


def main(command, url, *args):
    client = Client(url)
    if command == "enqueue":
        queue, parameters = args
        return client.get_queue(queue).enqueue(parameters)
    if command == "schedule":
        queue, parameters, eta = args
        return client.get_queue(queue).schedule(parameters, float(eta))
    if command == "enqueue_due":
        (queue,) = args
        client.get_queue(queue).enqueue_due_tasks()
        return None
    if command in ("complete", "fail"):
        # Take one task the way 1.0.1's forking runner does, and finish it.
        (queue,) = args
        listener = client.get_listener(queue)
        task = listener.listen()
        processor = client.get_processor(task)
        processor.start(os.getpid())
        if command == "complete":
            processor.complete("1.0.1 did " + task.parameters)
        else:
            processor.fail("1.0.1 failed " + task.parameters)
        client._redis.srem("blueque_listeners_" + queue, listener._name)
        return task.id
    if command == "read":
        tasks = {}
        for task_id in args:
            task = client.get_task(task_id)
            tasks[task_id] = {
                name: getattr(task, name)
                for name in ("status", "queue", "parameters", "result", "error", "node", "pid", "created", "updated")
            }
            tasks[task_id]["all_fields"] = task._attributes
        return tasks
    if command == "claim_orphan":
        (queue,) = args
        task = client.get_listener(queue).claim_orphan()
        return None if task is None else task.id
    raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    started = time.time()
    print(json.dumps(main(*sys.argv[1:])))
