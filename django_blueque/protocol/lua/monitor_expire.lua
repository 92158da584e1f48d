-- monitor_expire: delete the hashes of reported tasks whose time to live has passed.
--
-- KEYS[1]     the queue's reported set for one status
-- KEYS[2..]   the hash of each task, in the order of the ids
-- ARGV[1..]   the id of each task (ARGV[i] goes with KEYS[i + 1])
-- Returns     the number of tasks deleted
-- Keeps       an id leaves the reported set with its hash, never before it
for i = 2, #KEYS do
    redis.call('ZREM', KEYS[1], ARGV[i - 1])
    redis.call('DEL', KEYS[i])
end
return #KEYS - 1
