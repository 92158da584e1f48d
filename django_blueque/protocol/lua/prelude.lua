-- The prelude: functions shared by every script, put before each one by
-- django_blueque.protocol.scripts. Functions only: it touches no key until
-- a script calls one of them, with keys the script got in KEYS.

-- The Redis server's clock, in seconds. Heartbeats use it, and are compared
-- only with themselves (see liveness.py), never with a process's clock.
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

-- A counter's value as read (false when absent): a whole number >= 0 (0
-- when absent), or nil when it holds anything else.
local function as_counter(value)
    if not value then
        return 0
    end
    local number = tonumber(value)
    if number and number >= 0 and number == math.floor(number) and number < 9007199254740992 then
        return number
    end
    return nil
end

-- A counter field of a task, read here.
local function counter(task, field)
    return as_counter(redis.call('HGET', task, field))
end

-- What is wrong with a task's counters, as a message, or nil; from fields
-- read already (field -> value).
local function malformed_in(fields)
    for _, field in ipairs({'attempt', 'recoveries', 'releases'}) do
        if as_counter(fields[field]) == nil then
            return 'its ' .. field .. ' field is not a whole number >= 0: ' .. string.sub(fields[field], 1, 100)
        end
    end
    return nil
end

-- What is wrong with a task's counters, read here in one command.
local function malformed(task)
    local values = redis.call('HMGET', task, 'attempt', 'recoveries', 'releases')
    return malformed_in({attempt = values[1], recoveries = values[2], releases = values[3]})
end

-- Writes only: fail a task that cannot be run because its data is malformed.
local function reject(task, failed, task_id, reason, now)
    redis.call('HSET', task, 'status', 'failed', 'updated', now, 'error', 'Malformed task: ' .. reason,
        'exception', 'django_blueque.protocol.errors.MalformedTask')
    redis.call('LPUSH', failed, task_id)
end

-- The history of a task's failed attempts: the JSON list in its 'errors'
-- field, or, when that field cannot be read, a list of one record that says so.
local function error_history(raw)
    local ok, errors = pcall(cjson.decode, raw or '[]')
    if not ok or type(errors) ~= 'table' then
        errors = {{error = 'earlier errors, unreadable: ' .. string.sub(raw, 1, 1000)}}
    end
    return errors
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

-- The start of finish and retry: whether this attempt may write the task's
-- outcome (same attempt, same listener). A task that is gone (deleted, or
-- lost with Redis's data) only has its ids cleaned up; one that is not ours
-- any more only loses this process's started member. Returns the task's
-- status when the attempt may go on, nil when it may not.
local function still_ours(reserved, started, task, task_beats, task_id, member, attempt, listener)
    local current = redis.call('HMGET', task, 'status', 'attempt', 'node')
    local status = current[1]
    if not status then
        redis.call('LREM', reserved, 1, task_id)
        redis.call('SREM', started, member)
        redis.call('ZREM', task_beats, task_id)
        return nil
    end
    if attempt ~= '' and (current[2] ~= attempt or current[3] ~= listener) then
        redis.call('SREM', started, member)
        return nil
    end
    return status
end
