"""Lua scripts for what operators do to tasks (see operations.py).

Each acts on one task, only if the task is where its status says, and does
every read and check before its first write (Redis does not roll a script
back). Each returns one word: what it did, or why it did nothing.
"""

from __future__ import annotations

# Put a failed task back in pending for a new attempt. Its final error joins
# the attempt history in 'errors'; its loss and release counts start afresh
# (an operator chose to run it again); 'attempt' is kept, so the next start
# is a new attempt. A failed task is in the failed list until a monitor
# reports it, then in the reported set; in neither, a monitor is reporting it
# right now, and retrying it would let that monitor's acknowledgement list a
# pending task as reported (and expire it): it is refused until then.
# KEYS: task hash, failed list, reported failed set, pending list.
# ARGV: task id, now, channel.
# Returns 'retried', 'gone', 'not-failed' or 'in-flight'.
RETRY_FAILED = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
    return 'gone'
end
if status ~= 'failed' then
    return 'not-failed'
end
local in_list = redis.call('LPOS', KEYS[2], ARGV[1], 'RANK', -1)
local in_set = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not in_list and not in_set then
    return 'in-flight'
end
local fields = redis.call('HMGET', KEYS[1], 'errors', 'attempt', 'error', 'exception', 'traceback', 'updated')
local ok, errors = pcall(cjson.decode, fields[1] or '[]')
if not ok or type(errors) ~= 'table' then
    errors = {{error = 'earlier errors, unreadable: ' .. string.sub(fields[1], 1, 1000)}}
end
errors[#errors + 1] = {attempt = tonumber(fields[2]) or 0, error = fields[3] or '', exception = fields[4] or '',
    traceback = string.sub(fields[5] or '', 1, 10000), failed_at = tonumber(fields[6]),
    retried_at = tonumber(ARGV[2])}
local encoded = cjson.encode(errors)
-- Every read and check is done: writes from here on.
if in_list then
    redis.call('LREM', KEYS[2], -1, ARGV[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'pending', 'updated', ARGV[2], 'errors', encoded)
redis.call('HDEL', KEYS[1], 'error', 'exception', 'traceback', 'result', 'pid', 'node', 'process_token',
    'progress', 'progress_message', 'recoveries', 'releases', 'lost')
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], 'retried')
return 'retried'
"""

# Cancel a task that has not started: a scheduled one leaves the scheduled
# set, a pending one the pending list (searched from its oldest end, where
# the next tasks to run are). It ends failed, with error "Cancelled" and the
# exception django_blueque.protocol.errors.Cancelled, in the failed list, so
# monitors report it like any failure. A pending task that is not in the
# pending list was just taken by a listener: too late.
# KEYS: task hash, scheduled set, pending list, failed list.
# ARGV: task id, now, reason.
# Returns 'cancelled', 'gone', 'not-waiting' or 'taken'.
CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
    return 'gone'
end
if status == 'scheduled' then
    if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
        return 'taken'
    end
elseif status == 'pending' then
    if redis.call('LREM', KEYS[3], -1, ARGV[1]) == 0 then
        return 'taken'
    end
else
    return 'not-waiting'
end
-- The removal above was the only check that writes; it succeeded.
redis.call('HSET', KEYS[1], 'status', 'failed', 'updated', ARGV[2], 'cancelled', ARGV[2],
    'error', ARGV[3], 'exception', 'django_blueque.protocol.errors.Cancelled')
redis.call('HDEL', KEYS[1], 'eta')
redis.call('LPUSH', KEYS[4], ARGV[1])
return 'cancelled'
"""

# Delete a finished task: its hash, and its id from the finished list (not
# yet reported) or the reported set. One that a monitor is reporting right
# now is deleted too: the monitor sends no signal for a task it cannot read,
# and the id it then lists as reported is swept with the expired results.
# KEYS: task hash, finished list, reported set.
# ARGV: task id, the status it must have ('complete' or 'failed').
# Returns 'deleted', 'gone' or 'not-finished'.
DELETE_FINISHED = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
    return 'gone'
end
if status ~= ARGV[2] then
    return 'not-finished'
end
redis.call('LREM', KEYS[2], -1, ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
return 'deleted'
"""

# Forget a queue name: only when nothing is left under it.
# KEYS: the queues sorted set, then every key of the queue (lists, sets,
# sorted sets), each of which must be empty. ARGV: queue name.
# Returns 'forgotten', 'unknown', or the first key that is not empty.
FORGET_QUEUE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    return 'unknown'
end
for i = 2, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        return KEYS[i]
    end
end
redis.call('ZREM', KEYS[1], ARGV[1])
return 'forgotten'
"""
