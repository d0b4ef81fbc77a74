-- cancel.lua: cancels a job of one route that has not started: a queued,
-- scheduled or retrying job leaves its queue or the schedule and is buried
-- in the dead letter with the error `cancelled` (waiters get that record).
-- KEYS[1]   {P:R}:jobs
-- KEYS[2]   {P:R}:meta
-- KEYS[3]   {P:R}:q:h
-- KEYS[4]   {P:R}:q:n
-- KEYS[5]   {P:R}:q:l
-- KEYS[6]   {P:R}:sched
-- KEYS[7]   {P:R}:lease
-- KEYS[8]   {P:R}:dead
-- KEYS[9]   {P:R}:waiters
-- KEYS[10]  {P:R}:r:<id>
-- KEYS[11]  {P:R}:w:<id>
-- ARGV[1]   job id
-- ARGV[2]   now (ms)
-- ARGV[3]   the dead-letter TTL (ms)
-- Returns 'cancelled', 'running' (nothing changed), 'finished' (nothing
-- changed) or 'unknown' (not on this route).
-- Taking a job out of its queue is an LREM, linear in the queue's length:
-- an operator's action, never on the hot path (as in Sidekiq or BullMQ).
--- @include "include/meta.lua"
--- @include "include/spec.lua"
--- @include "include/record.lua"
--- @include "include/notify.lua"
--- @include "include/dead.lua"
local K_JOBS, K_META, K_QH, K_QN, K_QL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_SCHED, K_LEASE, K_DEAD, K_WAITERS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_RESULT, K_NOTIFY = KEYS[10], KEYS[11]
local id, now, dead_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', K_RESULT) == 1 then return 'finished' end
local spec = redis.call('HGET', K_JOBS, id)
if not spec then return 'unknown' end
if redis.call('ZSCORE', K_LEASE, id) then return 'running' end
if redis.call('ZREM', K_SCHED, id) == 0 then
  redis.call('LREM', queue_of(spec, K_QH, K_QN, K_QL), 1, id)
end
local meta = redis.call('HGET', K_META, id)
local attempts, started = parse_meta(meta or nil)
local rec = record('d', attempts or 0, started, now, 'cancelled', '', spec)
bury(K_RESULT, K_DEAD, id, rec, now, dead_ttl)
redis.call('HDEL', K_JOBS, id)
redis.call('HDEL', K_META, id)
local waiters = redis.call('HGET', K_WAITERS, id)
if waiters then notify(K_WAITERS, K_NOTIFY, id, waiters, rec) end
trim_dead(K_DEAD, now, dead_ttl)
return 'cancelled'
