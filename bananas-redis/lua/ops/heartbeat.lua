-- heartbeat.lua: records a live worker (global keys, hash tag {P}).
-- KEYS[1]   {P}:workers          zset   worker id -> expiry (ms)
-- KEYS[2]   {P}:worker:<id>      string worker info JSON, expires after ttl
-- KEYS[3]   {P}:routes           set    every route seen
-- ARGV[1]   worker id
-- ARGV[2]   worker info JSON
-- ARGV[3]   ttl (ms)
-- ARGV[4]   now (ms)
-- ARGV[5..] the worker's routes, registered again with every beat: the set
--           may have been lost (a restart without persistence).
-- Returns 1.
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if #ARGV >= 5 then redis.call('SADD', KEYS[3], unpack(ARGV, 5)) end
redis.call('ZADD', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
return 1
