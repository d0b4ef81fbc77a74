-- claim_tick.lua: claims a schedule's tick and enqueues its job, once.
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
-- Returns 1 if the tick was claimed (and the job enqueued unless its id
-- already existed), 0 if this or a later tick was claimed before.
-- The tick mark is `tick SEP job id` (src/codec.rs, `decode_tick_mark`).
--- @include "include/split.lua"
--- @include "include/add_jobs.lua"
local tick = tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then
  local last = tonumber(split(cur, 2)[1])
  if last and last >= tick then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. SEP .. ARGV[4])
local k = {jobs = KEYS[2], qh = KEYS[3], qn = KEYS[4], ql = KEYS[5], sched = KEYS[6], wake = KEYS[7]}
add_jobs(k, tonumber(ARGV[1]), ARGV, 4, KEYS, 8)
return 1
