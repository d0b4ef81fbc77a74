-- confirm_tick.lua: records that a claimed tick's job is on its route
-- (enqueue_tick.lua answered): the pending claim goes, and the schedule's
-- mark moves to the last tick enqueued on that route.
-- KEYS[1]  {P}:ticks
-- KEYS[2]  {P}:ticks:pending
-- ARGV[1]  schedule name
-- ARGV[2]  the claimed tick (ms)
-- ARGV[3]  mark `tick SEP job id`: the claimed tick's, or the later tick
--          the route had enqueued before (src/codec.rs)
-- Removes the pending claim only if it is still the claim of ARGV[2];
-- raises the mark only if ARGV[3] is later. Returns 1.
--- @include "include/split.lua"
local pending = redis.call('HGET', KEYS[2], ARGV[1])
if pending and tonumber(split(pending, 2)[1]) == tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local new = tonumber(split(ARGV[3], 2)[1])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local last = cur and tonumber(split(cur, 2)[1])
if not last or last < new then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
