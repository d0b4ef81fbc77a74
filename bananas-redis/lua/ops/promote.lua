-- promote.lua: moves due scheduled jobs of one route to their queues.
-- (fetch.lua does the same first; this script is for callers that only
-- want promotion.)
-- KEYS[1]  {P:R}:jobs
-- KEYS[2]  {P:R}:q:h
-- KEYS[3]  {P:R}:q:n
-- KEYS[4]  {P:R}:q:l
-- KEYS[5]  {P:R}:sched
-- KEYS[6]  {P:R}:wake
-- ARGV[1]  now (ms)
-- ARGV[2]  the most jobs to move
-- Returns how many jobs moved.
--- @include "include/promote.lua"
--- @include "include/wake.lua"
local k = {jobs = KEYS[1], qh = KEYS[2], qn = KEYS[3], ql = KEYS[4], sched = KEYS[5]}
local n = promote(k, tonumber(ARGV[1]), tonumber(ARGV[2]))
wake(KEYS[6], n)
return n
