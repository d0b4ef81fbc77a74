-- stats.lua: queue depths of one route, whether it is paused, and when its
-- oldest queued job became due (read only, one snapshot).
-- KEYS[1]  {P:R}:q:h
-- KEYS[2]  {P:R}:q:n
-- KEYS[3]  {P:R}:q:l
-- KEYS[4]  {P:R}:sched
-- KEYS[5]  {P:R}:lease
-- KEYS[6]  {P:R}:dead
-- KEYS[7]  {P:R}:paused
-- KEYS[8]  {P:R}:jobs
-- ARGV: none.
-- Returns { high, normal, low, scheduled, active, dead, paused (0/1),
-- oldest_due ('' when nothing is queued) }. The oldest queued job is at the
-- head of one of the three queues (jobs join at the tail; only jobs taken
-- back from a worker join at the head, and they are older still), so this
-- reads three heads: O(1).
--- @include "include/split.lua"
local oldest = nil
for i = 1, 3 do
  local id = redis.call('LINDEX', KEYS[i], 0)
  local spec = id and redis.call('HGET', KEYS[8], id)
  if spec then
    -- prio SEP max_retries SEP created_at SEP eta SEP ...
    local f = split(spec, 5)
    local due = tonumber(f[4]) or tonumber(f[3])
    if due and (not oldest or due < oldest) then oldest = due end
  end
end
return {
  redis.call('LLEN', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), redis.call('ZCARD', KEYS[6]),
  redis.call('EXISTS', KEYS[7]), oldest and string.format('%d', oldest) or '',
}
