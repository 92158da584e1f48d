-- register: add a listener to its queue's set, and publish its timeout.
--
-- KEYS[1]  the queue's listeners set
-- KEYS[2]  the queues sorted set (blueque_queues)
-- KEYS[3]  listener heartbeats
-- KEYS[4]  listener timeouts
-- ARGV[1]  listener id
-- ARGV[2]  queue name
-- ARGV[3]  its timeout ('' = a listener that does not beat)
-- Returns  1 when added, 0 when it was registered already
-- Keeps    a listener that beats is never seen registered without a
--          heartbeat (it beats first), and is counted in blueque_queues once
if ARGV[3] ~= '' then
    redis.call('ZADD', KEYS[3], server_now(), ARGV[1])
    redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
end
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
    redis.call('ZINCRBY', KEYS[2], 1, ARGV[2])
    return 1
end
return 0
