-- reclaim: take over one task of a dead listener on this host, as a
-- reserved task of our own, so the caller runs it as if it had just taken
-- it. A finished task, or an id without a hash, is only dropped from the list.
--
-- KEYS[1]  the dead listener's reserved list
-- KEYS[2]  own reserved list
-- KEYS[3]  task hash
-- KEYS[4]  the queue's started set
-- ARGV[1]  task id
-- ARGV[2]  own listener id
-- ARGV[3]  now
-- ARGV[4]  started member of the dead run, or ''
-- Returns  1 when taken over, 0 when the id was only dropped, false when
--          another listener got there first
-- Keeps    one owner: whoever removes the id from the dead list acts
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
    return false
end
if ARGV[4] ~= '' then
    redis.call('SREM', KEYS[4], ARGV[4])
end
local status = redis.call('HGET', KEYS[3], 'status')
if not status or status == 'complete' or status == 'failed' then
    return 0
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'status', 'reserved', 'node', ARGV[2],
    'reclaimed_node', ARGV[2], 'updated', ARGV[3])
redis.call('HDEL', KEYS[3], 'pid')
return 1
