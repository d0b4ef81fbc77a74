-- claim_tick.lua: claims a schedule's tick and enqueues its job, once,
-- unless the tick is too far ahead of this server's clock.
-- KEYS[1]  {P:R}:ticks
-- KEYS[2]  {P:R}:jobs
-- KEYS[3]  {P:R}:q:h
-- KEYS[4]  {P:R}:q:n
-- KEYS[5]  {P:R}:q:l
-- KEYS[6]  {P:R}:sched
-- KEYS[7]  {P:R}:wake
-- KEYS[8]  {P:R}:r:<job id>
-- ARGV[1]  now (ms)
-- ARGV[2]  tolerance (ms): how far past this server's TIME a tick may be
-- ARGV[3]  schedule name
-- ARGV[4]  tick (ms)
-- ARGV[5]  job id
-- ARGV[6]  due (ms)
-- ARGV[7]  spec
-- Returns {'enqueued'} if the tick was claimed (and the job enqueued
-- unless its id already existed), {'taken'} if this or a later tick was
-- claimed before, {'early', now (ms)} if the tick is later than TIME +
-- tolerance (nothing claimed).
-- The tick mark is `tick SEP job id` (src/codec.rs, `decode_tick_mark`).
--- @include "include/split.lua"
--- @include "include/add_jobs.lua"
local tick = tonumber(ARGV[4])
local cur = redis.call('HGET', KEYS[1], ARGV[3])
if cur then
  local last = tonumber(split(cur, 2)[1])
  if last and last >= tick then return {'taken'} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tick > now + tonumber(ARGV[2]) then return {'early', now} end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4] .. SEP .. ARGV[5])
local k = {jobs = KEYS[2], qh = KEYS[3], qn = KEYS[4], ql = KEYS[5], sched = KEYS[6], wake = KEYS[7]}
add_jobs(k, tonumber(ARGV[1]), ARGV, 5, KEYS, 8)
return {'enqueued'}
