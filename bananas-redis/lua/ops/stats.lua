-- stats.lua: queue depths of one route (read only, one snapshot).
-- KEYS[1]  {P:R}:q:h
-- KEYS[2]  {P:R}:q:n
-- KEYS[3]  {P:R}:q:l
-- KEYS[4]  {P:R}:sched
-- KEYS[5]  {P:R}:lease
-- KEYS[6]  {P:R}:dead
-- ARGV: none.
-- Returns { high, normal, low, scheduled, active, dead }.
return {
  redis.call('LLEN', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), redis.call('ZCARD', KEYS[6]),
}
