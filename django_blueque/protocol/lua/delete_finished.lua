-- delete_finished: an operator deletes a finished task: its hash, and its id
-- from the finished list (not yet reported) or the reported set. One that a
-- monitor is reporting right now is deleted too: the monitor sends no signal
-- for a task it cannot read, and the id it then lists as reported is swept
-- with the expired results.
--
-- KEYS[1]  task hash
-- KEYS[2]  the queue's complete or failed list
-- KEYS[3]  the queue's reported set for that status
-- ARGV[1]  task id
-- ARGV[2]  the status it must have ('complete' or 'failed')
-- Returns  'deleted', 'gone' or 'not-finished'
-- Keeps    only finished tasks are deleted
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
    return 'gone'
end
if status ~= ARGV[2] then
    return 'not-finished'
end
redis.call('LREM', KEYS[2], -1, ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
return 'deleted'
