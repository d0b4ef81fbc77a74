-- requeue_dead.lua: moves a dead job back to the back of its queue with its
-- attempts reset and its eta cleared.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  job id
-- Returns 1 if the job was requeued, 0 if the route has no dead job by that id.
local id = ARGV[1]
if not redis.call('ZSCORE', K_DEAD, id) then return 0 end
local rec = redis.call('GET', result_key(id))
redis.call('ZREM', K_DEAD, id)
if not rec then return 0 end
local r = split(rec, 12)
if #r < 12 then return 0 end
-- r[7..12] = prio, max_retries, created_at, eta, task, args
r[10] = ''
local spec = table.concat({r[7], r[8], r[9], r[10], r[11], r[12]}, SEP)
redis.call('DEL', result_key(id))
redis.call('HDEL', K_META, id)
redis.call('HSET', K_JOBS, id, spec)
redis.call('RPUSH', queue_of(spec), id)
wake(1)
return 1
