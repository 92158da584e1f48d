-- reserve: after a listener moved an id into its reserved list, mark the
-- task reserved and return its hash. The id is dropped from the list when it
-- does not name a pending task (a deleted task, or an id pushed twice by a
-- faulty producer), and the task fails at once when its counters are
-- malformed. Nothing is done when the id is no longer in the list: recovery
-- took it while this listener was paused between the move and this script.
--
-- KEYS[1]  task hash
-- KEYS[2]  own reserved list
-- KEYS[3]  the queue's failed list
-- ARGV[1]  task id
-- ARGV[2]  listener id
-- ARGV[3]  now
-- Returns  {'reserved', field, value, ...}, {'dropped', status or ''},
--          {'gone'} or {'rejected', reason}
-- Keeps    a task is reserved only while its id is in the reserving
--          listener's list; a retry after a lost reply gets the same answer
if not redis.call('LPOS', KEYS[2], ARGV[1]) then
    return {'gone'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'reserved' and redis.call('HGET', KEYS[1], 'node') == ARGV[2] then
    return {'reserved', unpack(redis.call('HGETALL', KEYS[1]))}  -- a retry after a lost reply
end
if status ~= 'pending' then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    return {'dropped', status or ''}
end
local problem = malformed(KEYS[1])
if problem then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    reject(KEYS[1], KEYS[3], ARGV[1], problem, ARGV[3])
    return {'rejected', problem}
end
redis.call('HSET', KEYS[1], 'status', 'reserved', 'node', ARGV[2], 'updated', ARGV[3])
return {'reserved', unpack(redis.call('HGETALL', KEYS[1]))}
