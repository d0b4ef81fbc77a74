-- extend.lua: extends the leases of in-flight jobs of one route.
-- KEYS[1]   {P:R}:lease
-- ARGV[1]   the new lease deadline (ms)
-- ARGV[2..] job ids
-- Only ids that still hold a lease are touched (ZADD XX).
-- Returns how many leases were extended.
--- @include "include/chunk.lua"
local deadline = ARGV[1]
local pairs_ = {}
for i = 2, #ARGV do
  pairs_[#pairs_ + 1] = deadline
  pairs_[#pairs_ + 1] = ARGV[i]
end
local n, i = 0, 1
while i <= #pairs_ do
  local j = math.min(i + CHUNK - 1, #pairs_)
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', unpack(pairs_, i, j))
  i = j + 1
end
return n
