-- enqueue: add pending tasks, one or a batch, in one step: Blueque 1.0.1's
-- enqueue (the hash, then the id pushed on the pending list) for each, the
-- queue listed in the registry of queues, and one message on its channel.
--
-- KEYS[1]       the registry of queues
-- KEYS[2]       the queue's pending list
-- KEYS[3..]     task hash 1..n
-- ARGV[1]       queue name
-- ARGV[2]       the queue's channel
-- ARGV[3]       now (created and updated)
-- ARGV[4]       k, the number of extra field, value pairs for every task
-- ARGV[5..4+2k] extra fields and values
-- ARGV[5+2k..]  per task: id, parameters
-- Returns       the number of tasks added
-- Keeps         the tasks are taken in the order given, as if enqueued
--               one by one
local k = tonumber(ARGV[4])
-- Each hash: the extra fields first, so that the protocol's own win.
local fields = {}
for i = 5, 4 + 2 * k do
    fields[#fields + 1] = ARGV[i]
end
local at = #fields
for _, field in ipairs({'status', 'pending', 'queue', ARGV[1], 'parameters', '', 'created', ARGV[3],
        'updated', ARGV[3]}) do
    fields[#fields + 1] = field
end
local first = 5 + 2 * k
local n = (#ARGV - first + 1) / 2
local ids = {}
for j = 1, n do
    local id = ARGV[first + 2 * (j - 1)]
    fields[at + 6] = ARGV[first + 2 * (j - 1) + 1]  -- the parameters
    redis.call('HSET', KEYS[2 + j], unpack(fields))
    ids[#ids + 1] = id
    -- unpack() is bounded by Lua's stack: push in slices.
    if #ids == 1000 then
        redis.call('LPUSH', KEYS[2], unpack(ids))
        ids = {}
    end
end
if #ids > 0 then
    redis.call('LPUSH', KEYS[2], unpack(ids))
end
-- Adding 0 lists a queue that has tasks but no listener yet.
redis.call('ZINCRBY', KEYS[1], 0, ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return n
