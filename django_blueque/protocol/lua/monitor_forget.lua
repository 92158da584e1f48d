-- monitor_forget: remove a monitor judged dead from the monitor set, once
-- its list is empty.
--
-- KEYS[1]  the monitor set
-- KEYS[2]  the monitor's list
-- KEYS[3]  listener heartbeats
-- KEYS[4]  listener timeouts
-- ARGV[1]  monitor id
-- ARGV[2]  the heartbeat it was judged by ('' = none)
-- Returns  1 when removed
-- Keeps    a monitor stays listed while it holds entries or beat since
if not same_beat(redis.call('ZSCORE', KEYS[3], ARGV[1]), ARGV[2]) or redis.call('LLEN', KEYS[2]) > 0 then
    return 0
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return redis.call('SREM', KEYS[1], ARGV[1])
