-- bury.lua: dead-letters leased jobs that cannot run: those fetch.lua
-- found without a spec or with an unreadable attempt counter. fetch.lua
-- leases them and returns them with a reason, so nothing is lost if this
-- call never comes: their lease expires and recover.lua deals with them.
-- KEYS[1]        {P:R}:jobs
-- KEYS[2]        {P:R}:meta
-- KEYS[3]        {P:R}:lease
-- KEYS[4]        {P:R}:dead
-- KEYS[5]        {P:R}:waiters
-- KEYS[6..]      pairs {P:R}:r:<id>, {P:R}:w:<id> of each job, in the
--                order of ARGV
-- Waiters of a buried job are woken with its dead record, as by ack.lua.
-- ARGV[1]        now (ms)
-- ARGV[2]        the dead-letter TTL (ms)
-- ARGV[3..]      pairs: id, reason
-- Returns how many jobs were dead-lettered (an id that no longer holds a
-- lease is skipped).
--- @include "include/sep.lua"
--- @include "include/record.lua"
--- @include "include/dead.lua"
--- @include "include/notify.lua"
local K_JOBS, K_META, K_LEASE, K_DEAD, K_WAITERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, dead_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV - 1, 2 do
  local id, reason = ARGV[i], ARGV[i + 1]
  if redis.call('ZREM', K_LEASE, id) == 1 then
    local spec = redis.call('HGET', K_JOBS, id)
    -- A job without data is recorded with an empty spec (no task, null
    -- arguments).
    if not spec then spec = 'n' .. SEP .. '0' .. SEP .. '0' .. SEP .. SEP .. SEP .. 'null' end
    local k = 6 + (i - 3)
    local rec = record('d', 0, '', now, reason, '', spec)
    bury(KEYS[k], K_DEAD, id, rec, now, dead_ttl)
    redis.call('HDEL', K_JOBS, id)
    redis.call('HDEL', K_META, id)
    local waiters = redis.call('HGET', K_WAITERS, id)
    if waiters then notify(K_WAITERS, KEYS[k + 1], id, waiters, rec) end
    n = n + 1
  end
end
if n > 0 then trim_dead(K_DEAD, now, dead_ttl) end
return n
