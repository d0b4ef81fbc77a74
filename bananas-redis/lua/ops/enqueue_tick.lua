-- enqueue_tick.lua: enqueues the job of a claimed tick (claim_tick.lua) on
-- its route, once: the route's mark of the schedule is the last tick
-- enqueued there, so a repeat (a second scheduler finishing the same
-- claim, a retry after a lost reply) enqueues nothing, even after the job
-- has finished and left no trace.
-- KEYS[1]  {P:R}:ticks
-- KEYS[2]  {P:R}:jobs
-- KEYS[3]  {P:R}:q:h
-- KEYS[4]  {P:R}:q:n
-- KEYS[5]  {P:R}:q:l
-- KEYS[6]  {P:R}:sched
-- KEYS[7]  {P:R}:wake
-- KEYS[8]  {P:R}:r:<job id>
-- ARGV[1]  now (ms)
-- ARGV[2]  schedule name
-- ARGV[3]  tick (ms)
-- ARGV[4]  job id
-- ARGV[5]  due (ms)
-- ARGV[6]  spec
-- Returns {'enqueued'} (the job was added unless its id was already
-- held), or {'before', mark} when this or a later tick was enqueued on the
-- route before, with the route's mark `tick SEP job id` (src/codec.rs).
--- @include "include/split.lua"
--- @include "include/add_jobs.lua"
local tick = tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then
  local last = tonumber(split(cur, 2)[1])
  if last and last >= tick then return {'before', cur} end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. SEP .. ARGV[4])
local k = {jobs = KEYS[2], qh = KEYS[3], qn = KEYS[4], ql = KEYS[5], sched = KEYS[6], wake = KEYS[7]}
add_jobs(k, tonumber(ARGV[1]), ARGV, 4, KEYS, 8)
return {'enqueued'}
