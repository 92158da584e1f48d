-- monitor_take: a monitor takes up to a batch of finished ids, oldest first,
-- into its own list, as "<queue> <status> <id>" entries.
--
-- KEYS[1]  the finished list (complete, failed or retrying) of the queue
-- KEYS[2]  the monitor's own list
-- ARGV[1]  queue name
-- ARGV[2]  status
-- ARGV[3]  how many at most
-- Returns  the ids taken
-- Keeps    an id is in one list at a time, so several monitors never report
--          the same task, and a monitor that dies leaves its ids where
--          another can put them back (monitor_restore)
local taken = {}
for i = 1, tonumber(ARGV[3]) do
    local task_id = redis.call('RPOP', KEYS[1])
    if not task_id then
        break
    end
    redis.call('LPUSH', KEYS[2], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. task_id)
    taken[#taken + 1] = task_id
end
return taken
