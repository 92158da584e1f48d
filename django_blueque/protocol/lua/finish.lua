-- finish: record a task's outcome (Blueque 1.0.1's complete and fail), fenced;
-- then, if asked, take the next task in the same round trip.
--
-- KEYS[1]  own reserved list
-- KEYS[2]  the queue's started set
-- KEYS[3]  task hash
-- KEYS[4]  the queue's complete or failed list
-- KEYS[5]  task heartbeats
-- KEYS[6..5+n]      to take the next task: the pending lists of the
--                   listener's queues, in the order it serves them
-- KEYS[6+n..5+2n]   and its reserved lists of the same queues
-- ARGV[1]  task id
-- ARGV[2]  started member of this run
-- ARGV[3]  attempt ('' = unfenced, as Blueque 1.0.1 writes)
-- ARGV[4]  listener id
-- ARGV[5]  the status to record ('complete' or 'failed')
-- ARGV[6..] field, value, ... to set with it
-- Returns  1 when recorded (or recorded already: a retry after a lost reply),
--          0 when the task is not this attempt's any more, or is gone;
--          with the take's keys, {that, index of the queue, id} for the
--          task moved into the listener's reserved list, or {that}
-- Keeps    only the attempt that owns the task writes its outcome: a process
--          presumed dead cannot overwrite what a newer attempt records. The
--          take is the listener's BLMOVE without the block: the id is moved
--          as 1.0.1's listeners move it, and started by the next script.
local function record()
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
end

local recorded = record()
local queues = (#KEYS - 5) / 2
if queues == 0 then
    return recorded
end
for i = 1, queues do
    local id = redis.call('LMOVE', KEYS[5 + i], KEYS[5 + queues + i], 'RIGHT', 'LEFT')
    if id then
        return {recorded, i - 1, id}
    end
end
return {recorded}
