-- ack.lua: settles a batch of attempts on one route.
-- KEYS[1]   {P:R}:jobs
-- KEYS[2]   {P:R}:meta
-- KEYS[3]   {P:R}:sched
-- KEYS[4]   {P:R}:lease
-- KEYS[5]   {P:R}:dead
-- KEYS[6]   {P:R}:wake
-- KEYS[7]   {P:R}:waiters
-- KEYS[8]   {P:R}:progress
-- KEYS[9]   {P:R}:epoch
-- KEYS[10]  {P:R}:revoked
-- KEYS[11]  {P:R}:done: the succeeded jobs whose result is kept, by when
--           they finished; trimmed here to the result TTL
-- KEYS[12]  {P:R}:hist:<hour>: this hour's per-minute counts of processed
--           (settled) and failed (retried or dead) attempts
-- KEYS[13..] per full ack below, in ARGV order: {P:R}:r:<id> for each
--           'result' and 'dead'; with 'l' in ARGV[8], {P:R}:r:<id> and
--           {P:R}:w:<id> for every kind but 'retry'
-- ARGV[1]  now (ms)
-- ARGV[2]  success result TTL (ms)
-- ARGV[3]  failure (dead letter) TTL (ms)
-- ARGV[4]  c, the number of compact acks that follow
-- ARGV[5]  their attempts, comma-separated; '' when all are 1
-- ARGV[6]  their started_at, comma-separated
-- ARGV[7]  the route's recovery epoch at which every attempt in the batch
--          was leased, as fetch.lua returned it ('' when unknown or not
--          shared; see include/epoch.lua)
-- ARGV[8]  flags: 'l' when the waiters' lists are declared; 't' when the
--          epoch may be trusted to skip the lease check (not on a cluster,
--          whose client may repeat a request unseen); 'n' when succeeded
--          jobs are not indexed in {P:R}:done
-- ARGV[9 .. 8+c] the compact acks' ids.
--   Compact acks are attempts that succeeded and keep no result (kind
--   'done' below): everything about the job is deleted. Compact because
--   that is the hot path of `result = false` tasks: one argument per job,
--   no per-job key, and the ids go from ARGV to the commands without a Lua
--   table; attempts and start times are parsed only when needed (a
--   retry's attempt, a waiter).
-- then 6-tuples: kind, id, attempt, started_at, a, b where kind is
--   'result'  succeeded and keeps its result: a = result JSON
--   'done'    succeeded and keeps no result (as a compact ack)
--   'retry'   a = eta (ms), b = the attempt's error
--   'dead'    a = reason
-- started_at is when the attempt started (the worker's clock, ms).
-- An ack counts only if its attempt still holds the lease (the lease did not
-- expire and get recovered meanwhile); others are ignored as stale. The
-- attempt number alone does not tell leases apart once a job runs again
-- from attempt 1 (requeued from the dead letter, or its id reused), so an
-- ack whose lease was taken away by recover.lua is stale too, whoever holds
-- the job now (revoked_since in include/epoch.lua).
-- Waiters are rare, so their lists ({P:R}:w:<id>) are declared only on
-- demand: when a job the batch finishes has waiters and ARGV[8] has no
-- 'l', the script writes nothing and returns { 'need_keys' }; the caller
-- sends the batch again with every ack in full form and every list
-- declared.
-- Returns { 'settled', settled, stale } or { 'need_keys' }.
--- @include "include/sep.lua"
--- @include "include/vcall.lua"
--- @include "include/vget.lua"
--- @include "include/meta.lua"
--- @include "include/record.lua"
--- @include "include/wake.lua"
--- @include "include/notify.lua"
--- @include "include/dead.lua"
--- @include "include/progress.lua"
--- @include "include/epoch.lua"
local K_JOBS, K_META, K_SCHED, K_LEASE, K_DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_WAKE, K_WAITERS, K_PROGRESS, K_EPOCH, K_REVOKED = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_DONE, K_HIST = KEYS[11], KEYS[12]
local now = tonumber(ARGV[1])
local ok_ttl, dead_ttl = ARGV[2], tonumber(ARGV[3])
local compact = tonumber(ARGV[4])
local with_lists = string.find(ARGV[8], 'l', 1, true) ~= nil
local may_trust = string.find(ARGV[8], 't', 1, true) ~= nil
local index_done = string.find(ARGV[8], 'n', 1, true) == nil
local leased_at = ARGV[7]
local full_from = 9 + compact
local W = 6

-- Everything is checked before the first write: Lua does not roll back, so
-- an error half-way (a TTL `SET … PX` refuses) would leave part of the
-- batch settled and the rest to be sent again.
local function bad(what) return redis.error_reply('ERR bananas ack: ' .. what) end
local function ms(v) local n = tonumber(v) return n and n >= 1 and n <= 315360000000 and n % 1 == 0 end
if not ms(ok_ttl) or not ms(dead_ttl) then
  return bad('result and failure TTLs must be whole milliseconds from 1 to 10 years, got '
    .. tostring(ok_ttl) .. ' and ' .. tostring(ARGV[3]))
end
if not compact or compact < 0 or (#ARGV - full_from + 1) % W ~= 0 then
  return bad('malformed batch')
end
for i = full_from, #ARGV, W do
  local kind = ARGV[i]
  if kind ~= 'result' and kind ~= 'done' and kind ~= 'retry' and kind ~= 'dead' then
    return bad('unknown kind of ack ' .. kind)
  end
  if not tonumber(ARGV[i + 2]) or (kind == 'retry' and not tonumber(ARGV[i + 4])) then
    return bad('the ack of ' .. ARGV[i + 1] .. ' has a malformed attempt or eta')
  end
end

-- The ids of the batch are src[off + 1 .. off + nids]: ARGV itself when
-- every ack is compact (the hot path), else a table of all of them.
local src, off, nids = ARGV, 8, compact
if full_from <= #ARGV then
  src, off, nids = {}, 0, 0
  for i = 9, full_from - 1 do
    nids = nids + 1
    src[nids] = ARGV[i]
  end
  for i = full_from, #ARGV, W do
    nids = nids + 1
    src[nids] = ARGV[i + 1]
  end
end
if nids == 0 then return {'settled', 0, 0} end

-- Splits a comma-separated list (ARGV[5], ARGV[6]) into `n` values.
local function list_of(s, n, conv)
  local out, k = {}, 0
  for v in string.gmatch(s, '[^,]+') do
    k = k + 1
    out[k] = conv and conv(v) or v
  end
  for i = k + 1, n do out[i] = '' end
  return out
end
local c_attempts = nil -- nil: every compact ack is on attempt 1
if ARGV[5] ~= '' then c_attempts = list_of(ARGV[5], compact, tonumber) end
local c_started = nil

-- The meta and waiters hashes are usually empty: skip reading them then.
local metas, waiters = {}, {}
local any_meta = redis.call('EXISTS', K_META) == 1
local any_waiters = redis.call('EXISTS', K_WAITERS) == 1
-- The hot path: only compact acks on attempt 1, no meta, no waiters. Then
-- every attempt is 1 on both sides and an ack counts iff its job is leased.
local simple = src == ARGV and not c_attempts and not any_meta and not any_waiters
-- A lease is lost only to recover.lua, which moves the epoch on: if the
-- whole batch was leased at the current epoch, every lease still holds and
-- the check below (ZMSCORE, which formats a double per id) is skipped. The
-- worker sends a repeated batch without an epoch, so a repeat is checked.
local trusted = simple and may_trust and leased_at ~= '' and leased_at == epoch(K_EPOCH, false)
if any_waiters then
  waiters = vget('HMGET', K_WAITERS, src, off + 1, off + nids)
  if not with_lists then
    -- Nothing is written yet: ask for the lists of the jobs this batch
    -- finishes that have waiters.
    for n = 1, nids do
      if waiters[n] and (n <= compact or ARGV[full_from + (n - compact - 1) * W] ~= 'retry') then
        return {'need_keys'}
      end
    end
  end
  c_started = list_of(ARGV[6], compact)
end
local leased
local revoked = {}
if not trusted then
  leased = vget('ZMSCORE', K_LEASE, src, off + 1, off + nids)
  if redis.call('EXISTS', K_REVOKED) == 1 then
    revoked = vget('HMGET', K_REVOKED, src, off + 1, off + nids)
  end
end
-- Whether the n-th ack's lease was taken from its holder (see above).
local function was_revoked(n)
  return revoked[n] and revoked_since(leased_at, revoked[n])
end
if any_meta then metas = vget('HMGET', K_META, src, off + 1, off + nids) end
-- The spec goes into the records of results, dead jobs and waiters.
local need_spec = any_waiters
for i = full_from, #ARGV, W do
  if ARGV[i] ~= 'done' then need_spec = true break end
end
local specs = {}
if need_spec then specs = vget('HMGET', K_JOBS, src, off + 1, off + nids) end

local stale_at, dropmeta, newmeta, sched, done = {}, {}, {}, {}, {}
local settled, stale, died, dead_n = 0, 0, false, 0
if trusted then
  settled = nids
elseif simple then
  for n = 1, nids do
    if not leased[n] or was_revoked(n) then
      stale = stale + 1
      stale_at[n] = true
    end
  end
  settled = nids - stale
end
local kp = 13 -- the keys of the next full ack
for n = 1, simple and 0 or nids do
  local kind, id, attempt, started, a, b, rk, wk
  if n <= compact then
    kind, id, started = 'done', src[off + n], nil
    attempt = c_attempts and c_attempts[n] or 1
    if c_started then started = c_started[n] end
  else
    local i = full_from + (n - compact - 1) * W
    kind, id, attempt, started, a, b = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    if with_lists then
      if kind ~= 'retry' then
        rk, wk = KEYS[kp], KEYS[kp + 1]
        kp = kp + 2
      end
    elseif kind == 'result' or kind == 'dead' then
      rk = KEYS[kp]
      kp = kp + 1
    end
  end
  local meta = metas[n]
  local attempts, lost = 1, 0
  if meta then
    local _
    attempts, _, _, lost = leased_attempts(meta)
  end
  local spec = specs[n]
  if not leased[n] or attempts ~= attempt or was_revoked(n) or (need_spec and not spec) then
    stale = stale + 1
    stale_at[n] = true
  else
    settled = settled + 1
    if kind == 'retry' then
      sched[#sched + 1] = a
      sched[#sched + 1] = id
      newmeta[#newmeta + 1] = id
      newmeta[#newmeta + 1] = meta_of(attempts, started, b, lost)
    else
      if meta then dropmeta[#dropmeta + 1] = id end
      local rec
      if kind == 'dead' then
        rec = record('d', attempts, started, now, a, '', spec)
        bury(rk, K_DEAD, id, rec, now, dead_ttl)
        died = true
        dead_n = dead_n + 1
      elseif kind == 'result' then
        rec = record('s', attempts, started, now, '', a, spec)
        redis.call('SET', rk, rec, 'PX', ok_ttl)
        if index_done then
          done[#done + 1] = now
          done[#done + 1] = id
        end
      elseif waiters[n] then
        rec = record('s', attempts, started, now, '', '', spec)
      end
      -- (Only with the lists declared are there waiters here: see
      -- 'need_keys'.)
      if waiters[n] then notify(K_WAITERS, wk, id, waiters[n], rec) end
    end
  end
end
-- The settled ids: the batch's ids as they are when none was stale.
local unlease, u_from, u_to = src, off + 1, off + nids
if stale > 0 then
  unlease, u_from, u_to = {}, 1, 0
  for n = 1, nids do
    if not stale_at[n] then
      u_to = u_to + 1
      unlease[u_to] = src[off + n]
    end
  end
end
vcall('ZREM', K_LEASE, unlease, nil, u_from, u_to)
drop_progress(K_PROGRESS, unlease, u_from, u_to)
-- Every settled attempt but a retry leaves the live set.
if #sched == 0 then
  vcall('HDEL', K_JOBS, unlease, nil, u_from, u_to)
else
  local drop = {}
  local retried = {}
  for k = 2, #sched, 2 do retried[sched[k]] = true end
  for k = u_from, u_to do
    if not retried[unlease[k]] then drop[#drop + 1] = unlease[k] end
  end
  vcall('HDEL', K_JOBS, drop)
end
vcall('HDEL', K_META, dropmeta)
vcall('HSET', K_META, newmeta)
if #sched > 0 then
  vcall('ZADD', K_SCHED, sched)
  wake(K_WAKE, 1)
end
if died then trim_dead(K_DEAD, now, dead_ttl) end
-- The minute's counts: one or two HINCRBY per batch; the hour's hash gets
-- its expiry (a day and an hour) with each minute's first count.
if settled > 0 then
  local minute = tostring(math.floor(now / 60000) % 60)
  if redis.call('HINCRBY', K_HIST, minute .. 'p', settled) == settled then
    redis.call('EXPIRE', K_HIST, 90000)
  end
  local failed = #sched / 2 + dead_n
  if failed > 0 then redis.call('HINCRBY', K_HIST, minute .. 'f', failed) end
end
if #done > 0 then
  vcall('ZADD', K_DONE, done)
  redis.call('ZREMRANGEBYSCORE', K_DONE, '-inf', '(' .. tostring(now - tonumber(ok_ttl)))
end
return {'settled', settled, stale}
