-- progress: record the progress of a running task.
--
-- KEYS[1]  task hash
-- ARGV[1]  fraction done
-- ARGV[2]  message
-- ARGV[3]  now
-- Returns  1 when recorded, 0 when the task is no longer running
-- Keeps    a finished or deleted task is left as it is (no hash is made again)
if redis.call('HGET', KEYS[1], 'status') ~= 'started' then
    return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'progress_message', ARGV[2], 'updated', ARGV[3])
return 1
