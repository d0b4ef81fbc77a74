-- claim_tick.lua: claims a schedule's tick, on every route at once, unless
-- it is taken or too far ahead of this server's clock. The tick's job is
-- enqueued afterwards on its route's slot (enqueue_tick.lua); until that is
-- confirmed (confirm_tick.lua) the claim is *pending* and holds back every
-- later claim of the schedule, so a claimer that stops in between loses no
-- tick: the next one to ask enqueues it (src/ops/ticks.rs).
-- KEYS[1]  {P}:ticks
-- KEYS[2]  {P}:ticks:pending
-- ARGV[1]  schedule name
-- ARGV[2]  tick (ms)
-- ARGV[3]  the claim: `tick SEP job id SEP route SEP due SEP spec`
-- ARGV[4]  tolerance (ms): how far past this server's TIME a tick may be
-- Returns {'claimed'}; {'taken'} if this or a later tick was claimed
-- before; {'early', now (ms)} if the tick is later than TIME + tolerance;
-- or {'pending', claim} if a claim of an earlier tick, or of this very
-- tick, may still wait for its job: the caller enqueues that job (a
-- repeat does nothing) and, for an earlier tick, asks again.
-- The encodings are in src/codec.rs (`TickMark`, `TickClaim`).
--- @include "include/split.lua"
local tick = tonumber(ARGV[2])
local pending = redis.call('HGET', KEYS[2], ARGV[1])
if pending then
  local p = tonumber(split(pending, 2)[1])
  if p and p > tick then return {'taken'} end
  return {'pending', pending}
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local last = tonumber(split(cur, 2)[1])
  if last and last >= tick then return {'taken'} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tick > now + tonumber(ARGV[4]) then return {'early', now} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return {'claimed'}
