-- retry: an attempt failed and the task is to run again later. It goes back
-- to the scheduled set, its error appended to the JSON list in 'errors', and
-- "<id>:<attempt>" is pushed for monitors to report.
--
-- KEYS[1]  own reserved list
-- KEYS[2]  the queue's started set
-- KEYS[3]  task hash
-- KEYS[4]  the queue's scheduled set
-- KEYS[5]  task heartbeats
-- KEYS[6]  the queue's retrying list
-- ARGV[1]  task id
-- ARGV[2]  started member of this run
-- ARGV[3]  attempt
-- ARGV[4]  listener id
-- ARGV[5]  when to run again (finite)
-- ARGV[6]  now
-- ARGV[7]  error
-- ARGV[8]  exception
-- ARGV[9]  traceback
-- Returns  1 when recorded (or recorded already), 0 when not ours
-- Keeps    fenced like finish: only the attempt that owns the task writes
local status = still_ours(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if not status then
    return 0
end
if status == 'scheduled' then
    return 1  -- a retry of this very write
end
if status ~= 'started' then
    redis.call('SREM', KEYS[2], ARGV[2])
    return 0
end
local errors = error_history(redis.call('HGET', KEYS[3], 'errors'))
errors[#errors + 1] = {attempt = tonumber(ARGV[3]) or 0, error = ARGV[7], exception = ARGV[8],
    traceback = string.sub(ARGV[9], 1, 10000), retry_at = tonumber(ARGV[5])}
local encoded = cjson.encode(errors)
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[3], 'status', 'scheduled', 'eta', ARGV[5], 'updated', ARGV[6],
    'error', ARGV[7], 'exception', ARGV[8], 'traceback', ARGV[9], 'errors', encoded)
redis.call('HDEL', KEYS[3], 'pid', 'node', 'process_token', 'progress', 'progress_message')
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('LPUSH', KEYS[6], ARGV[1] .. ':' .. ARGV[3])
return 1
