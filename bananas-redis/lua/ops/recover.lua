-- recover.lua: returns jobs whose lease expired, or vanished, to the front
-- of their queue. The worker that held them is lost (killed, frozen, cut off): that
-- does not spend the job's retries, it counts in the job's meta as one more
-- time lost, and the worker that fetches the job next dead-letters it
-- instead of running it once it was lost too often
-- (bananas_core::rules::lost_too_often, which needs the task's setting,
-- known only to workers). May race with other workers' recoveries: each
-- job is recovered once.
-- KEYS[1]   {P:R}:jobs
-- KEYS[2]   {P:R}:meta
-- KEYS[3]   {P:R}:q:h
-- KEYS[4]   {P:R}:q:n
-- KEYS[5]   {P:R}:q:l
-- KEYS[6]   {P:R}:lease
-- KEYS[7]   {P:R}:wake
-- KEYS[8]   {P:R}:progress
-- KEYS[9]   {P:R}:epoch
-- KEYS[10]  {P:R}:revoked
-- KEYS[11]  {P:R}:sched
-- ARGV[1]   now (ms)
-- ARGV[2]   the most expired leases to look at in this call
-- ARGV[3]   how long the revoked leases' marks are kept (ms)
-- Each lease taken away is marked in {P:R}:revoked with the epoch it moved
-- on to, so a late ack or extension by its old holder is refused even once
-- the job holds a lease again with the same attempt number (after a
-- requeue, or with its id reused): see revoked_since in include/epoch.lua.
-- The marks are kept ARGV[3] after the last recovery on the route, and at
-- most REVOKED_MAX of them.
-- Also takes back live jobs that nothing holds (see `orphans` below): a
-- job whose lease entry vanished counts as lost, like an expired one.
-- Returns how many jobs it took back (at most ARGV[2]).
--- @include "include/sep.lua"
--- @include "include/vcall.lua"
--- @include "include/vget.lua"
--- @include "include/meta.lua"
--- @include "include/spec.lua"
--- @include "include/wake.lua"
--- @include "include/progress.lua"
--- @include "include/epoch.lua"
local K_JOBS, K_META, K_QH, K_QN, K_QL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_LEASE, K_WAKE, K_PROGRESS, K_EPOCH, K_REVOKED = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_SCHED = KEYS[11]
local REVOKED_MAX = 100000

-- Jobs no structure of the route holds: their lease entry (or their queue)
-- vanished, by eviction or by hand, so no expiry will ever bring them back.
-- Every live job (a field of {P:R}:jobs) is queued, scheduled or leased, so
-- there are some exactly when the counts say so (O(1) to check); only then
-- is the route searched for them, at O(jobs) once.
local function orphans(limit)
  local held = redis.call('LLEN', K_QH) + redis.call('LLEN', K_QN) + redis.call('LLEN', K_QL)
    + redis.call('ZCARD', K_SCHED) + redis.call('ZCARD', K_LEASE)
  if limit <= 0 or redis.call('HLEN', K_JOBS) <= held then return {} end
  local known = {}
  for _, k in ipairs({K_QH, K_QN, K_QL}) do
    for _, id in ipairs(redis.call('LRANGE', k, 0, -1)) do known[id] = true end
  end
  for _, k in ipairs({K_SCHED, K_LEASE}) do
    for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do known[id] = true end
  end
  local found = {}
  for _, id in ipairs(redis.call('HKEYS', K_JOBS)) do
    if not known[id] then
      found[#found + 1] = id
      if #found >= limit then break end
    end
  end
  return found
end

local limit = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', K_LEASE, '-inf', '(' .. ARGV[1], 'LIMIT', 0, limit)
local lost = orphans(limit - #ids)
for i = 1, #lost do ids[#ids + 1] = lost[i] end
if #ids == 0 then return 0 end
local specs = vget('HMGET', K_JOBS, ids)
local metas = vget('HMGET', K_META, ids)
local newmeta, requeued = {}, 0
for i = #ids, 1, -1 do
  local id, spec = ids[i], specs[i]
  if spec then
    local attempts, started, err, lost_times = leased_attempts(metas[i])
    newmeta[#newmeta + 1] = id
    newmeta[#newmeta + 1] = meta_of(attempts or 0, started, err, lost_times + 1)
    redis.call('LPUSH', queue_of(spec, K_QH, K_QN, K_QL), id)
    requeued = requeued + 1
  else
    -- Nothing left to run: forget the lease and the counter.
    redis.call('HDEL', K_META, id)
  end
end
vcall('HSET', K_META, newmeta)
vcall('ZREM', K_LEASE, ids)
drop_progress(K_PROGRESS, ids)
-- Leases were taken from their holders: acks of attempts leased before now
-- must be checked against the lease set again (see ack.lua).
bump_epoch(K_EPOCH)
local now_epoch = epoch(K_EPOCH, false)
if now_epoch ~= '' then
  if redis.call('HLEN', K_REVOKED) + #ids > REVOKED_MAX then redis.call('DEL', K_REVOKED) end
  local marks = {}
  for i = 1, #ids do
    marks[2 * i - 1] = ids[i]
    marks[2 * i] = now_epoch
  end
  vcall('HSET', K_REVOKED, marks)
  redis.call('PEXPIRE', K_REVOKED, ARGV[3])
end
wake(K_WAKE, requeued)
return #ids
