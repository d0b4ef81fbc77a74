-- dead.lua: the dead letter.
--   bury(result_key, dead, id, rec, now, ttl_ms) stores a dead record at
--     `result_key` ({P:R}:r:<id>) and indexes `id` in `dead` ({P:R}:dead).
--   trim_dead(dead, now, ttl_ms) drops index entries whose record expired.
local function bury(result_key, dead, id, rec, now, ttl_ms)
  redis.call('SET', result_key, rec, 'PX', ttl_ms)
  redis.call('ZADD', dead, now, id)
end
local function trim_dead(dead, now, ttl_ms)
  redis.call('ZREMRANGEBYSCORE', dead, '-inf', '(' .. tostring(now - ttl_ms))
end
