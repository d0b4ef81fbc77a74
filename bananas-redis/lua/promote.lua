-- promote.lua: moves due scheduled jobs of one route to their queues.
-- (fetch.lua does the same first; this script is for callers that only
-- want promotion.)
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2]  the most jobs to move
-- Returns how many jobs moved.
local n = promote(tonumber(ARGV[1]), tonumber(ARGV[2]))
wake(n)
return n
