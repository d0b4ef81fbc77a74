-- release.lua: hands leased jobs back unrun (graceful shutdown). They go
-- to the front of their queue and the attempt is not counted.
-- KEYS[1]  {P:R}:jobs
-- KEYS[2]  {P:R}:meta
-- KEYS[3]  {P:R}:q:h
-- KEYS[4]  {P:R}:q:n
-- KEYS[5]  {P:R}:q:l
-- KEYS[6]  {P:R}:lease
-- KEYS[7]  {P:R}:wake
-- KEYS[8]  {P:R}:progress
-- ARGV[1..] pairs: id, attempt (as fetched)
-- Returns how many jobs were released (stale ones are skipped).
--- @include "include/sep.lua"
--- @include "include/meta.lua"
--- @include "include/spec.lua"
--- @include "include/wake.lua"
local K_JOBS, K_META, K_QH, K_QN, K_QL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_LEASE, K_WAKE, K_PROGRESS = KEYS[6], KEYS[7], KEYS[8]
local n = 0
for i = #ARGV - 1, 1, -2 do
  local id, attempt = ARGV[i], tonumber(ARGV[i + 1])
  local meta = redis.call('HGET', K_META, id)
  local attempts, started, err, lost = leased_attempts(meta)
  local spec = redis.call('HGET', K_JOBS, id)
  if spec and attempts == attempt and redis.call('ZREM', K_LEASE, id) == 1 then
    redis.call('HDEL', K_PROGRESS, id)
    if attempts <= 1 and err == '' and lost == 0 then
      if meta then redis.call('HDEL', K_META, id) end
    else
      redis.call('HSET', K_META, id, meta_of(attempts - 1, started, err, lost))
    end
    redis.call('LPUSH', queue_of(spec, K_QH, K_QN, K_QL), id)
    n = n + 1
  end
end
wake(K_WAKE, n)
return n
