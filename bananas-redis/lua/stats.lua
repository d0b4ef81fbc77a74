-- stats.lua: queue depths of one route (read only).
-- KEYS: the route keys (see route.lua).
-- ARGV: none.
-- Returns { high, normal, low, scheduled, active, dead }.
return {
  redis.call('LLEN', K_QH), redis.call('LLEN', K_QN), redis.call('LLEN', K_QL),
  redis.call('ZCARD', K_SCHED), redis.call('ZCARD', K_LEASE), redis.call('ZCARD', K_DEAD),
}
