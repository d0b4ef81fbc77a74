-- recover.lua: returns jobs whose lease expired to the front of their
-- queue, or to the dead letter once their retries are used up.
-- In two steps, because a dead job's record and its waiters' list are
-- per-job keys, which must be declared, and the expired ids are not known
-- before the call. Called without ids, the script requeues the expired
-- jobs that have retries left and returns the ids of those that have none,
-- leaving them leased. Called again with those ids and their keys, it
-- dead-letters each one that is still expired. Both steps are atomic, and
-- either may race with other workers' recoveries: each job is recovered
-- once.
-- KEYS[1]   {P:R}:jobs
-- KEYS[2]   {P:R}:meta
-- KEYS[3]   {P:R}:q:h
-- KEYS[4]   {P:R}:q:n
-- KEYS[5]   {P:R}:q:l
-- KEYS[6]   {P:R}:lease
-- KEYS[7]   {P:R}:dead
-- KEYS[8]   {P:R}:wake
-- KEYS[9]   {P:R}:waiters
-- KEYS[10]  {P:R}:progress
-- KEYS[11]  {P:R}:epoch
-- KEYS[12..] second step: pairs {P:R}:r:<id>, {P:R}:w:<id> for each id of
--           ARGV[4..], in that order
-- ARGV[1]   now (ms)
-- ARGV[2]   the most expired leases to look at in this call
-- ARGV[3]   the dead-letter TTL (ms)
-- ARGV[4..] second step: the ids to dead-letter
-- Returns { recovered, ids out of retries } (the second list is empty in
-- the second step).
--- @include "include/sep.lua"
--- @include "include/vcall.lua"
--- @include "include/vget.lua"
--- @include "include/meta.lua"
--- @include "include/spec.lua"
--- @include "include/record.lua"
--- @include "include/wake.lua"
--- @include "include/notify.lua"
--- @include "include/dead.lua"
--- @include "include/progress.lua"
--- @include "include/epoch.lua"
local K_JOBS, K_META, K_QH, K_QN, K_QL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_LEASE, K_DEAD, K_WAKE, K_WAITERS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_PROGRESS, K_EPOCH = KEYS[10], KEYS[11]
local now = tonumber(ARGV[1])
local dead_ttl = tonumber(ARGV[3])

if #ARGV < 4 then
  -- First step: requeue what has retries left.
  local ids = redis.call('ZRANGEBYSCORE', K_LEASE, '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
  if #ids == 0 then return {0, {}} end
  local specs = vget('HMGET', K_JOBS, ids)
  local metas = vget('HMGET', K_META, ids)
  local done, dying, requeued = {}, {}, 0
  for i = #ids, 1, -1 do
    local id, spec = ids[i], specs[i]
    local attempts = leased_attempts(metas[i]) or 0
    if spec then
      -- Retries are left while attempts <= max_retries (bananas_core::rules::can_retry).
      if attempts > max_retries_of(spec) then
        dying[#dying + 1] = id
      else
        -- No longer leased, so a first attempt must now be written down.
        if not metas[i] then redis.call('HSET', K_META, id, '1' .. SEP .. SEP) end
        redis.call('LPUSH', queue_of(spec, K_QH, K_QN, K_QL), id)
        requeued = requeued + 1
        done[#done + 1] = id
      end
    else
      -- Nothing left to run: forget the lease and the counter.
      redis.call('HDEL', K_META, id)
      done[#done + 1] = id
    end
  end
  if #done > 0 then
    vcall('ZREM', K_LEASE, done)
    drop_progress(K_PROGRESS, done)
    -- Leases were taken from their holders: acks of attempts leased before
    -- now must be checked against the lease set again (see ack.lua).
    bump_epoch(K_EPOCH)
    wake(K_WAKE, requeued)
  end
  return {#done, dying}
end

-- Second step: dead-letter the given ids that are still expired and out of
-- retries.
local gone = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local deadline = redis.call('ZSCORE', K_LEASE, id)
  local spec = redis.call('HGET', K_JOBS, id)
  if deadline and tonumber(deadline) < now and spec then
    local meta = redis.call('HGET', K_META, id)
    local attempts, started = leased_attempts(meta)
    attempts = attempts or 0
    if attempts > max_retries_of(spec) then
      local k = 12 + (i - 4) * 2
      local reason = 'lease expired: worker lost (attempt ' .. tostring(attempts) .. ')'
      local rec = record('d', attempts, started, now, reason, '', spec)
      bury(KEYS[k], K_DEAD, id, rec, now, dead_ttl)
      redis.call('HDEL', K_JOBS, id)
      redis.call('HDEL', K_META, id)
      local waiters = redis.call('HGET', K_WAITERS, id)
      if waiters then notify(K_WAITERS, KEYS[k + 1], id, waiters, rec) end
      gone[#gone + 1] = id
    end
  end
end
if #gone > 0 then
  vcall('ZREM', K_LEASE, gone)
  drop_progress(K_PROGRESS, gone)
  bump_epoch(K_EPOCH)
  trim_dead(K_DEAD, now, dead_ttl)
end
return {#gone, {}}
