-- wake.lua: wake(key, n) tops the route's wake-up list `key` ({P:R}:wake)
-- up by `n` tokens for idle fetchers, to at most MAX_TOKENS. While workers
-- are busy the list is full and this is one LLEN.
local MAX_TOKENS = 16
local function wake(key, n)
  if n <= 0 then return end
  local room = MAX_TOKENS - redis.call('LLEN', key)
  if room <= 0 then return end
  local t = {}
  for i = 1, math.min(n, room) do t[i] = '1' end
  redis.call('LPUSH', key, unpack(t))
end
