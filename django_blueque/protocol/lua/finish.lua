-- finish: record a task's outcome (Blueque 1.0.1's complete and fail), fenced.
--
-- KEYS[1]  own reserved list
-- KEYS[2]  the queue's started set
-- KEYS[3]  task hash
-- KEYS[4]  the queue's complete or failed list
-- KEYS[5]  task heartbeats
-- ARGV[1]  task id
-- ARGV[2]  started member of this run
-- ARGV[3]  attempt ('' = unfenced, as Blueque 1.0.1 writes)
-- ARGV[4]  listener id
-- ARGV[5]  the status to record ('complete' or 'failed')
-- ARGV[6..] field, value, ... to set with it
-- Returns  1 when recorded (or recorded already: a retry after a lost reply),
--          0 when the task is not this attempt's any more, or is gone
-- Keeps    only the attempt that owns the task writes its outcome: a process
--          presumed dead cannot overwrite what a newer attempt records
local status = still_ours(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if not status then
    return 0
end
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
