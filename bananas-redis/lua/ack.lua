-- ack.lua: settles a batch of attempts on one route.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2]  success result TTL (ms)
-- ARGV[3]  failure (dead letter) TTL (ms)
-- ARGV[4]  c, the number of compact acks that follow
-- ARGV[5 .. 4+3c] triples: id, attempt, started_at of attempts that
--   succeeded and keep no result (kind 'N' below): everything about the
--   job is deleted. Compact because that is the hot path of
--   `result = false` tasks: three arguments per job instead of six.
-- then 6-tuples: kind, id, attempt, started_at, a, b where kind is
--   'S'  succeeded and keeps its result: a = result JSON
--   'N'  as above (also accepted here)
--   'R'  retry: a = eta (ms), b = the attempt's error
--   'D'  dead: a = reason
-- started_at is when the attempt started (the worker's clock, ms).
-- An ack counts only if its attempt still holds the lease (the lease did not
-- expire and get recovered meanwhile); others are ignored as stale.
-- Returns { settled, stale }.
local now = tonumber(ARGV[1])
local ok_ttl, dead_ttl = ARGV[2], tonumber(ARGV[3])
local compact = tonumber(ARGV[4])
local full_from = 5 + 3 * compact
local W = 6

local ids, nids = {}, 0
for i = 5, full_from - 1, 3 do
  nids = nids + 1
  ids[nids] = ARGV[i]
end
for i = full_from, #ARGV, W do
  nids = nids + 1
  ids[nids] = ARGV[i + 1]
end
if nids == 0 then return {0, 0} end
local leased = vget('ZMSCORE', K_LEASE, ids)
-- The meta and waiters hashes are usually empty: skip reading them then.
local metas, waiters = {}, {}
local any_meta = redis.call('EXISTS', K_META) == 1
local any_waiters = redis.call('EXISTS', K_WAITERS) == 1
if any_meta then metas = vget('HMGET', K_META, ids) end
if any_waiters then waiters = vget('HMGET', K_WAITERS, ids) end
-- The spec goes into the records of results, dead jobs and waiters.
local need_spec = any_waiters
for i = full_from, #ARGV, W do
  if ARGV[i] ~= 'N' then need_spec = true break end
end
local specs = {}
if need_spec then specs = vget('HMGET', K_JOBS, ids) end

local unlease, nu, dropmeta, newmeta, sched = {}, 0, {}, {}, {}
local settled, stale, died = 0, 0, false
for n = 1, nids do
  local kind, id, attempt, started, a, b
  if n <= compact then
    local i = 5 + (n - 1) * 3
    kind, id, attempt, started = 'N', ARGV[i], ARGV[i + 1], ARGV[i + 2]
  else
    local i = full_from + (n - compact - 1) * W
    kind, id, attempt, started, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  end
  local meta = metas[n]
  local attempts = 1
  if meta then attempts = leased_attempts(meta) end
  local spec = specs[n]
  if not leased[n] or attempts ~= tonumber(attempt) or (need_spec and not spec) then
    stale = stale + 1
  else
    settled = settled + 1
    nu = nu + 1
    unlease[nu] = id
    if kind == 'R' then
      sched[#sched + 1] = a
      sched[#sched + 1] = id
      newmeta[#newmeta + 1] = id
      newmeta[#newmeta + 1] = tostring(attempts) .. SEP .. started .. SEP .. b
    else
      if meta then dropmeta[#dropmeta + 1] = id end
      local rec
      if kind == 'D' then
        rec = record('d', attempts, started, now, a, '', spec)
        bury(id, rec, now, dead_ttl)
        died = true
      elseif kind == 'S' then
        rec = record('s', attempts, started, now, '', a, spec)
        redis.call('SET', result_key(id), rec, 'PX', ok_ttl)
      elseif waiters[n] then
        rec = record('s', attempts, started, now, '', '', spec)
      end
      if waiters[n] then notify(id, waiters[n], rec) end
    end
  end
end
vcall('ZREM', K_LEASE, unlease)
-- Every settled attempt but a retry leaves the live set.
if #sched == 0 then
  vcall('HDEL', K_JOBS, unlease)
else
  local drop = {}
  local retried = {}
  for k = 2, #sched, 2 do retried[sched[k]] = true end
  for k = 1, nu do
    if not retried[unlease[k]] then drop[#drop + 1] = unlease[k] end
  end
  vcall('HDEL', K_JOBS, drop)
end
vcall('HDEL', K_META, dropmeta)
vcall('HSET', K_META, newmeta)
if #sched > 0 then
  vcall('ZADD', K_SCHED, sched)
  wake(1)
end
if died then trim_dead(now, dead_ttl) end
return {settled, stale}
