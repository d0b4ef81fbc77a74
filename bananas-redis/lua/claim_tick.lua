-- claim_tick.lua: claims a schedule's tick and enqueues its job, once.
-- KEYS: the route keys (see route.lua); KEYS[12] holds the ticks.
-- ARGV[1]  now (ms)
-- ARGV[2]  schedule name
-- ARGV[3]  tick (ms)
-- ARGV[4]  job id
-- ARGV[5]  due (ms)
-- ARGV[6]  spec
-- Returns 1 if the tick was claimed (and the job enqueued unless its id
-- already existed), 0 if this or a later tick was claimed before.
local tick = tonumber(ARGV[3])
local cur = redis.call('HGET', K_TICKS, ARGV[2])
if cur then
  local last = tonumber(split(cur, 2)[1])
  if last and last >= tick then return 0 end
end
redis.call('HSET', K_TICKS, ARGV[2], ARGV[3] .. SEP .. ARGV[4])
add_jobs(tonumber(ARGV[1]), ARGV, 4)
return 1
