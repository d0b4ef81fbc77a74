-- promote.lua: promote(k, now, limit) moves up to `limit` scheduled jobs
-- whose eta has passed to the back of their queue; `k` names the route's
-- keys k.jobs, k.qh, k.qn, k.ql, k.sched. Returns how many moved.
--- @include "include/vcall.lua"
--- @include "include/vget.lua"
local function promote(k, now, limit)
  local ids = redis.call('ZRANGEBYSCORE', k.sched, '-inf', now, 'LIMIT', 0, limit)
  if #ids == 0 then return 0 end
  local specs = vget('HMGET', k.jobs, ids)
  local qs = {h = {}, n = {}, l = {}}
  for i = 1, #ids do
    local spec = specs[i]
    if spec then
      local q = qs[string.sub(spec, 1, 1)] or qs.n
      q[#q + 1] = ids[i]
    end
    -- A scheduled id without a spec has nothing left to run: drop it.
  end
  vcall('RPUSH', k.qh, qs.h)
  vcall('RPUSH', k.qn, qs.n)
  vcall('RPUSH', k.ql, qs.l)
  vcall('ZREM', k.sched, ids)
  return #ids
end
