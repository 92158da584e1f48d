-- give_back: a listener gives back a task of its own whose run ended without
-- an outcome: 'release' on shutdown, 'lost' when the process handling it
-- died, 'reject' when the task cannot be run (its data is bad). A task in
-- our own list that still says pending (taken, never marked reserved) is
-- ours too.
--
-- KEYS[1]  task hash
-- KEYS[2]  the queue's pending list
-- KEYS[3]  the queue's failed list
-- KEYS[4]  own reserved list
-- KEYS[5]  the queue's started set
-- KEYS[6]  task heartbeats
-- ARGV[1]  task id
-- ARGV[2]  listener id
-- ARGV[3]  mode: 'release', 'lost' or 'reject'
-- ARGV[4]  max recoveries
-- ARGV[5]  max releases
-- ARGV[6]  reason
-- ARGV[7]  now
-- ARGV[8]  the queue's channel
-- ARGV[9]  attempt ('' = any)
-- Returns  'released', 'requeued', 'failed', 'rejected', 'dropped' or 'not-ours'
-- Keeps    a task goes back only from the listener (and attempt) that holds
--          it, and fails once it went back more often than allowed
local status = redis.call('HGET', KEYS[1], 'status')
local taken_unmarked = status == 'pending' and redis.call('LPOS', KEYS[4], ARGV[1])
if not taken_unmarked and (redis.call('HGET', KEYS[1], 'node') ~= ARGV[2]
    or (ARGV[9] ~= '' and (tonumber(redis.call('HGET', KEYS[1], 'attempt')) or 0) ~= tonumber(ARGV[9]))) then
    return 'not-ours'
end
return give_back(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6],
    ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
