-- reserve_start: reserve and start at once a task a listener just moved into
-- its reserved list, for a process of its own that runs it now (a fork-mode
-- worker starts each task for the child it forked). The task ends as
-- reserve and start leave it, so Blueque 1.0.1 readers see what its own
-- listeners write: the id in the listener's reserved list, the hash started
-- with its node and pid, the run in the started set. One round trip instead
-- of two; the checks are reserve's.
--
-- KEYS[1]  task hash
-- KEYS[2]  own reserved list
-- KEYS[3]  the queue's failed list
-- KEYS[4]  the queue's started set
-- KEYS[5]  task heartbeats
-- ARGV[1]  task id
-- ARGV[2]  listener id
-- ARGV[3]  pid
-- ARGV[4]  process token
-- ARGV[5]  now
-- Returns  {'started', attempt, field, value, ...} with the hash as reserve
--          returns it (before the start, as a task's code is given it),
--          {'dropped', status or ''}, {'gone'} or {'rejected', reason}
-- Keeps    a task starts only while its id is in the starting listener's
--          list and it was pending, or was started by this very call (a
--          retry after a lost reply gets the same answer)
if not redis.call('LPOS', KEYS[2], ARGV[1]) then
    return {'gone'}
end
local flat = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #flat, 2 do
    fields[flat[i]] = flat[i + 1]
end

-- The reply: the attempt, then the hash as reserve would have left it.
local function started(attempt)
    local reply = {'started', attempt}
    for field, value in pairs(fields) do
        reply[#reply + 1] = field
        reply[#reply + 1] = value
    end
    return reply
end

local status = fields['status']
if status == 'started' and fields['node'] == ARGV[2] and fields['pid'] == ARGV[3] then
    -- A retry after a lost reply: the same answer.
    local attempt = as_counter(fields['attempt']) or 0
    fields['status'], fields['attempt'], fields['pid'], fields['process_token'] =
        'reserved', tostring(attempt - 1), nil, nil
    return started(attempt)
end
if status ~= 'pending' then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    return {'dropped', status or ''}
end
local problem = malformed_in(fields)
if problem then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
    reject(KEYS[1], KEYS[3], ARGV[1], problem, ARGV[5])
    return {'rejected', problem}
end
local attempt = as_counter(fields['attempt']) + 1
redis.call('HSET', KEYS[1], 'status', 'started', 'node', ARGV[2], 'attempt', attempt, 'pid', ARGV[3],
    'process_token', ARGV[4], 'started_at', ARGV[5], 'updated', ARGV[5])
redis.call('SADD', KEYS[4], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[1])
redis.call('ZADD', KEYS[5], server_now(), ARGV[1])
fields['status'], fields['node'], fields['updated'] = 'reserved', ARGV[2], ARGV[5]
return started(attempt)
