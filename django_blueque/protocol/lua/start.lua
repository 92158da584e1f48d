-- start: a process starts a task its listener reserved.
--
-- KEYS[1]  task hash
-- KEYS[2]  the queue's started set
-- KEYS[3]  task heartbeats
-- KEYS[4]  own reserved list
-- KEYS[5]  the queue's failed list
-- ARGV[1]  task id
-- ARGV[2]  listener id
-- ARGV[3]  pid
-- ARGV[4]  process token
-- ARGV[5]  now
-- Returns  the attempt number (the same again for a retry whose first reply
--          was lost), 0 when the task is not this listener's any more, -1
--          when it was failed as malformed
-- Keeps    a task starts only while reserved by this listener and in its
--          list, so a task that recovery gave to another never starts twice
local status = redis.call('HGET', KEYS[1], 'status')
local node = redis.call('HGET', KEYS[1], 'node')
local attempt = counter(KEYS[1], 'attempt')
if status == 'started' and node == ARGV[2] and redis.call('HGET', KEYS[1], 'pid') == ARGV[3] then
    return attempt or 0  -- a retry of this very start
end
if status ~= 'reserved' or node ~= ARGV[2] or not redis.call('LPOS', KEYS[4], ARGV[1]) then
    return 0
end
local problem = malformed(KEYS[1])
if problem then
    redis.call('LREM', KEYS[4], 1, ARGV[1])
    reject(KEYS[1], KEYS[5], ARGV[1], problem, ARGV[5])
    return -1
end
attempt = attempt + 1
redis.call('HSET', KEYS[1], 'attempt', attempt, 'status', 'started', 'pid', ARGV[3], 'process_token', ARGV[4],
    'started_at', ARGV[5], 'updated', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[1])
redis.call('ZADD', KEYS[3], server_now(), ARGV[1])
return attempt
