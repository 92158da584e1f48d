-- take_first: a listener takes the oldest pending id of the first of its
-- queues that has one, in the order given, so a listener on several queues
-- serves them by priority. An idle poll costs one EXISTS, whatever the
-- number of queues.
--
-- KEYS[1..n]     pending list of each queue, in priority order
-- KEYS[n+1..2n]  the listener's reserved list of each queue, same order
-- Returns        {index of the queue (0-based), task id}, or false when all are empty
-- Keeps          a listener never takes more than one task per call, and an
--                id is always in exactly one list (LMOVE)
local n = #KEYS / 2
if redis.call('EXISTS', unpack(KEYS, 1, n)) == 0 then
    return false
end
for i = 1, n do
    local task_id = redis.call('LMOVE', KEYS[i], KEYS[n + i], 'RIGHT', 'LEFT')
    if task_id then
        return {tostring(i - 1), task_id}
    end
end
return false
