-- fetch.lua: promotes due jobs, then leases up to #plan jobs of one route.
-- The attempt is counted without a write for first attempts: a leased job
-- with no `meta` field is on attempt 1 (see route.lua, `attempts_of`).
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  now (ms)
-- ARGV[2]  lease deadline (ms)
-- ARGV[3]  the priority plan, one char per slot: 'h', 'n' or 'l'
-- ARGV[4]  the most scheduled jobs to promote
-- ARGV[5]  the dead-letter TTL (ms), for jobs whose data is missing
-- Returns { flag, ids, specs, retried, epoch } where flag is
--   ''     jobs were leased (or nothing and nothing is scheduled),
--   'x'    some popped ids were dead-lettered: fetch again at once,
--   <eta>  nothing is ready; the earliest scheduled eta (ms);
-- ids and specs are the leased jobs, as two lists of the same length, and
-- retried lists pairs (index into ids, attempt) for the jobs past their
-- first attempt: every other job is on attempt 1; epoch is the route's
-- recovery epoch (see recover.lua), which the worker hands back with its
-- acks so ack.lua can skip its lease check. Lists, not one tuple per
-- job, so the hot path returns the popped ids and the HMGET reply as they
-- are, without building a table per job.
local now = tonumber(ARGV[1])
local deadline = ARGV[2]
-- Read (or start) the epoch before anything is leased.
local leased_at = epoch(true)
local plan = ARGV[3]
local dead_ttl = tonumber(ARGV[5])
promote(now, tonumber(ARGV[4]))

-- Which queue each slot takes from (see bananas_core::priority): the
-- preferred one if it has a job left, else the first non-empty one in the
-- fallback order. When only one queue has jobs (the common case: one
-- priority in use) every slot takes from it, in queue order: no per-slot
-- work. Otherwise one pass over the plan with integer compares only.
local ah, an, al = redis.call('LLEN', K_QH), redis.call('LLEN', K_QN), redis.call('LLEN', K_QL)
local slots = #plan
local ids
local nonempty = (ah > 0 and 1 or 0) + (an > 0 and 1 or 0) + (al > 0 and 1 or 0)
if nonempty == 0 then
  local first = redis.call('ZRANGE', K_SCHED, 0, 0, 'WITHSCORES')
  return { first[2] or '' }
elseif nonempty == 1 then
  local key, avail = K_QN, an
  if ah > 0 then key, avail = K_QH, ah elseif al > 0 then key, avail = K_QL, al end
  ids = redis.call('LPOP', key, math.min(slots, avail))
else
  local byte = string.byte
  local H, L = 104, 108 -- 'h', 'l'
  local order, th, tn, tl = {}, 0, 0, 0
  for i = 1, slots do
    local c, q = byte(plan, i), 0
    if c == H then
      if ah > 0 then q = 1 elseif an > 0 then q = 2 elseif al > 0 then q = 3 end
    elseif c == L then
      if al > 0 then q = 3 elseif ah > 0 then q = 1 elseif an > 0 then q = 2 end
    else
      if an > 0 then q = 2 elseif ah > 0 then q = 1 elseif al > 0 then q = 3 end
    end
    if q == 0 then break end
    if q == 1 then ah = ah - 1; th = th + 1
    elseif q == 2 then an = an - 1; tn = tn + 1
    else al = al - 1; tl = tl + 1 end
    order[i] = q
  end
  local popped = {
    th > 0 and redis.call('LPOP', K_QH, th) or {},
    tn > 0 and redis.call('LPOP', K_QN, tn) or {},
    tl > 0 and redis.call('LPOP', K_QL, tl) or {},
  }
  local next_of = {1, 1, 1}
  ids = {}
  for i = 1, #order do
    local q = order[i]
    ids[i] = popped[q][next_of[q]]
    next_of[q] = next_of[q] + 1
  end
end

local specs = vget('HMGET', K_JOBS, ids)
-- Most jobs are on their first attempt and have no meta field: a leased job
-- without one is on attempt 1, so nothing is written for it here.
local metas = {}
if redis.call('EXISTS', K_META) == 1 then metas = vget('HMGET', K_META, ids) end
local leases, nl, newmeta, retried = {}, 0, {}, {}
local buried = {}
for i = 1, #ids do
  local id, spec, meta = ids[i], specs[i], metas[i]
  local attempts, err = 0, ''
  if meta then
    local _
    attempts, _, err = parse_meta(meta)
  end
  if not spec or not attempts then
    local reason
    if not spec then
      reason = 'job data missing from Redis (id was queued without a spec)'
      spec = 'n' .. SEP .. '0' .. SEP .. '0' .. SEP .. SEP .. SEP .. 'null'
    else
      reason = 'corrupt attempt counter in ' .. K_META .. ': ' .. tostring(meta)
    end
    bury(id, record('d', 0, '', now, reason, '', spec), now, dead_ttl)
    redis.call('HDEL', K_JOBS, id)
    redis.call('HDEL', K_META, id)
    buried[i] = true
    buried.n = (buried.n or 0) + 1
  else
    leases[nl + 1] = deadline
    leases[nl + 2] = id
    nl = nl + 2
    if meta then
      attempts = attempts + 1
      newmeta[#newmeta + 1] = id
      newmeta[#newmeta + 1] = tostring(attempts) .. SEP .. tostring(now) .. SEP .. err
      retried[#retried + 1] = i
      retried[#retried + 1] = attempts
    end
  end
end
vcall('ZADD', K_LEASE, leases)
vcall('HSET', K_META, newmeta)
if buried.n then
  -- Rare: leave the buried jobs out of the lists (and renumber `retried`).
  local kept_ids, kept_specs, index, k = {}, {}, {}, 0
  for i = 1, #ids do
    if not buried[i] then
      k = k + 1
      kept_ids[k], kept_specs[k], index[i] = ids[i], specs[i], k
    end
  end
  for r = 1, #retried, 2 do retried[r] = index[retried[r]] end
  trim_dead(now, dead_ttl)
  return { 'x', kept_ids, kept_specs, retried, leased_at }
end
return { '', ids, specs, retried, leased_at }
