-- monitor_ack: record tasks as reported, and count them in this minute's
-- slot of the per-minute ring.
--
-- KEYS[1]  the monitor's own list
-- KEYS[2]  the queue's reported set for the status (not touched for 'retrying')
-- KEYS[3]  the queue's per-minute hash for the status (not touched for 'retrying')
-- ARGV[1]  queue name
-- ARGV[2]  status ('complete', 'failed' or 'retrying': a retried task is not finished)
-- ARGV[3]  now
-- ARGV[4..] task ids, oldest first
-- Returns  the number of ids acknowledged
-- Keeps    the reported set in the order the tasks finished, and the ring in
--          O(1) per batch (60 slots of "<minute>:<count>")
for i = 4, #ARGV do
    redis.call('LREM', KEYS[1], 1, ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[i])
    if ARGV[2] ~= 'retrying' then
        -- A microsecond apart, so the set keeps the order in which they finished.
        redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + (i - 4) / 1000000, ARGV[i])
    end
end
if ARGV[2] ~= 'retrying' and #ARGV > 3 then
    local minute = math.floor(server_now() / 60)
    local slot = tostring(minute % 60)
    local held = redis.call('HGET', KEYS[3], slot)
    local count = #ARGV - 3
    if held then
        local at, seen = string.match(held, '^(%d+):(%d+)$')
        if tonumber(at) == minute then
            count = count + tonumber(seen)
        end
    end
    redis.call('HSET', KEYS[3], slot, minute .. ':' .. count)
end
return #ARGV - 3
