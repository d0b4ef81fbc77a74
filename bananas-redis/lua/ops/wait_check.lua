-- wait_check.lua: returns a job's final record, or registers a waiter.
-- Atomic, so a result stored before the waiter listens is never missed:
-- either it is returned here, or ack.lua / recover.lua / cancel.lua will
-- push it to the waiter's notification list {P:R}:w:<id>.
-- KEYS[1]  {P:R}:jobs
-- KEYS[2]  {P:R}:waiters
-- KEYS[3]  {P:R}:r:<id>
-- KEYS[4]  {P:R}:w:<id>
-- ARGV[1]  job id
-- Returns { 'finished', record }, { 'waiting' } (waiter registered) or
-- { 'unknown' } (not on this route).
local id = ARGV[1]
local rec = redis.call('GET', KEYS[3])
if rec then return {'finished', rec} end
if redis.call('HEXISTS', KEYS[1], id) == 1 then
  -- The first waiter of this run: anything in the notification list is
  -- left from an earlier run of the same id (pushed for a waiter that had
  -- given up), since this run notifies only once it finishes, and then
  -- clears its waiter count.
  if redis.call('HINCRBY', KEYS[2], id, 1) == 1 then redis.call('DEL', KEYS[4]) end
  return {'waiting'}
end
return {'unknown'}
