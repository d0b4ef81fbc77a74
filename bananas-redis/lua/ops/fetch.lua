-- fetch.lua: promotes due jobs, then leases up to #plan jobs of one route.
-- The attempt is counted without a write for first attempts: a leased job
-- with no `meta` field is on attempt 1 (see include/meta.lua).
-- KEYS[1]  {P:R}:jobs
-- KEYS[2]  {P:R}:meta
-- KEYS[3]  {P:R}:q:h
-- KEYS[4]  {P:R}:q:n
-- KEYS[5]  {P:R}:q:l
-- KEYS[6]  {P:R}:sched
-- KEYS[7]  {P:R}:lease
-- KEYS[8]  {P:R}:epoch
-- KEYS[9]  {P:R}:paused
-- ARGV[1]  now (ms)
-- ARGV[2]  lease deadline (ms)
-- ARGV[3]  the priority plan, one char per slot: 'h', 'n' or 'l'
-- ARGV[4]  the most scheduled jobs to promote
-- ARGV[5]  the most bytes of job specs in one reply: the jobs past it
--          (never the first) go back to the front of their queues
-- Returns { 'idle', eta } when nothing is ready: eta is the earliest
-- scheduled eta (ms), or '' when nothing is scheduled or the route is
-- paused (due jobs are still promoted: they wait queued); else
--   { 'leased', ids, specs, retried, epoch, broken }:
-- ids and specs are the leased jobs, as two lists of the same length;
-- retried lists triples (index into ids, attempt, times lost) for the jobs
-- past their first attempt: every other job is on attempt 1, never lost; epoch is the route's
-- recovery epoch (include/epoch.lua), which the worker hands back with its
-- acks so ack.lua can skip its lease check; broken lists pairs (id,
-- reason) of popped jobs that cannot run (no spec, or an unreadable
-- attempt counter): they are leased too, and the caller dead-letters them
-- with bury.lua (their result keys could not be declared here, as the ids
-- were not known before the pop). Lists, not one tuple per job, so the hot
-- path returns the popped ids and the HMGET reply as they are, without
-- building a table per job.
--- @include "include/sep.lua"
--- @include "include/vcall.lua"
--- @include "include/vget.lua"
--- @include "include/meta.lua"
--- @include "include/epoch.lua"
--- @include "include/promote.lua"
local K_JOBS, K_META, K_QH, K_QN, K_QL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_SCHED, K_LEASE, K_EPOCH = KEYS[6], KEYS[7], KEYS[8]
local now = tonumber(ARGV[1])
local deadline = ARGV[2]
-- Read (or start) the epoch before anything is leased.
local leased_at = epoch(K_EPOCH, true)
local plan = ARGV[3]
promote({jobs = K_JOBS, qh = K_QH, qn = K_QN, ql = K_QL, sched = K_SCHED}, now, tonumber(ARGV[4]))
if redis.call('EXISTS', KEYS[9]) == 1 then return { 'idle', '' } end

-- Which queue each slot takes from (see bananas_core::priority): the
-- preferred one if it has a job left, else the first non-empty one in the
-- fallback order. When only one queue has jobs (the common case: one
-- priority in use) every slot takes from it, in queue order: no per-slot
-- work. Otherwise one pass over the plan with integer compares only.
local ah, an, al = redis.call('LLEN', K_QH), redis.call('LLEN', K_QN), redis.call('LLEN', K_QL)
local slots = #plan
local ids
-- The queue each popped job came from: one key, or by index (`order`).
local from_key, order
local nonempty = (ah > 0 and 1 or 0) + (an > 0 and 1 or 0) + (al > 0 and 1 or 0)
if nonempty == 0 then
  local first = redis.call('ZRANGE', K_SCHED, 0, 0, 'WITHSCORES')
  return { 'idle', first[2] or '' }
elseif nonempty == 1 then
  local key, avail = K_QN, an
  if ah > 0 then key, avail = K_QH, ah elseif al > 0 then key, avail = K_QL, al end
  ids = redis.call('LPOP', key, math.min(slots, avail))
  from_key = key
else
  local byte = string.byte
  local H, L = 104, 108 -- 'h', 'l'
  local th, tn, tl = 0, 0, 0
  order = {}
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
-- A bounded reply: jobs past the byte budget go back, in their order, to
-- the front of the queues they came from.
local budget = tonumber(ARGV[5])
if #ids > 1 then
  local bytes, n = 0, #ids
  for i = 1, n do
    local spec = specs[i]
    if spec then bytes = bytes + #spec end
    if bytes > budget and i > 1 then
      local keys = {K_QH, K_QN, K_QL}
      for j = n, i, -1 do
        redis.call('LPUSH', from_key or keys[order[j]], ids[j])
        ids[j], specs[j] = nil, nil
      end
      break
    end
  end
end
-- Most jobs are on their first attempt and have no meta field: a leased job
-- without one is on attempt 1, so nothing is written for it here.
local metas = {}
if redis.call('EXISTS', K_META) == 1 then metas = vget('HMGET', K_META, ids) end
local leases, nl, newmeta, retried = {}, 0, {}, {}
local broken = nil
for i = 1, #ids do
  local id, spec, meta = ids[i], specs[i], metas[i]
  local attempts, err, lost = 0, '', 0
  if meta then
    local _
    attempts, _, err, lost = parse_meta(meta)
  end
  leases[nl + 1] = deadline
  leases[nl + 2] = id
  nl = nl + 2
  if not spec or not attempts then
    broken = broken or {}
    if not spec then
      broken[i] = 'job data missing from Redis (id was queued without a spec)'
    else
      broken[i] = 'corrupt attempt counter in ' .. K_META .. ': ' .. tostring(meta)
    end
  elseif meta then
    attempts = attempts + 1
    newmeta[#newmeta + 1] = id
    newmeta[#newmeta + 1] = meta_of(attempts, tostring(now), err, lost)
    retried[#retried + 1] = i
    retried[#retried + 1] = attempts
    retried[#retried + 1] = lost
  end
end
vcall('ZADD', K_LEASE, leases)
vcall('HSET', K_META, newmeta)
if broken then
  -- Rare: leave the broken jobs out of the lists (and renumber `retried`).
  local kept_ids, kept_specs, index, k, bad = {}, {}, {}, 0, {}
  for i = 1, #ids do
    if broken[i] then
      bad[#bad + 1] = ids[i]
      bad[#bad + 1] = broken[i]
    else
      k = k + 1
      kept_ids[k], kept_specs[k], index[i] = ids[i], specs[i], k
    end
  end
  for r = 1, #retried, 3 do retried[r] = index[retried[r]] end
  return { 'leased', kept_ids, kept_specs, retried, leased_at, bad }
end
return { 'leased', ids, specs, retried, leased_at, {} }
