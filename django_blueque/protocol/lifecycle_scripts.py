"""Lua scripts for starting and finishing tasks, heartbeats and recovery.

Every key is named in ``KEYS``. Heartbeats and their checks use the Redis
server's clock (``TIME``), so hosts whose clocks disagree still agree on who
is alive. Outcomes are fenced by the ``attempt`` field: a process that was
presumed dead and whose task was given to another cannot overwrite what the
newer attempt records.
"""

from __future__ import annotations

# Shared by the scripts below.
# give_back: a run ended without an outcome. 'release' (a worker gave it back
# on shutdown) puts it back in pending, at the front; 'lost' (its process
# died) counts a recovery and requeues it, or fails it once it has been lost
# more than max times.
_LIB = """
local function server_now()
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function give_back(task, pending, failed, reserved, started, task_beats,
                         task_id, listener, mode, max, reason, now, channel)
    local status = redis.call('HGET', task, 'status')
    local pid = redis.call('HGET', task, 'pid')
    redis.call('LREM', reserved, 1, task_id)
    redis.call('ZREM', task_beats, task_id)
    if pid then
        redis.call('SREM', started, listener .. ' ' .. pid .. ' ' .. task_id)
    end
    if not status or status == 'complete' or status == 'failed' then
        return 'dropped'
    end
    if mode == 'lost' and status == 'started' then
        local recoveries = redis.call('HINCRBY', task, 'recoveries', 1)
        redis.call('HSET', task, 'lost', reason)
        if recoveries > tonumber(max) then
            redis.call('HSET', task, 'status', 'failed', 'updated', now,
                'error', 'Worker lost ' .. recoveries .. ' times; last: ' .. reason,
                'exception', 'django_blueque.protocol.errors.WorkerLost')
            redis.call('LPUSH', failed, task_id)
            return 'failed'
        end
    end
    redis.call('HSET', task, 'status', 'pending', 'updated', now)
    redis.call('HDEL', task, 'pid', 'node', 'process_token', 'progress', 'progress_message')
    redis.call('RPUSH', pending, task_id)
    redis.call('PUBLISH', channel, 'requeued')
    if mode == 'lost' and status == 'started' then
        return 'requeued'
    end
    return 'released'
end
"""

# The start of FINISH and RETRY: an outcome is written only by the attempt
# that owns the task. A task that is gone (deleted, or lost with Redis's
# data) only has its ids cleaned up; a newer attempt's task only loses this
# process's started member.
# KEYS[1..3]: reserved list, started set, task hash. ARGV[1..3]: task id, started member, attempt.
_STILL_OURS = """
if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('LREM', KEYS[1], 1, ARGV[1])
    redis.call('SREM', KEYS[2], ARGV[2])
    return 0
end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], 'attempt') ~= ARGV[3] then
    redis.call('SREM', KEYS[2], ARGV[2])
    return 0
end
"""

# A process starts a task its listener reserved. Refused (0) when the task is
# no longer reserved by that listener: recovery gave it to someone else.
# KEYS: task hash, started set, task heartbeats.
# ARGV: task id, listener id, pid, process token, now. Returns the attempt
# number (the same again for a retry whose first reply was lost), or 0.
START = (
    _LIB
    + """
local status = redis.call('HGET', KEYS[1], 'status')
local node = redis.call('HGET', KEYS[1], 'node')
if status == 'started' and node == ARGV[2] and redis.call('HGET', KEYS[1], 'pid') == ARGV[3] then
    return tonumber(redis.call('HGET', KEYS[1], 'attempt'))  -- a retry of this very start
end
if status ~= 'reserved' or node ~= ARGV[2] then
    return 0
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'status', 'started', 'pid', ARGV[3], 'process_token', ARGV[4],
    'started_at', ARGV[5], 'updated', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[1])
redis.call('ZADD', KEYS[3], server_now(), ARGV[1])
return attempt
"""
)

# Record a task's outcome: Blueque 1.0.1's complete/fail, fenced by attempt.
# KEYS: reserved list, started set, task hash, complete or failed list, task heartbeats.
# ARGV: task id, started member, attempt ('' = unfenced), status, field, value, ...
# Returns 1 when recorded (or already recorded: a retry after a lost reply);
# 0 when a newer attempt owns the task, or the task is gone (deleted, or lost
# with Redis's data).
FINISH = (
    _STILL_OURS
    + """
if redis.call('HGET', KEYS[3], 'status') == ARGV[4] then
    return 1  -- a retry of this very outcome
end
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], 'status', ARGV[4], unpack(ARGV, 5))
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""
)

# An attempt failed and the task is to run again later: back to the
# scheduled set, its error appended to the JSON list in 'errors', and
# "<id>:<attempt>" pushed for monitors to report. Fenced by attempt like FINISH.
# KEYS: reserved list, started set, task hash, scheduled set, task heartbeats, retrying list.
# ARGV: task id, started member, attempt, eta, now, error, exception, traceback.
# Returns 1 when recorded (or already recorded), 0 when not ours.
RETRY = (
    _STILL_OURS
    + """
if redis.call('HGET', KEYS[3], 'status') == 'scheduled' then
    return 1  -- a retry of this very write
end
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
local errors = cjson.decode(redis.call('HGET', KEYS[3], 'errors') or '[]')
errors[#errors + 1] = {attempt = tonumber(ARGV[3]) or 0, error = ARGV[6], exception = ARGV[7],
    traceback = string.sub(ARGV[8], 1, 10000), retry_at = tonumber(ARGV[4])}
redis.call('HSET', KEYS[3], 'status', 'scheduled', 'eta', ARGV[4], 'updated', ARGV[5],
    'error', ARGV[6], 'exception', ARGV[7], 'traceback', ARGV[8], 'errors', cjson.encode(errors))
redis.call('HDEL', KEYS[3], 'pid', 'node', 'process_token', 'progress', 'progress_message')
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('LPUSH', KEYS[6], ARGV[1] .. ':' .. ARGV[3])
return 1
"""
)

# Heartbeat of a listener and of the tasks its processes run.
# KEYS: listener heartbeats, task heartbeats. ARGV: listener id ('' = none), task ids...
# Returns the server time of the beat.
BEAT = (
    _LIB
    + """
local now = server_now()
if ARGV[1] ~= '' then
    redis.call('ZADD', KEYS[1], now, ARGV[1])
end
for i = 2, #ARGV do
    -- XX: only tasks already running (START adds them, an outcome removes
    -- them), so a beat that comes just after a task finished cannot bring
    -- it back.
    redis.call('ZADD', KEYS[2], 'XX', now, ARGV[i])
end
return tostring(now)
"""
)

# A listener gives back a task of its own whose run ended without an outcome:
# 'release' on shutdown, 'lost' when the process running it died.
# KEYS: task hash, pending list, failed list, own reserved list, started set, task heartbeats.
# ARGV: task id, listener id, mode, max recoveries, reason, now, channel, attempt ('' = any).
# Returns 'released', 'requeued', 'failed', 'dropped' or 'not-ours'.
GIVE_BACK = (
    _LIB
    + """
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[2]
    or (ARGV[8] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[8]) then
    return 'not-ours'
end
return give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
"""
)

# Recover one task from the reserved list of a listener presumed dead. Safe
# when many recover at once: whoever finds the id still in the list acts.
# KEYS: task hash, pending list, failed list, dead listener's reserved list,
#       started set, task heartbeats, listener heartbeats.
# ARGV: task id, dead listener id, max recoveries, reason, now, channel,
#       timeout, process alive by pid ('1'/'0', used for tasks that never beat),
#       force ('1': skip the listener heartbeat check).
# Returns 'alive' (the listener beat again), 'gone', 'running', or what
# give_back returns.
RECOVER = (
    _LIB
    + """
local now = server_now()
local timeout = tonumber(ARGV[7])
local beat = redis.call('ZSCORE', KEYS[7], ARGV[2])
if ARGV[9] ~= '1' and beat and now - tonumber(beat) <= timeout then
    return 'alive'
end
if not redis.call('LPOS', KEYS[4], ARGV[1]) then
    return 'gone'
end
local mode = 'release'
if redis.call('HGET', KEYS[1], 'status') == 'started' then
    -- A process that beats is judged by its heartbeat alone (a frozen one
    -- is presumed dead; fencing keeps it from overwriting the next attempt).
    -- One that never beat (Blueque 1.0.1's) by the caller's pid check.
    local task_beat = redis.call('ZSCORE', KEYS[6], ARGV[1])
    if (task_beat and now - tonumber(task_beat) <= timeout) or (not task_beat and ARGV[8] == '1') then
        return 'running'
    end
    mode = 'lost'
end
return give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
    ARGV[1], ARGV[2], mode, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
"""
)
