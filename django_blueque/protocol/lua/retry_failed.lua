-- retry_failed: an operator puts a failed task back in pending for a new
-- attempt. Its final error joins the attempt history in 'errors'; its loss
-- and release counts start afresh; 'attempt' is kept, so the next start is a
-- new attempt. A failed task is in the failed list until a monitor reports
-- it, then in the reported set; in neither, a monitor is reporting it right
-- now: refused until then.
--
-- KEYS[1]  task hash
-- KEYS[2]  the queue's failed list
-- KEYS[3]  the queue's reported failed set
-- KEYS[4]  the queue's pending list
-- ARGV[1]  task id
-- ARGV[2]  now
-- ARGV[3]  the queue's channel
-- Returns  'retried', 'gone', 'not-failed' or 'in-flight'
-- Keeps    a monitor's acknowledgement never lists a pending task as
--          reported (which would expire it)
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
    return 'gone'
end
if status ~= 'failed' then
    return 'not-failed'
end
local in_list = redis.call('LPOS', KEYS[2], ARGV[1], 'RANK', -1)
local in_set = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not in_list and not in_set then
    return 'in-flight'
end
local fields = redis.call('HMGET', KEYS[1], 'errors', 'attempt', 'error', 'exception', 'traceback', 'updated')
local errors = error_history(fields[1])
errors[#errors + 1] = {attempt = tonumber(fields[2]) or 0, error = fields[3] or '', exception = fields[4] or '',
    traceback = string.sub(fields[5] or '', 1, 10000), failed_at = tonumber(fields[6]),
    retried_at = tonumber(ARGV[2])}
local encoded = cjson.encode(errors)
-- Every read and check is done: writes from here on.
if in_list then
    redis.call('LREM', KEYS[2], -1, ARGV[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'pending', 'updated', ARGV[2], 'errors', encoded)
redis.call('HDEL', KEYS[1], 'error', 'exception', 'traceback', 'result', 'pid', 'node', 'process_token',
    'progress', 'progress_message', 'recoveries', 'releases', 'lost')
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], 'retried')
return 'retried'
