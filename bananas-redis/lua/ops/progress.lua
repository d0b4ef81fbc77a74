-- progress.lua: stores what a running attempt reports about its progress.
-- KEYS[1]  {P:R}:lease
-- KEYS[2]  {P:R}:meta
-- KEYS[3]  {P:R}:progress
-- ARGV[1]  job id
-- ARGV[2]  the attempt reporting
-- ARGV[3]  the progress (JSON)
-- Returns 1 if stored, 0 if that attempt does not hold the job's lease.
-- Stored as `attempt SEP json`, so a report is shown only for the attempt
-- that made it, even if it outlived that attempt (src/codec.rs checks).
--- @include "include/sep.lua"
--- @include "include/meta.lua"
local id = ARGV[1]
if not redis.call('ZSCORE', KEYS[1], id) then return 0 end
local attempts = leased_attempts(redis.call('HGET', KEYS[2], id) or nil)
if attempts ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[3], id, ARGV[2] .. SEP .. ARGV[3])
return 1
