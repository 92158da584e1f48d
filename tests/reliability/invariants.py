"""What Redis must hold after any fault: each task id in exactly one place, with a hash that agrees.

Shared by the crash sweep (test_crash_points.py) and the model of the protocol
(test_model.py). The places are the pending list, a reserved list, the
scheduled set, the complete or failed list, a reported set, and a monitor's
list while it reports; the hash agrees when its status names that place, and
a held task names its listener (and, started, has its one member of the
started set and a task heartbeat).
"""

from __future__ import annotations

from collections import defaultdict

import redis

from django_blueque.protocol import keys
from django_blueque.protocol.replies import fields, string, string_or_none, string_set, strings

QUEUE = "q"

FINISHED = {"complete": "complete", "failed": "failed"}


def listed(db: redis.Redis, key: str) -> list[str]:
    return strings(db.lrange(key, 0, -1))


def members(db: redis.Redis, key: str) -> list[str]:
    return strings(db.zrange(key, 0, -1))


def hash_of(db: redis.Redis, task_id: str) -> dict[str, str]:
    return fields(db.hgetall(keys.task(task_id)))


def status_of(db: redis.Redis, task_id: str) -> str | None:
    return string_or_none(db.hget(keys.task(task_id), "status"))


def places(db: redis.Redis) -> dict[str, list[tuple[str, str]]]:
    """Every place each task id is in: (container, listener or monitor) pairs."""
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for task_id in listed(db, keys.pending(QUEUE)):
        found[task_id].append(("pending", ""))
    for task_id in members(db, keys.scheduled(QUEUE)):
        found[task_id].append(("scheduled", ""))
    for status in FINISHED:
        finished = keys.complete(QUEUE) if status == "complete" else keys.failed(QUEUE)
        for task_id in listed(db, finished):
            found[task_id].append((status, ""))
        for task_id in members(db, keys.reported(QUEUE, status)):
            found[task_id].append((f"reported {status}", ""))
    prefix = keys.reserved(QUEUE, "")
    for key in strings(db.scan_iter(prefix + "*")):
        for task_id in listed(db, key):
            found[task_id].append(("reserved", key[len(prefix) :]))
    prefix = keys.monitoring("")
    for key in strings(db.scan_iter(prefix + "*")):
        for entry in listed(db, key):
            _, status, task_id = keys.parse_monitoring_entry(entry)
            if status != "retrying":  # a report of an earlier attempt: the task is elsewhere too
                found[task_id].append((f"monitoring {status}", key[len(prefix) :]))
    return found


#: Fields only a task that a listener holds may have.
HELD = ("node", "pid", "process_token")


def agrees(place: tuple[str, str], task: dict[str, str], started: set[str], task_id: str) -> bool:
    container, owner = place
    status = task.get("status")
    if status in ("pending", "scheduled") and any(name in task for name in HELD):
        return False  # a waiting task names no listener and no process
    if container == "reserved":
        if status == "pending":
            return True  # taken, not yet marked reserved: the listener's two steps (see listener.py)
        if status == "reserved":
            return task.get("node") == owner
        member = keys.started_member(owner, task.get("pid", ""), task_id)
        return status == "started" and task.get("node") == owner and member in started
    return status == container.split()[-1]


def problems_after_crash(db: redis.Redis, ids: list[str]) -> dict[str, str]:
    """Task ids not in exactly one place with a hash that agrees, and what is wrong with each."""
    found = places(db)
    started = string_set(db.smembers(keys.started(QUEUE)))
    hashes = task_hashes(db)
    wrong: dict[str, str] = {}
    for task_id in sorted(set(ids) | set(found) | hashes):
        task = hash_of(db, task_id)
        where = found.get(task_id, [])
        if not task:
            if where:
                wrong[task_id] = f"no hash, but in {where}"
        elif len(where) != 1:
            wrong[task_id] = f"status {task.get('status')!r}, in {len(where)} places: {where}"
        elif not agrees(where[0], task, started, task_id):
            wrong[task_id] = f"in {where[0]}, but its hash says {task}"
    for member in started:
        listener, pid, task_id = keys.parse_started_member(member)
        task = hash_of(db, task_id)
        if (task.get("status"), task.get("node"), task.get("pid")) != ("started", listener, pid):
            wrong.setdefault(task_id, f"started member {member!r}, but its hash says {task}")
    beating = set(members(db, keys.task_heartbeats()))
    for task_id in beating:
        if status_of(db, task_id) != "started":
            wrong.setdefault(task_id, "a task heartbeat for a task that is not started")
    for task_id in hashes - beating:
        if status_of(db, task_id) == "started":
            wrong.setdefault(task_id, "started, without a task heartbeat")
    return wrong


def task_hashes(db: redis.Redis) -> set[str]:
    found = strings(db.scan_iter(keys.task("*")))
    return {key.removeprefix(keys.task("")) for key in found if string(db.type(key)) == "hash"}


def problems_after_recovery(db: redis.Redis, ids: list[str]) -> dict[str, str]:
    """As after a crash, and: every task complete or failed and reported, nothing left behind."""
    wrong = problems_after_crash(db, ids)
    for task_id in sorted(set(ids) | task_hashes(db)):
        status = status_of(db, task_id)
        if status is not None and not db.zscore(keys.reported(QUEUE, status), task_id):
            wrong.setdefault(task_id, f"stuck: {status!r} after recovery, not reported finished")
    leftovers = {
        "pending": db.llen(keys.pending(QUEUE)),
        "scheduled": db.zcard(keys.scheduled(QUEUE)),
        "started": db.scard(keys.started(QUEUE)),
        "task heartbeats": db.zcard(keys.task_heartbeats()),
        "retrying": db.llen(keys.retrying(QUEUE)),
        "listeners": db.scard(keys.listeners(QUEUE)),
        "listener count": int(db.zscore(keys.queues(), QUEUE) or 0),
        "reserved lists": sum(1 for _ in db.scan_iter(keys.reserved(QUEUE, "*"))),
        "monitors' lists": sum(1 for _ in db.scan_iter(keys.monitoring("*"))),
    }
    left = {name: count for name, count in leftovers.items() if count}
    if left:
        wrong.setdefault("(queue)", f"left behind: {left}")
    return wrong
