-- forget_queue: an operator forgets a queue name, only when nothing is left under it.
--
-- KEYS[1]   the queues sorted set
-- KEYS[2..] every key of the queue (lists, sets, sorted sets)
-- ARGV[1]   queue name
-- Returns   'forgotten', 'unknown', or the first key that is not empty
-- Keeps     no task is left under a queue name nobody lists
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
