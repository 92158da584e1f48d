-- monitor_restore: put back one entry of a monitor judged dead, for another
-- monitor to report.
--
-- KEYS[1]  the dead monitor's list
-- KEYS[2]  the finished list the entry names
-- KEYS[3]  listener heartbeats
-- ARGV[1]  the entry ("<queue> <status> <id>")
-- ARGV[2]  task id
-- ARGV[3]  the dead monitor's id
-- ARGV[4]  the heartbeat it was judged by ('' = none)
-- Returns  1 when put back, 0 when already handled, -1 when the monitor beat since
-- Keeps    each entry put back once, and none from a monitor that is alive
if not same_beat(redis.call('ZSCORE', KEYS[3], ARGV[3]), ARGV[4]) then
    return -1
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
