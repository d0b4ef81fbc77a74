-- enqueue.lua: enqueues a batch of jobs on one route (enqueue and
-- enqueue-many are the same script).
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2..] triples: id, due (ms; <= now means ready now), spec
-- Returns the number of jobs that were new.
return add_jobs(tonumber(ARGV[1]), ARGV, 2)
