-- manage.lua: an operator's move on one job of one route: run a scheduled
-- or retrying job now, or delete a job no worker holds.
-- KEYS[1]   {P:R}:jobs
-- KEYS[2]   {P:R}:meta
-- KEYS[3]   {P:R}:q:h
-- KEYS[4]   {P:R}:q:n
-- KEYS[5]   {P:R}:q:l
-- KEYS[6]   {P:R}:sched
-- KEYS[7]   {P:R}:lease
-- KEYS[8]   {P:R}:dead
-- KEYS[9]   {P:R}:done
-- KEYS[10]  {P:R}:wake
-- KEYS[11]  {P:R}:r:<id>
-- KEYS[12]  {P:R}:x:<id> (tags and metadata; deleted with the job)
-- ARGV[1]   'run_now' or 'delete'
-- ARGV[2]   job id
-- Returns 'done' (changed), 'no' (the route knows the job, but the move does
-- not apply to its state: nothing changed) or 'unknown' (not on this route).
-- run_now: the job leaves the schedule for the front of its queue.
-- delete: a live job (not leased) leaves its queue or the schedule with its
-- meta; a finished job's record goes, with its dead-letter or done entry.
-- Taking a job out of its queue is an LREM, linear in the queue's length,
-- as for cancel.lua: an operator's action, never on the hot path.
--- @include "include/spec.lua"
--- @include "include/wake.lua"
local K_JOBS, K_META, K_QH, K_QN, K_QL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_SCHED, K_LEASE, K_DEAD, K_DONE, K_WAKE, K_RESULT = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local what, id = ARGV[1], ARGV[2]
local spec = redis.call('HGET', K_JOBS, id)
if what == 'run_now' then
  if not spec then
    if redis.call('EXISTS', K_RESULT) == 1 then return 'no' end
    return 'unknown'
  end
  if redis.call('ZREM', K_SCHED, id) == 0 then return 'no' end
  redis.call('LPUSH', queue_of(spec, K_QH, K_QN, K_QL), id)
  wake(K_WAKE, 1)
  return 'done'
end
if spec then
  if redis.call('ZSCORE', K_LEASE, id) then return 'no' end
  if redis.call('ZREM', K_SCHED, id) == 0 then
    redis.call('LREM', queue_of(spec, K_QH, K_QN, K_QL), 1, id)
  end
  redis.call('HDEL', K_JOBS, id)
  redis.call('HDEL', K_META, id)
  redis.call('DEL', KEYS[12])
  return 'done'
end
if redis.call('DEL', K_RESULT) == 1 then
  redis.call('DEL', KEYS[12])
  redis.call('ZREM', K_DEAD, id)
  redis.call('ZREM', K_DONE, id)
  return 'done'
end
return 'unknown'
