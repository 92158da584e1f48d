-- periodic: claim one occurrence of a periodic task and enqueue it, once.
-- A new entry (no state yet) is only recorded: it starts at its next
-- occurrence. First sight is decided here, not by the caller, so two
-- schedulers meeting a new entry on either side of an occurrence cannot
-- both skip one.
--
-- KEYS[1]  the periodic state hash (blueque_periodic)
-- KEYS[2]  the new task's hash
-- KEYS[3]  the queue's pending list
-- KEYS[4]  the queues sorted set
-- KEYS[5]  the hash of the previous run's task
-- ARGV[1]  the periodic task's name
-- ARGV[2]  the occurrence (seconds since the epoch)
-- ARGV[3]  new task id
-- ARGV[4]  queue name
-- ARGV[5]  parameters
-- ARGV[6]  now
-- ARGV[7]  the queue's channel
-- ARGV[8]  '1': skip while the previous run is unfinished
-- ARGV[9]  '1': record only (a missed occurrence to skip)
-- Returns  'enqueued', 'recorded' (claimed, not run), 'skipped' (previous run
--          unfinished) or 'done' (claimed already)
-- Keeps    each occurrence enqueued at most once, by compare-and-set on KEYS[1];
--          every read before the first write
local last = redis.call('HGET', KEYS[1], ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then
    return 'done'
end
local previous = redis.call('HGET', KEYS[5], 'status')
-- Every read and check is done: writes from here on.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not last or ARGV[9] == '1' then
    return 'recorded'
end
if ARGV[8] == '1' and previous and previous ~= 'complete' and previous ~= 'failed' then
    return 'skipped'
end
redis.call('HSET', KEYS[2], 'status', 'pending', 'queue', ARGV[4], 'parameters', ARGV[5],
    'created', ARGV[6], 'updated', ARGV[6], 'periodic', ARGV[1], 'occurrence', ARGV[2])
redis.call('ZINCRBY', KEYS[4], 0, ARGV[4])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1] .. ':task', ARGV[3])
redis.call('PUBLISH', ARGV[7], ARGV[4])
return 'enqueued'
