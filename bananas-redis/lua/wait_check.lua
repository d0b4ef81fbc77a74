-- wait_check.lua: returns a job's final record, or registers a waiter.
-- Atomic, so a result stored before the waiter listens is never missed:
-- either it is returned here, or ack.lua / recover.lua will push it to the
-- waiter's notification list {P:R}:w:<id>.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  job id
-- Returns { 'f', record } finished, { 'w' } waiter registered,
--         { 'n' } unknown on this route.
local id = ARGV[1]
local rec = redis.call('GET', result_key(id))
if rec then return {'f', rec} end
if redis.call('HEXISTS', K_JOBS, id) == 1 then
  redis.call('HINCRBY', K_WAITERS, id, 1)
  return {'w'}
end
return {'n'}
