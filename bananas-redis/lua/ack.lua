-- ack.lua: settles a batch of attempts on one route.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2]  success result TTL (ms)
-- ARGV[3]  failure (dead letter) TTL (ms)
-- ARGV[4..] 6-tuples: kind, id, attempt, started_at, a, b where kind is
--   'S'  succeeded and keeps its result: a = result JSON
--   'N'  succeeded, keeps no result: everything about the job is deleted
--   'R'  retry: a = eta (ms), b = the attempt's error
--   'D'  dead: a = reason
-- started_at is when the attempt started (the worker's clock, ms).
-- An ack counts only if its attempt still holds the lease (the lease did not
-- expire and get recovered meanwhile); others are ignored as stale.
-- Returns { settled, stale }.
local now = tonumber(ARGV[1])
local ok_ttl, dead_ttl = ARGV[2], tonumber(ARGV[3])
local W = 6

local ids = {}
for i = 4, #ARGV, W do ids[#ids + 1] = ARGV[i + 1] end
if #ids == 0 then return {0, 0} end
local leased = vget('ZMSCORE', K_LEASE, ids)
-- The meta and waiters hashes are usually empty: skip reading them then.
local metas, waiters = {}, {}
if redis.call('EXISTS', K_META) == 1 then metas = vget('HMGET', K_META, ids) end
if redis.call('EXISTS', K_WAITERS) == 1 then waiters = vget('HMGET', K_WAITERS, ids) end
-- The spec goes into the records of results, dead jobs and waiters.
local need_spec = false
for i = 4, #ARGV, W do
  if ARGV[i] ~= 'N' then need_spec = true break end
end
for n = 1, #ids do
  if waiters[n] then need_spec = true break end
end
local specs = {}
if need_spec then specs = vget('HMGET', K_JOBS, ids) end

local unlease, drop, dropmeta, newmeta, sched = {}, {}, {}, {}, {}
local settled, stale, died = 0, 0, false
for n = 1, #ids do
  local i = 4 + (n - 1) * W
  local kind, id, attempt, started = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local attempts = leased_attempts(metas[n])
  local spec = specs[n]
  if not leased[n] or attempts ~= attempt or (need_spec and not spec) then
    stale = stale + 1
  else
    settled = settled + 1
    unlease[#unlease + 1] = id
    if kind == 'R' then
      sched[#sched + 1] = ARGV[i + 4]
      sched[#sched + 1] = id
      newmeta[#newmeta + 1] = id
      newmeta[#newmeta + 1] = tostring(attempts) .. SEP .. started .. SEP .. ARGV[i + 5]
    else
      drop[#drop + 1] = id
      if metas[n] then dropmeta[#dropmeta + 1] = id end
      local rec
      if kind == 'D' then
        rec = record('d', attempts, started, now, ARGV[i + 4], '', spec)
        bury(id, rec, now, dead_ttl)
        died = true
      elseif kind == 'S' then
        rec = record('s', attempts, started, now, '', ARGV[i + 4], spec)
        redis.call('SET', result_key(id), rec, 'PX', ok_ttl)
      elseif waiters[n] then
        rec = record('s', attempts, started, now, '', '', spec)
      end
      if waiters[n] then notify(id, waiters[n], rec) end
    end
  end
end
vcall('ZREM', K_LEASE, unlease)
vcall('HDEL', K_JOBS, drop)
vcall('HDEL', K_META, dropmeta)
vcall('HSET', K_META, newmeta)
if #sched > 0 then
  vcall('ZADD', K_SCHED, sched)
  wake(1)
end
if died then trim_dead(now, dead_ttl) end
return {settled, stale}
