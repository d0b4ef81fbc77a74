-- deregister.lua: removes a stopped worker (global keys, hash tag {P}), so
-- it is not listed until its heartbeat would have expired.
-- KEYS[1]   {P}:workers          zset   worker id -> expiry (ms)
-- KEYS[2]   {P}:worker:<id>      string worker info JSON
-- ARGV[1]   worker id
-- Returns 1 if the worker was listed, 0 otherwise.
redis.call('DEL', KEYS[2])
return redis.call('ZREM', KEYS[1], ARGV[1])
