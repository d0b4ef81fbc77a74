-- cancel.lua: cancels a job of one route that has not started: a queued,
-- scheduled or retrying job leaves its queue or the schedule and is buried
-- in the dead letter with the error `cancelled` (waiters get that record).
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  job id
-- ARGV[2]  now (ms)
-- ARGV[3]  the dead-letter TTL (ms)
-- Returns 'c' cancelled, 'r' running (nothing changed), 'f' finished
-- (nothing changed), '' unknown on this route.
-- Taking a job out of its queue is an LREM, linear in the queue's length:
-- an operator's action, never on the hot path (as in Sidekiq or BullMQ).
local id, now, dead_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', result_key(id)) == 1 then return 'f' end
local spec = redis.call('HGET', K_JOBS, id)
if not spec then return '' end
if redis.call('ZSCORE', K_LEASE, id) then return 'r' end
if redis.call('ZREM', K_SCHED, id) == 0 then
  redis.call('LREM', queue_of(spec), 1, id)
end
local meta = redis.call('HGET', K_META, id)
local attempts, started = parse_meta(meta or nil)
local rec = record('d', attempts or 0, started, now, 'cancelled', '', spec)
bury(id, rec, now, dead_ttl)
redis.call('HDEL', K_JOBS, id)
redis.call('HDEL', K_META, id)
local waiters = redis.call('HGET', K_WAITERS, id)
if waiters then notify(id, waiters, rec) end
trim_dead(now, dead_ttl)
return 'c'
