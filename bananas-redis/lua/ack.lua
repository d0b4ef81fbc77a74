-- ack.lua: settles a batch of attempts on one route.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2]  success result TTL (ms)
-- ARGV[3]  failure (dead letter) TTL (ms)
-- ARGV[4..] 5-tuples: kind, id, attempt, a, b where kind is
--   'S'  succeeded and keeps its result: a = result JSON
--   'N'  succeeded, keeps no result: everything about the job is deleted
--   'R'  retry: a = eta (ms), b = the attempt's error
--   'D'  dead: a = reason
-- An ack counts only if its attempt still holds the lease (the lease did not
-- expire and get recovered meanwhile); others are ignored as stale.
-- Returns { settled, stale }.
local now = tonumber(ARGV[1])
local ok_ttl, dead_ttl = ARGV[2], tonumber(ARGV[3])

local ids = {}
for i = 4, #ARGV, 5 do ids[#ids + 1] = ARGV[i + 1] end
if #ids == 0 then return {0, 0} end
local metas = vget('HMGET', K_META, ids)
local leased = vget('ZMSCORE', K_LEASE, ids)
local specs = vget('HMGET', K_JOBS, ids)
local waiters = vget('HMGET', K_WAITERS, ids)

local unlease, drop, newmeta, sched = {}, {}, {}, {}
local settled, stale, died = 0, 0, false
for n = 1, #ids do
  local i = 4 + (n - 1) * 5
  local kind, id, attempt = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local attempts, started, _ = parse_meta(metas[n])
  local spec = specs[n]
  if not leased[n] or not metas[n] or attempts ~= attempt or not spec then
    stale = stale + 1
  else
    settled = settled + 1
    unlease[#unlease + 1] = id
    if kind == 'R' then
      sched[#sched + 1] = ARGV[i + 3]
      sched[#sched + 1] = id
      newmeta[#newmeta + 1] = id
      newmeta[#newmeta + 1] = tostring(attempts) .. SEP .. started .. SEP .. ARGV[i + 4]
    else
      drop[#drop + 1] = id
      local rec
      if kind == 'D' then
        rec = record('d', attempts, started, now, ARGV[i + 3], '', spec)
        bury(id, rec, now, dead_ttl)
        died = true
      elseif kind == 'S' then
        rec = record('s', attempts, started, now, '', ARGV[i + 3], spec)
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
vcall('HDEL', K_META, drop)
vcall('HSET', K_META, newmeta)
if #sched > 0 then
  vcall('ZADD', K_SCHED, sched)
  wake(1)
end
if died then trim_dead(now, dead_ttl) end
return {settled, stale}
