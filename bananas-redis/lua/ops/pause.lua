-- pause.lua: pauses or resumes a route. fetch.lua leases nothing from a
-- paused route (it still promotes due jobs, which then wait queued).
-- KEYS[1]  {P:R}:paused   string: when the route was paused (ms)
-- KEYS[2]  {P:R}:wake
-- ARGV[1]  'pause' or 'resume'
-- ARGV[2]  now (ms)
-- Returns 1 when the state changed, 0 when the route already was so.
-- Resuming wakes idle fetchers, which otherwise look again only at the end
-- of their idle wait.
--- @include "include/wake.lua"
if ARGV[1] == 'pause' then
  if redis.call('SET', KEYS[1], ARGV[2], 'NX') then return 1 end
  return 0
end
local was = redis.call('DEL', KEYS[1])
if was == 1 then wake(KEYS[2], MAX_TOKENS) end
return was
