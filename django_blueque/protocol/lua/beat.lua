-- beat: the heartbeat of a listener (or monitor, or scheduler) and of the
-- tasks its processes run. It also puts the listener back in its registries
-- (a queue's listener set, the monitor set, the scheduler set) if recovery
-- took it out while it was silent, and publishes its timeout. For each task
-- it says whether the task is still this listener's run: one that is not
-- was taken over, and its run must stop.
--
-- KEYS[1]        listener heartbeats
-- KEYS[2]        task heartbeats
-- KEYS[3]        listener timeouts
-- KEYS[4]        the queues sorted set
-- KEYS[5..4+n]   registry set 1..n
-- KEYS[5+n..]    task hash 1..m
-- ARGV[1]        listener id ('' = beat no listener)
-- ARGV[2]        owner of the tasks (a listener id)
-- ARGV[3]        its timeout
-- ARGV[4]        n
-- ARGV[5..4+n]   the queue of registry 1..n ('' = not a queue's listener set)
-- ARGV[5+n..]    per task: task id, pid ('' = any), attempt ('' = do not check)
-- Returns        {server time of the beat, id of each task taken over...}
-- Keeps          a task's heartbeat is only renewed while this run owns it,
--                and never made again for a finished task (ZADD XX)
local now = server_now()
local n = tonumber(ARGV[4])
local running, taken = {}, {}
for j = 1, (#ARGV - 4 - n) / 3 do
    local at = 4 + n + (j - 1) * 3
    local task_id, pid, attempt = ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3])
    local ours = true
    if attempt then
        local fields = redis.call('HMGET', KEYS[4 + n + j], 'status', 'node', 'pid', 'attempt')
        local current = tonumber(fields[4]) or 0
        local status = fields[1]
        -- Ours: still reserved for it, running it, or just finished (or sent
        -- to be retried) by it, not yet reaped; or gone (deleted, or lost
        -- with Redis's data), which no other worker can run: the run ends
        -- and its outcome script cleans up. Anything else means the task was
        -- recovered from us and may be running elsewhere.
        ours = not status or (status == 'scheduled' and current == attempt) or (fields[2] == ARGV[2] and (
            (status == 'reserved' and current == attempt - 1)
            or (current == attempt and (status == 'complete' or status == 'failed'
                or (status == 'started' and (pid == '' or fields[3] == pid))))))
    end
    if ours then
        running[#running + 1] = task_id
    else
        taken[#taken + 1] = task_id
    end
end
if ARGV[1] ~= '' then
    redis.call('ZADD', KEYS[1], now, ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
    for i = 1, n do
        if redis.call('SADD', KEYS[4 + i], ARGV[1]) == 1 and ARGV[4 + i] ~= '' then
            redis.call('ZINCRBY', KEYS[4], 1, ARGV[4 + i])
        end
    end
end
for _, task_id in ipairs(running) do
    -- XX: only tasks already running (start adds them, an outcome removes
    -- them), so a beat just after a task finished cannot bring it back.
    redis.call('ZADD', KEYS[2], 'XX', now, task_id)
end
return {tostring(now), unpack(taken)}
