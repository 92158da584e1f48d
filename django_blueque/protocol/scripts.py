"""Lua scripts for the steps that must be atomic.

Every key a script touches is passed in ``KEYS``, as Redis asks. Where the
keys cannot be known before the step runs (taking a task: its id is only known
once it has been moved) the step is split in two, and the gap is repaired by
recovery; see :mod:`django_blueque.protocol.listener`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import lifecycle_scripts

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

# Take the oldest pending id of the first queue that has one, in the order the
# queues are given, so a listener on several queues serves them by priority
# and never takes more than one task. When all are empty (an idle poll) it
# costs one EXISTS, whatever the number of queues.
# KEYS: pending_1, reserved_1, pending_2, reserved_2, ...
# Returns {index of the queue (0-based), task id} or false.
TAKE_FIRST = """
local pending = {}
for i = 1, #KEYS, 2 do
    pending[#pending + 1] = KEYS[i]
end
if redis.call('EXISTS', unpack(pending)) == 0 then
    return false
end
for i = 1, #KEYS, 2 do
    local task_id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'RIGHT', 'LEFT')
    if task_id then
        return {tostring((i - 1) / 2), task_id}
    end
end
return false
"""

# Move due scheduled tasks to pending. ZREM decides which caller moves each
# task, so any number of schedulers (and Blueque 1.0.1's WATCH-based one) can
# run at once and a task is still enqueued exactly once.
# KEYS: scheduled set, pending list, task hash 1..n. ARGV: now, channel, id 1..n.
# Returns the number of tasks moved.
ENQUEUE_DUE = """
local moved = 0
for i = 3, #KEYS do
    local task_id = ARGV[i]
    if redis.call('ZREM', KEYS[1], task_id) == 1
        and redis.call('HGET', KEYS[i], 'status') == 'scheduled' then
        redis.call('HSET', KEYS[i], 'status', 'pending', 'updated', ARGV[1])
        redis.call('LPUSH', KEYS[2], task_id)
        moved = moved + 1
    end
end
if moved > 0 then
    redis.call('PUBLISH', ARGV[2], 'due')
end
return moved
"""

# Take over one task of a dead listener: move it to this listener's reserved
# list as a reserved task, so the caller runs it as if it had just taken it.
# A finished task, or an id without a hash, is only dropped from the list.
# KEYS: dead listener's reserved list, own reserved list, task hash, started set.
# ARGV: task id, own listener id, now, started member of the dead run or ''.
# Returns 1 when the task was taken over, 0 when the id was only dropped, and
# false when another listener got there first.
RECLAIM = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return false
end
if ARGV[4] ~= '' then
    redis.call('SREM', KEYS[4], ARGV[4])
end
local status = redis.call('HGET', KEYS[3], 'status')
if not status or status == 'complete' or status == 'failed' then
    return 0
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'status', 'reserved', 'node', ARGV[2],
    'reclaimed_node', ARGV[2], 'updated', ARGV[3])
redis.call('HDEL', KEYS[3], 'pid')
return 1
"""


# Record the progress of a running task; a task that is no longer running
# (finished, or deleted) is left as it is.
# KEYS: task hash. ARGV: fraction, message, now. Returns 1 when recorded.
PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') ~= 'started' then
    return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'progress_message', ARGV[2], 'updated', ARGV[3])
return 1
"""

# Add a listener to its queue's set; count it in blueque_queues only once.
# A listener that keeps a heartbeat beats here first, so it is never seen
# registered without one, and publishes its timeout.
# KEYS: listeners set, queues sorted set, listener heartbeats, listener timeouts.
# ARGV: listener id, queue name, its timeout ('' = a listener that does not beat).
REGISTER = """
if ARGV[3] ~= '' then
    local t = redis.call('TIME')
    redis.call('ZADD', KEYS[3], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
    redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
end
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    redis.call('ZINCRBY', KEYS[2], 1, ARGV[2])
    return 1
end
return 0
"""


class Scripts:
    """The scripts registered on one Redis client (EVALSHA, loaded on demand)."""

    def __init__(self, redis: Redis) -> None:
        self.reserve: Script = redis.register_script(lifecycle_scripts.RESERVE)
        self.take_first: Script = redis.register_script(TAKE_FIRST)
        self.enqueue_due: Script = redis.register_script(ENQUEUE_DUE)
        self.reclaim: Script = redis.register_script(RECLAIM)
        self.register: Script = redis.register_script(REGISTER)
        self.progress: Script = redis.register_script(PROGRESS)
        self.start: Script = redis.register_script(lifecycle_scripts.START)
        self.finish: Script = redis.register_script(lifecycle_scripts.FINISH)
        self.retry: Script = redis.register_script(lifecycle_scripts.RETRY)
        self.beat: Script = redis.register_script(lifecycle_scripts.BEAT)
        self.give_back: Script = redis.register_script(lifecycle_scripts.GIVE_BACK)
        self.recover: Script = redis.register_script(lifecycle_scripts.RECOVER)
        self.deregister: Script = redis.register_script(lifecycle_scripts.DEREGISTER)
