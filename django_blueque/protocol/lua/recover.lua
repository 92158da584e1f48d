-- recover: recover one task from the reserved list of a listener that an
-- observer judged dead (see liveness.py). The verdict is checked here
-- against what the observer saw: if the listener, or a started task's
-- process, beat since, it is alive and nothing is done.
--
-- KEYS[1]  task hash
-- KEYS[2]  the queue's pending list
-- KEYS[3]  the queue's failed list
-- KEYS[4]  the dead listener's reserved list
-- KEYS[5]  the queue's started set
-- KEYS[6]  task heartbeats
-- KEYS[7]  listener heartbeats
-- ARGV[1]  task id
-- ARGV[2]  dead listener id
-- ARGV[3]  max recoveries
-- ARGV[4]  max releases
-- ARGV[5]  reason
-- ARGV[6]  now
-- ARGV[7]  the queue's channel
-- ARGV[8]  the listener's heartbeat as judged ('' = none, '*' = do not check)
-- ARGV[9]  the task's heartbeat as judged ('' = none)
-- Returns  'alive', 'gone' (not in the list any more), 'running', or what
--          give_back returns
-- Keeps    each task recovered once however many recover at once (whoever
--          finds the id still in the list acts), and never from a listener
--          or run that beat since it was judged
if ARGV[8] ~= '*' and not same_beat(redis.call('ZSCORE', KEYS[7], ARGV[2]), ARGV[8]) then
    return 'alive'
end
if not redis.call('LPOS', KEYS[4], ARGV[1]) then
    return 'gone'
end
local mode = 'release'
if redis.call('HGET', KEYS[1], 'status') == 'started' then
    if ARGV[8] ~= '*' and not same_beat(redis.call('ZSCORE', KEYS[6], ARGV[1]), ARGV[9]) then
        return 'running'
    end
    mode = 'lost'
end
return give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
    ARGV[1], ARGV[2], mode, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
