-- cancel: an operator cancels a task that has not started. A scheduled one
-- leaves the scheduled set, a pending one the pending list (searched from
-- its oldest end, where the next tasks to run are). It ends failed, with the
-- exception django_blueque.protocol.errors.Cancelled, in the failed list, so
-- monitors report it like any failure.
--
-- KEYS[1]  task hash
-- KEYS[2]  the queue's scheduled set
-- KEYS[3]  the queue's pending list
-- KEYS[4]  the queue's failed list
-- ARGV[1]  task id
-- ARGV[2]  now
-- ARGV[3]  reason (the error recorded)
-- Returns  'cancelled', 'gone', 'not-waiting' or 'taken' (a listener took it first)
-- Keeps    a task is cancelled only if removed from where it waited, so a
--          task a listener took meanwhile runs and is not also failed
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
    return 'gone'
end
if status == 'scheduled' then
    if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
        return 'taken'
    end
elseif status == 'pending' then
    if redis.call('LREM', KEYS[3], -1, ARGV[1]) == 0 then
        return 'taken'
    end
else
    return 'not-waiting'
end
-- The removal above was the only check that writes; it succeeded.
redis.call('HSET', KEYS[1], 'status', 'failed', 'updated', ARGV[2], 'cancelled', ARGV[2],
    'error', ARGV[3], 'exception', 'django_blueque.protocol.errors.Cancelled')
redis.call('HDEL', KEYS[1], 'eta')
redis.call('LPUSH', KEYS[4], ARGV[1])
return 'cancelled'
