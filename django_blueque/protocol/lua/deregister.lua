-- deregister: remove a listener from a queue's set; a listener judged dead
-- that is then listed on no queue loses its heartbeat and timeout too.
--
-- KEYS[1]  the queue's listeners set
-- KEYS[2]  the queues sorted set
-- KEYS[3]  the listener's reserved list
-- KEYS[4]  listener heartbeats
-- KEYS[5]  listener timeouts
-- KEYS[6..] the listeners sets of the other queues (with a judged heartbeat)
-- ARGV[1]  listener id
-- ARGV[2]  queue name
-- ARGV[3]  its heartbeat as judged ('' = none, '*' = do not check)
-- Returns  1 when removed
-- Keeps    a listener that still holds tasks stays listed (recovery finds
--          its reserved list through the set), and one judged dead that
--          beat since is not removed; a dead listener's heartbeat and timeout
--          stay while it is listed on another queue (its watchers judge it by
--          them), and no longer (else they would stay until a scheduler's
--          sweep of day-old heartbeats). If it was only frozen, its next beat
--          writes them again
if ARGV[3] ~= '*' and not same_beat(redis.call('ZSCORE', KEYS[4], ARGV[1]), ARGV[3]) then
    return 0
end
if redis.call('LLEN', KEYS[3]) > 0 then
    return 0
end
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
    redis.call('ZINCRBY', KEYS[2], -1, ARGV[2])
    if ARGV[3] ~= '*' then
        for i = 6, #KEYS do
            if redis.call('SISMEMBER', KEYS[i], ARGV[1]) == 1 then
                return 1
            end
        end
        redis.call('ZREM', KEYS[4], ARGV[1])
        redis.call('HDEL', KEYS[5], ARGV[1])
    end
    return 1
end
return 0
