-- add_jobs.lua: add_jobs(k, now, args, from, rkeys, rfrom) adds jobs given
-- as triples (id, due, spec) in `args` from index `from`. `k` names the
-- route's keys: k.jobs, k.qh, k.qn, k.ql, k.sched, k.wake. The result key
-- ({P:R}:r:<id>) of the n-th job is rkeys[rfrom + n - 1] (declared KEYS).
-- Skips ids the route already holds (live, or finished with a result), and
-- repeats of an id within the batch. A constant number of Redis calls per
-- batch (chunked): one HMGET for live ids, one multi-key EXISTS for results
-- (checked key by key only when some result exists), one HSET, one RPUSH
-- per priority and one ZADD. Returns how many jobs were new.
--- @include "include/chunk.lua"
--- @include "include/vcall.lua"
--- @include "include/vget.lua"
--- @include "include/spec.lua"
--- @include "include/wake.lua"
local function add_jobs(k, now, args, from, rkeys, rfrom)
  if #args == from + 2 then
    -- One job (a plain submit): the same checks in fewer calls. HSETNX
    -- is the live-id check and the write in one.
    local id, due, spec = args[from], args[from + 1], args[from + 2]
    if redis.call('EXISTS', rkeys[rfrom]) == 1 then return 0 end
    if redis.call('HSETNX', k.jobs, id, spec) == 0 then return 0 end
    if tonumber(due) > now then
      redis.call('ZADD', k.sched, due, id)
    else
      redis.call('RPUSH', queue_of(spec, k.qh, k.qn, k.ql), id)
    end
    wake(k.wake, 1)
    return 1
  end
  local ids = {}
  for i = from, #args, 3 do ids[#ids + 1] = args[i] end
  if #ids == 0 then return 0 end
  local live = vget('HMGET', k.jobs, ids)
  local last = rfrom + #ids - 1
  local finished = {}
  local any, i = 0, rfrom
  while i <= last do
    local j = math.min(i + CHUNK - 1, last)
    any = any + redis.call('EXISTS', unpack(rkeys, i, j))
    i = j + 1
  end
  if any > 0 then
    for n = 1, #ids do finished[n] = redis.call('EXISTS', rkeys[rfrom + n - 1]) == 1 end
  end
  local qs = {h = {}, n = {}, l = {}}
  local sched, fields, seen = {}, {}, {}
  local added, ready = 0, 0
  for n = 1, #ids do
    local a = from + (n - 1) * 3
    local id, due, spec = ids[n], tonumber(args[a + 1]), args[a + 2]
    if not live[n] and not finished[n] and not seen[id] then
      seen[id] = true
      added = added + 1
      fields[#fields + 1] = id
      fields[#fields + 1] = spec
      if due > now then
        sched[#sched + 1] = args[a + 1]
        sched[#sched + 1] = id
      else
        local q = qs[string.sub(spec, 1, 1)] or qs.n
        q[#q + 1] = id
        ready = ready + 1
      end
    end
  end
  vcall('HSET', k.jobs, fields)
  vcall('RPUSH', k.qh, qs.h)
  vcall('RPUSH', k.qn, qs.n)
  vcall('RPUSH', k.ql, qs.l)
  vcall('ZADD', k.sched, sched)
  -- A new eta may be earlier than what idle fetchers wait for: wake one.
  if #sched > 0 then ready = ready + 1 end
  wake(k.wake, ready)
  return added
end
