-- release.lua: hands leased jobs back unrun (graceful shutdown). They go
-- to the front of their queue and the attempt is not counted.
-- KEYS: the route keys (see route.lua).
-- ARGV[1..] pairs: id, attempt (as fetched)
-- Returns how many jobs were released (stale ones are skipped).
local n = 0
for i = #ARGV - 1, 1, -2 do
  local id, attempt = ARGV[i], tonumber(ARGV[i + 1])
  local meta = redis.call('HGET', K_META, id)
  local attempts, started, err = leased_attempts(meta)
  local spec = redis.call('HGET', K_JOBS, id)
  if spec and attempts == attempt and redis.call('ZREM', K_LEASE, id) == 1 then
    redis.call('HDEL', progress_key(), id)
    if attempts <= 1 and err == '' then
      if meta then redis.call('HDEL', K_META, id) end
    else
      redis.call('HSET', K_META, id, tostring(attempts - 1) .. SEP .. started .. SEP .. err)
    end
    redis.call('LPUSH', queue_of(spec), id)
    n = n + 1
  end
end
wake(n)
return n
