-- workers.lua: the live workers. Not a route script.
-- KEYS[1]  {P}:workers   zset worker id -> expiry (ms)
-- KEYS[2]  {P}           base name; worker records are {P}:worker:<id>
-- ARGV[1]  now (ms)
-- Returns the info JSON of every worker whose heartbeat has not expired.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for i = 1, #ids do
  local info = redis.call('GET', KEYS[2] .. ':worker:' .. ids[i])
  if info then out[#out + 1] = info end
end
return out
