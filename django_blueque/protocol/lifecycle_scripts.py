"""Lua scripts for taking, starting and finishing tasks, heartbeats and recovery.

Every key is named in ``KEYS``. Heartbeats use the Redis server's clock
(``TIME``), and are compared only with themselves: an observer judges a
listener by watching its heartbeat not change (see liveness.py), never by
comparing clocks. Outcomes are fenced by the ``attempt`` and ``node`` fields:
a process that was presumed dead and whose task was given to another cannot
overwrite what the newer attempt records.

Redis does not roll back a script that fails half-way, so each script does
all its reads and checks before its first write, and a task whose counters
are malformed is failed with a clear error rather than left between states.
"""

from __future__ import annotations

# Shared by every script that needs it; see each function's comment.
LIB = """
local function server_now()
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- Whether a heartbeat read now is the one an observer judged ('' = none).
local function same_beat(current, judged)
    if not current then
        return judged == ''
    end
    return judged ~= '' and tonumber(current) == tonumber(judged)
end

-- A counter field of a task: a whole number >= 0 (0 when absent), or nil
-- when it holds anything else.
local function counter(task, field)
    local value = redis.call('HGET', task, field)
    if not value then
        return 0
    end
    local number = tonumber(value)
    if number and number >= 0 and number == math.floor(number) and number < 9007199254740992 then
        return number
    end
    return nil
end

-- What is wrong with a task's counters, as a message, or nil.
local function malformed(task)
    for _, field in ipairs({'attempt', 'recoveries', 'releases'}) do
        if counter(task, field) == nil then
            return 'its ' .. field .. ' field is not a whole number >= 0: '
                .. string.sub(redis.call('HGET', task, field), 1, 100)
        end
    end
    return nil
end

-- Writes only: fail a task that cannot be run because its data is malformed.
local function reject(task, failed, task_id, reason, now)
    redis.call('HSET', task, 'status', 'failed', 'updated', now, 'error', 'Malformed task: ' .. reason,
        'exception', 'django_blueque.protocol.errors.MalformedTask')
    redis.call('LPUSH', failed, task_id)
end

-- A run ended without an outcome: put the task back in pending, at the
-- front, or fail it once it went back too often. mode 'release': given back
-- unfinished (a shutdown, or a dead listener's task that had not started),
-- counted in 'releases'; 'lost': the process handling it died, counted in
-- 'recoveries'; 'reject': failed at once with reason (its data is bad).
local function give_back(task, pending, failed, reserved, started, task_beats,
                         task_id, listener, mode, max_recoveries, max_releases, reason, now, channel)
    local status = redis.call('HGET', task, 'status')
    local pid = redis.call('HGET', task, 'pid')
    local problem = malformed(task)
    local field, limit, what = 'releases', tonumber(max_releases), 'Given back unfinished '
    if mode == 'lost' then
        field, limit, what = 'recoveries', tonumber(max_recoveries), 'Worker lost '
    end
    local count = (counter(task, field) or 0) + 1
    -- Every read and check is done: writes from here on.
    redis.call('LREM', reserved, 1, task_id)
    redis.call('ZREM', task_beats, task_id)
    if pid then
        redis.call('SREM', started, listener .. ' ' .. pid .. ' ' .. task_id)
    end
    if not status or status == 'complete' or status == 'failed' or status == 'scheduled' then
        return 'dropped'
    end
    if mode == 'reject' or problem then
        reject(task, failed, task_id, problem or reason, now)
        return 'rejected'
    end
    redis.call('HSET', task, field, count, 'updated', now)
    if mode == 'lost' then
        redis.call('HSET', task, 'lost', reason)
    end
    if count > limit then
        redis.call('HSET', task, 'status', 'failed',
            'error', what .. count .. ' times; last: ' .. reason,
            'exception', 'django_blueque.protocol.errors.WorkerLost')
        redis.call('LPUSH', failed, task_id)
        return 'failed'
    end
    redis.call('HSET', task, 'status', 'pending')
    redis.call('HDEL', task, 'pid', 'node', 'process_token', 'progress', 'progress_message')
    redis.call('RPUSH', pending, task_id)
    redis.call('PUBLISH', channel, 'requeued')
    if mode == 'lost' then
        return 'requeued'
    end
    return 'released'
end
"""

# After a listener moved an id into its reserved list: mark the task reserved
# and return its hash. The id is dropped from the list when it does not name a
# pending task (a deleted task, or an id pushed twice by a faulty producer),
# and the task fails at once when its counters are malformed. Nothing is done
# when the id is no longer in the list: recovery took it while this listener
# was paused between the move and this script.
# KEYS: task hash, own reserved list, failed list. ARGV: task id, listener id, now.
# Returns {'reserved', field, value, ...}, {'dropped', status or ''},
# {'gone'} or {'rejected', reason}.
RESERVE = (
    LIB
    + """
if not redis.call('LPOS', KEYS[2], ARGV[1]) then
    return {'gone'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'reserved' and redis.call('HGET', KEYS[1], 'node') == ARGV[2] then
    return {'reserved', unpack(redis.call('HGETALL', KEYS[1]))}  -- a retry after a lost reply
end
if status ~= 'pending' then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    return {'dropped', status or ''}
end
local problem = malformed(KEYS[1])
if problem then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    reject(KEYS[1], KEYS[3], ARGV[1], problem, ARGV[3])
    return {'rejected', problem}
end
redis.call('HSET', KEYS[1], 'status', 'reserved', 'node', ARGV[2], 'updated', ARGV[3])
return {'reserved', unpack(redis.call('HGETALL', KEYS[1]))}
"""
)

# A process starts a task its listener reserved. Refused when the task is no
# longer reserved by that listener (recovery gave it to someone else).
# KEYS: task hash, started set, task heartbeats, own reserved list, failed list.
# ARGV: task id, listener id, pid, process token, now.
# Returns the attempt number (the same again for a retry whose first reply
# was lost), 0 when not ours, or -1 when the task was failed as malformed.
START = (
    LIB
    + """
local status = redis.call('HGET', KEYS[1], 'status')
local node = redis.call('HGET', KEYS[1], 'node')
local attempt = counter(KEYS[1], 'attempt')
if status == 'started' and node == ARGV[2] and redis.call('HGET', KEYS[1], 'pid') == ARGV[3] then
    return attempt or 0  -- a retry of this very start
end
if status ~= 'reserved' or node ~= ARGV[2] or not redis.call('LPOS', KEYS[4], ARGV[1]) then
    return 0
end
local problem = malformed(KEYS[1])
if problem then
    redis.call('LREM', KEYS[4], 1, ARGV[1])
    reject(KEYS[1], KEYS[5], ARGV[1], problem, ARGV[5])
    return -1
end
attempt = attempt + 1
redis.call('HSET', KEYS[1], 'attempt', attempt, 'status', 'started', 'pid', ARGV[3], 'process_token', ARGV[4],
    'started_at', ARGV[5], 'updated', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[1])
redis.call('ZADD', KEYS[3], server_now(), ARGV[1])
return attempt
"""
)

# The start of FINISH and RETRY: an outcome is written only by the attempt
# that owns the task (same attempt, same listener, still started). A task
# that is gone (deleted, or lost with Redis's data) only has its ids cleaned
# up; one that is not ours any more only loses this process's started member.
# KEYS[1..3]: reserved list, started set, task hash; KEYS[5]: task heartbeats.
# ARGV[1..4]: task id, started member, attempt ('' = unfenced), listener id.
# Leaves the task's status in `status` for the script that follows.
_STILL_OURS = """
local status = redis.call('HGET', KEYS[3], 'status')
if not status then
    redis.call('LREM', KEYS[1], 1, ARGV[1])
    redis.call('SREM', KEYS[2], ARGV[2])
    redis.call('ZREM', KEYS[5], ARGV[1])
    return 0
end
if ARGV[3] ~= '' and (redis.call('HGET', KEYS[3], 'attempt') ~= ARGV[3]
        or redis.call('HGET', KEYS[3], 'node') ~= ARGV[4]) then
    redis.call('SREM', KEYS[2], ARGV[2])
    return 0
end
"""

# Record a task's outcome: Blueque 1.0.1's complete/fail, fenced.
# KEYS: reserved list, started set, task hash, complete or failed list, task heartbeats.
# ARGV: task id, started member, attempt ('' = unfenced), listener id, status, field, value, ...
# Returns 1 when recorded (or already recorded: a retry after a lost reply);
# 0 when the task is not this attempt's any more, or is gone.
FINISH = (
    _STILL_OURS
    + """
if status == ARGV[5] then
    return 1  -- a retry of this very outcome
end
if ARGV[3] ~= '' and status ~= 'started' then
    redis.call('SREM', KEYS[2], ARGV[2])
    return 0  -- given back meanwhile, and not started again yet
end
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], 'status', ARGV[5], unpack(ARGV, 6))
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""
)

# An attempt failed and the task is to run again later: back to the
# scheduled set, its error appended to the JSON list in 'errors', and
# "<id>:<attempt>" pushed for monitors to report. Fenced like FINISH.
# KEYS: reserved list, started set, task hash, scheduled set, task heartbeats, retrying list.
# ARGV: task id, started member, attempt, listener id, eta (finite), now, error, exception, traceback.
# Returns 1 when recorded (or already recorded), 0 when not ours.
RETRY = (
    _STILL_OURS
    + """
if status == 'scheduled' then
    return 1  -- a retry of this very write
end
if status ~= 'started' then
    redis.call('SREM', KEYS[2], ARGV[2])
    return 0
end
local raw = redis.call('HGET', KEYS[3], 'errors')
local ok, errors = pcall(cjson.decode, raw or '[]')
if not ok or type(errors) ~= 'table' then
    errors = {{error = 'earlier errors, unreadable: ' .. string.sub(raw, 1, 1000)}}
end
errors[#errors + 1] = {attempt = tonumber(ARGV[3]) or 0, error = ARGV[7], exception = ARGV[8],
    traceback = string.sub(ARGV[9], 1, 10000), retry_at = tonumber(ARGV[5])}
local encoded = cjson.encode(errors)
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[3], 'status', 'scheduled', 'eta', ARGV[5], 'updated', ARGV[6],
    'error', ARGV[7], 'exception', ARGV[8], 'traceback', ARGV[9], 'errors', encoded)
redis.call('HDEL', KEYS[3], 'pid', 'node', 'process_token', 'progress', 'progress_message')
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('LPUSH', KEYS[6], ARGV[1] .. ':' .. ARGV[3])
return 1
"""
)

# Heartbeat of a listener (or monitor) and of the tasks its processes run.
# The beat also puts the listener back in its registries (a queue's listener
# set, or the monitor set) if recovery took it out while it was silent, and
# publishes its timeout. For each task it says whether the task is still
# this listener's run (same node and attempt, and for a started task the
# same pid, or finished by that run): one that is not was taken over.
# KEYS: listener heartbeats, task heartbeats, listener timeouts, queues sorted set,
#       registry set 1..n, task hash 1..m.
# ARGV: listener id ('' = beat no listener), owner of the tasks, timeout, n,
#       queue of registry 1..n ('' = not a queue's listener set),
#       then per task: task id, pid ('' = any), attempt ('' = do not check).
# Returns {server time of the beat, id of each task taken over...}.
BEAT = (
    LIB
    + """
local now = server_now()
local n = tonumber(ARGV[4])
local running, taken = {}, {}
for j = 1, (#ARGV - 4 - n) / 3 do
    local at = 4 + n + (j - 1) * 3
    local task_id, pid, attempt = ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3])
    local ours = true
    if attempt then
        local fields = redis.call('HMGET', KEYS[4 + n + j], 'status', 'node', 'pid', 'attempt')
        local current = tonumber(fields[4]) or 0
        local status = fields[1]
        -- Ours: still reserved for it, running it, or just finished (or sent
        -- to be retried) by it, not yet reaped; or gone (deleted, or lost
        -- with Redis's data), which no other worker can run: the run ends
        -- and its outcome script cleans up. Anything else means the task was
        -- recovered from us and may be running elsewhere.
        ours = not status or (status == 'scheduled' and current == attempt) or (fields[2] == ARGV[2] and (
            (status == 'reserved' and current == attempt - 1)
            or (current == attempt and (status == 'complete' or status == 'failed'
                or (status == 'started' and (pid == '' or fields[3] == pid))))))
    end
    if ours then
        running[#running + 1] = task_id
    else
        taken[#taken + 1] = task_id
    end
end
if ARGV[1] ~= '' then
    redis.call('ZADD', KEYS[1], now, ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
    for i = 1, n do
        if redis.call('SADD', KEYS[4 + i], ARGV[1]) == 1 and ARGV[4 + i] ~= '' then
            redis.call('ZINCRBY', KEYS[4], 1, ARGV[4 + i])
        end
    end
end
for _, task_id in ipairs(running) do
    -- XX: only tasks already running (START adds them, an outcome removes
    -- them), so a beat just after a task finished cannot bring it back.
    redis.call('ZADD', KEYS[2], 'XX', now, task_id)
end
return {tostring(now), unpack(taken)}
"""
)

# A listener gives back a task of its own whose run ended without an outcome:
# 'release' on shutdown, 'lost' when the process handling it died, 'reject'
# when the task cannot be run (its data is bad). A task in our own list that
# still says pending (taken, never marked reserved) is ours too.
# KEYS: task hash, pending list, failed list, own reserved list, started set, task heartbeats.
# ARGV: task id, listener id, mode, max recoveries, max releases, reason, now, channel, attempt ('' = any).
# Returns 'released', 'requeued', 'failed', 'rejected', 'dropped' or 'not-ours'.
GIVE_BACK = (
    LIB
    + """
local status = redis.call('HGET', KEYS[1], 'status')
local taken_unmarked = status == 'pending' and redis.call('LPOS', KEYS[4], ARGV[1])
if not taken_unmarked and (redis.call('HGET', KEYS[1], 'node') ~= ARGV[2]
    or (ARGV[9] ~= '' and (tonumber(redis.call('HGET', KEYS[1], 'attempt')) or 0) ~= tonumber(ARGV[9]))) then
    return 'not-ours'
end
return give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
"""
)

# Recover one task from the reserved list of a listener that an observer
# judged dead (see liveness.py). The verdict is checked here against what
# the observer saw: if the listener, or a started task's process, beat since,
# it is alive and nothing is done. Safe when many recover at once: whoever
# finds the id still in the list acts.
# KEYS: task hash, pending list, failed list, dead listener's reserved list,
#       started set, task heartbeats, listener heartbeats.
# ARGV: task id, dead listener id, max recoveries, max releases, reason, now, channel,
#       the listener's heartbeat as judged ('' = none, '*' = do not check),
#       the task's heartbeat as judged ('' = none).
# Returns 'alive', 'gone' (not in the list any more), 'running', or what give_back returns.
RECOVER = (
    LIB
    + """
if ARGV[8] ~= '*' and not same_beat(redis.call('ZSCORE', KEYS[7], ARGV[2]), ARGV[8]) then
    return 'alive'
end
if not redis.call('LPOS', KEYS[4], ARGV[1]) then
    return 'gone'
end
local mode = 'release'
if redis.call('HGET', KEYS[1], 'status') == 'started' then
    if ARGV[8] ~= '*' and not same_beat(redis.call('ZSCORE', KEYS[6], ARGV[1]), ARGV[9]) then
        return 'running'
    end
    mode = 'lost'
end
return give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
    ARGV[1], ARGV[2], mode, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
"""
)

# Remove a listener from a queue's set, unless it still holds tasks (then
# recovery must still find its reserved list through the set) or, when an
# observer judged it dead, it beat since.
# KEYS: listeners set, queues sorted set, the listener's reserved list, listener heartbeats.
# ARGV: listener id, queue name, its heartbeat as judged ('' = none, '*' = do not check).
# Returns 1 when removed.
DEREGISTER = (
    LIB
    + """
if ARGV[3] ~= '*' and not same_beat(redis.call('ZSCORE', KEYS[4], ARGV[1]), ARGV[3]) then
    return 0
end
if redis.call('LLEN', KEYS[3]) > 0 then
    return 0
end
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('ZINCRBY', KEYS[2], -1, ARGV[2])
    return 1
end
return 0
"""
)
