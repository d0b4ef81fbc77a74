-- progress.lua: stores what a running attempt reports about its progress.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  job id
-- ARGV[2]  the attempt reporting
-- ARGV[3]  the progress (JSON)
-- Returns 1 if stored, 0 if that attempt does not hold the job's lease.
-- Stored as `attempt␟json`, so a report is shown only for the attempt that
-- made it, even if it outlived that attempt (job_info.lua checks).
local id = ARGV[1]
if not redis.call('ZSCORE', K_LEASE, id) then return 0 end
local attempts = leased_attempts(redis.call('HGET', K_META, id) or nil)
if attempts ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', progress_key(), id, ARGV[2] .. SEP .. ARGV[3])
return 1
