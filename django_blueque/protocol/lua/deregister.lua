-- deregister: remove a listener from a queue's set.
--
-- KEYS[1]  the queue's listeners set
-- KEYS[2]  the queues sorted set
-- KEYS[3]  the listener's reserved list
-- KEYS[4]  listener heartbeats
-- ARGV[1]  listener id
-- ARGV[2]  queue name
-- ARGV[3]  its heartbeat as judged ('' = none, '*' = do not check)
-- Returns  1 when removed
-- Keeps    a listener that still holds tasks stays listed (recovery finds
--          its reserved list through the set), and one judged dead that
--          beat since is not removed
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
