-- fetch.lua: promotes due jobs, then leases up to #plan jobs of one route.
-- The attempt is counted without a write for first attempts: a leased job
-- with no `meta` field is on attempt 1 (see route.lua, `attempts_of`).
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2]  lease deadline (ms)
-- ARGV[3]  the priority plan, one char per slot: 'h', 'n' or 'l'
-- ARGV[4]  the most scheduled jobs to promote
-- ARGV[5]  the dead-letter TTL (ms), for jobs whose data is missing
-- Returns { flag, id1, attempt1 (integer), spec1, id2, ... } where flag is
--   ''     jobs were leased (or nothing and nothing is scheduled),
--   'x'    some popped ids were dead-lettered: fetch again at once,
--   <eta>  nothing is ready; the earliest scheduled eta (ms).
local now = tonumber(ARGV[1])
local deadline = ARGV[2]
local plan = ARGV[3]
local dead_ttl = tonumber(ARGV[5])
promote(now, tonumber(ARGV[4]))

local avail = {h = redis.call('LLEN', K_QH), n = redis.call('LLEN', K_QN), l = redis.call('LLEN', K_QL)}
local fallback = {h = {'h', 'n', 'l'}, n = {'n', 'h', 'l'}, l = {'l', 'h', 'n'}}
local order, take = {}, {h = 0, n = 0, l = 0}
for i = 1, #plan do
  local chain = fallback[string.sub(plan, i, i)] or fallback.n
  for _, q in ipairs(chain) do
    if avail[q] > 0 then
      avail[q] = avail[q] - 1
      take[q] = take[q] + 1
      order[#order + 1] = q
      break
    end
  end
end

if #order == 0 then
  local first = redis.call('ZRANGE', K_SCHED, 0, 0, 'WITHSCORES')
  return { first[2] or '' }
end

local qkey = {h = K_QH, n = K_QN, l = K_QL}
local popped, next_of = {}, {h = 1, n = 1, l = 1}
for q, n in pairs(take) do
  if n > 0 then popped[q] = redis.call('LPOP', qkey[q], n) else popped[q] = {} end
end
local ids = {}
for i = 1, #order do
  local q = order[i]
  ids[i] = popped[q][next_of[q]]
  next_of[q] = next_of[q] + 1
end

local specs = vget('HMGET', K_JOBS, ids)
-- Most jobs are on their first attempt and have no meta field: a leased job
-- without one is on attempt 1, so nothing is written for it here.
local metas = {}
if redis.call('EXISTS', K_META) == 1 then metas = vget('HMGET', K_META, ids) end
local out = { '' }
local leases, newmeta = {}, {}
local buried = 0
for i = 1, #ids do
  local id, spec = ids[i], specs[i]
  local attempts, _, err = parse_meta(metas[i])
  if not spec or not attempts then
    local reason
    if not spec then
      reason = 'job data missing from Redis (id was queued without a spec)'
      spec = 'n' .. SEP .. '0' .. SEP .. '0' .. SEP .. SEP .. SEP .. 'null'
    else
      reason = 'corrupt attempt counter in ' .. K_META .. ': ' .. tostring(metas[i])
    end
    bury(id, record('d', 0, '', now, reason, '', spec), now, dead_ttl)
    redis.call('HDEL', K_JOBS, id)
    redis.call('HDEL', K_META, id)
    buried = buried + 1
  else
    attempts = attempts + 1
    leases[#leases + 1] = deadline
    leases[#leases + 1] = id
    if metas[i] then
      newmeta[#newmeta + 1] = id
      newmeta[#newmeta + 1] = tostring(attempts) .. SEP .. tostring(now) .. SEP .. err
    end
    out[#out + 1] = id
    out[#out + 1] = attempts
    out[#out + 1] = spec
  end
end
vcall('ZADD', K_LEASE, leases)
vcall('HSET', K_META, newmeta)
if buried > 0 then
  trim_dead(now, dead_ttl)
  out[1] = 'x'
end
return out
