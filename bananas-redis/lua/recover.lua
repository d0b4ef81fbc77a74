-- recover.lua: returns jobs whose lease expired to the front of their queue,
-- or to the dead letter once their retries are used up.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2]  the most jobs to recover in this call
-- ARGV[3]  the dead-letter TTL (ms)
-- Returns how many jobs were recovered (requeued or dead-lettered).
local now = tonumber(ARGV[1])
local dead_ttl = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', K_LEASE, '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return 0 end
local specs = vget('HMGET', K_JOBS, ids)
local metas = vget('HMGET', K_META, ids)
local waiters = vget('HMGET', K_WAITERS, ids)
local requeued, died = 0, false
for i = #ids, 1, -1 do
  local id, spec = ids[i], specs[i]
  local attempts, started, _ = leased_attempts(metas[i])
  attempts = attempts or 0
  if spec then
    local max_retries = tonumber(split(spec, 3)[2]) or 0
    -- Retries are left while attempts <= max_retries (bananas_core::rules::can_retry).
    if attempts > max_retries then
      local reason = 'lease expired: worker lost (attempt ' .. tostring(attempts) .. ')'
      local rec = record('d', attempts, started, now, reason, '', spec)
      bury(id, rec, now, dead_ttl)
      redis.call('HDEL', K_JOBS, id)
      redis.call('HDEL', K_META, id)
      if waiters[i] then notify(id, waiters[i], rec) end
      died = true
    else
      -- No longer leased, so a first attempt must now be written down.
      if not metas[i] then redis.call('HSET', K_META, id, '1' .. SEP .. SEP) end
      redis.call('LPUSH', queue_of(spec), id)
      requeued = requeued + 1
    end
  else
    -- Nothing left to run: forget the lease and the counter.
    redis.call('HDEL', K_META, id)
  end
end
vcall('ZREM', K_LEASE, ids)
drop_progress(ids)
-- Leases were taken from their holders: acks of attempts leased before
-- now must be checked against the lease set again (see ack.lua).
bump_epoch()
wake(requeued)
if died then trim_dead(now, dead_ttl) end
return #ids
