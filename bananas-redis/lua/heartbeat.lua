-- heartbeat.lua: records a live worker. Not a route script.
-- KEYS[1]  {P}:workers          zset   worker id -> expiry (ms)
-- KEYS[2]  {P}:worker:<id>      string worker info JSON, expires after ttl
-- ARGV[1]  worker id
-- ARGV[2]  worker info JSON
-- ARGV[3]  ttl (ms)
-- ARGV[4]  now (ms)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
return 1
