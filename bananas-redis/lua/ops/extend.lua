-- extend.lua: extends the leases of in-flight jobs of one route, for the
-- attempts that still hold them.
-- KEYS[1]   {P:R}:lease
-- KEYS[2]   {P:R}:meta
-- KEYS[3]   {P:R}:revoked
-- ARGV[1]   the new lease deadline (ms)
-- ARGV[2]   the recovery epoch the attempts were leased at ('' unknown)
-- ARGV[3..] pairs: job id, attempt
-- A lease is extended only if the job is leased (ZADD XX), on that attempt
-- (its meta), and the lease was not taken from this holder since (see
-- revoked_since in include/epoch.lua): a holder whose lease was recovered
-- does not extend the lease of whoever runs the job now.
-- Returns how many leases were extended.
--- @include "include/sep.lua"
--- @include "include/chunk.lua"
--- @include "include/vget.lua"
--- @include "include/meta.lua"
--- @include "include/epoch.lua"
local deadline, leased_at = ARGV[1], ARGV[2]
local ids, attempts = {}, {}
for i = 3, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  attempts[#ids] = tonumber(ARGV[i + 1])
end
if #ids == 0 then return 0 end
local metas, revoked = {}, {}
if redis.call('EXISTS', KEYS[2]) == 1 then metas = vget('HMGET', KEYS[2], ids) end
if redis.call('EXISTS', KEYS[3]) == 1 then revoked = vget('HMGET', KEYS[3], ids) end
local pairs_ = {}
for n = 1, #ids do
  local held = leased_attempts(metas[n] or nil) == attempts[n]
  if held and revoked[n] and revoked_since(leased_at, revoked[n]) then held = false end
  if held then
    pairs_[#pairs_ + 1] = deadline
    pairs_[#pairs_ + 1] = ids[n]
  end
end
local n, i = 0, 1
while i <= #pairs_ do
  local j = math.min(i + CHUNK - 1, #pairs_)
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', unpack(pairs_, i, j))
  i = j + 1
end
return n
