-- enqueue_due: move due scheduled tasks of one queue to its pending list.
--
-- KEYS[1]        the queue's scheduled set
-- KEYS[2]        the queue's pending list
-- KEYS[3..]      the hash of each task, in the order of the ids
-- ARGV[1]        now
-- ARGV[2]        the queue's channel
-- ARGV[3..]      the id of each task (ARGV[i] goes with KEYS[i])
-- Returns        the number of tasks moved
-- Keeps          each task enqueued exactly once: the caller that finds it
--                still in the scheduled set moves it (and removes it), so any
--                number of schedulers (Blueque 1.0.1's WATCH-based one too)
--                can run at once; every read before the first write
local in_set, status = {}, {}
for i = 3, #KEYS do
    in_set[i] = redis.call('ZSCORE', KEYS[1], ARGV[i])
    status[i] = redis.call('HGET', KEYS[i], 'status')
end
-- Every read and check is done: writes from here on.
local moved = 0
for i = 3, #KEYS do
    local task_id = ARGV[i]
    if in_set[i] then
        redis.call('ZREM', KEYS[1], task_id)
        if status[i] == 'scheduled' then
            redis.call('HSET', KEYS[i], 'status', 'pending', 'updated', ARGV[1])
            redis.call('LPUSH', KEYS[2], task_id)
            moved = moved + 1
        end
    end
end
if moved > 0 then
    redis.call('PUBLISH', ARGV[2], 'due')
end
return moved
