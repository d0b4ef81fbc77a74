-- requeue_dead.lua: moves a dead job back to the back of its queue with its
-- attempts reset and its eta cleared. The caller read the job's record and
-- made the spec to requeue from it (src/codec.rs decodes records; scripts
-- only build them); this script checks that the record is still the one
-- it read.
-- KEYS[1]  {P:R}:dead
-- KEYS[2]  {P:R}:jobs
-- KEYS[3]  {P:R}:meta
-- KEYS[4]  the queue of the job's priority ({P:R}:q:h, :q:n or :q:l)
-- KEYS[5]  {P:R}:wake
-- KEYS[6]  {P:R}:r:<id>
-- ARGV[1]  job id
-- ARGV[2]  the record the caller read ('' if there was none)
-- ARGV[3]  the spec to requeue ('' when the record is unreadable: the
--          dead-letter entry is dropped and the record kept)
-- Returns 'requeued', 'not_dead' (no dead job by that id on this route,
-- nothing to requeue, or the id's record is a later run's success) or 'changed' (the record is not the one the caller
-- read: read it again).
--- @include "include/wake.lua"
local K_DEAD, K_JOBS, K_META, K_QUEUE, K_WAKE, K_RESULT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id = ARGV[1]
if not redis.call('ZSCORE', K_DEAD, id) then return 'not_dead' end
local rec = redis.call('GET', K_RESULT)
if (rec or '') ~= ARGV[2] then return 'changed' end
redis.call('ZREM', K_DEAD, id)
-- A record that is not a dead one ('d', include/record.lua) belongs to a
-- later run of the id: the entry outlived its own record (trim_dead runs
-- only when another job dies), so it goes and the record stays.
if not rec or ARGV[3] == '' or string.sub(rec, 1, 1) ~= 'd' then return 'not_dead' end
redis.call('DEL', K_RESULT)
redis.call('HDEL', K_META, id)
redis.call('HSET', K_JOBS, id, ARGV[3])
redis.call('RPUSH', K_QUEUE, id)
wake(K_WAKE, 1)
return 'requeued'
