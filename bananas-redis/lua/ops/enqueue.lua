-- enqueue.lua: enqueues a batch of jobs on one route (enqueue and
-- enqueue-many are the same script).
-- KEYS[1]        {P:R}:jobs
-- KEYS[2]        {P:R}:q:h
-- KEYS[3]        {P:R}:q:n
-- KEYS[4]        {P:R}:q:l
-- KEYS[5]        {P:R}:sched
-- KEYS[6]        {P:R}:wake
-- KEYS[7..6+n]   {P:R}:r:<id> of each job, in the order of ARGV
-- ARGV[1]        now (ms)
-- ARGV[2..]      triples: id, due (ms; <= now means ready now), spec
-- Returns the number of jobs that were new.
--- @include "include/add_jobs.lua"
local k = {jobs = KEYS[1], qh = KEYS[2], qn = KEYS[3], ql = KEYS[4], sched = KEYS[5], wake = KEYS[6]}
return add_jobs(k, tonumber(ARGV[1]), ARGV, 2, KEYS, 7)
