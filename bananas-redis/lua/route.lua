-- route.lua: the shared prelude of every per-route script.
--
-- It is prepended to each route script (see src/scripts.rs): once for the
-- whole Redis 7 function library, or to each script for EVALSHA on older
-- servers. Every route script takes the same KEYS, all in the route's hash
-- tag `{P:R}`:
--   KEYS[1]  {P:R}          the route's base name (never written; keys
--                           are derived from it: {P:R}:r:<id> result,
--                           {P:R}:w:<id> waiter notification list,
--                           {P:R}:epoch recovery epoch)
--   KEYS[2]  {P:R}:jobs     hash   id -> spec (the envelope of a live job)
--   KEYS[3]  {P:R}:meta     hash   id -> attempts SEP started_at SEP last error
--   KEYS[4]  {P:R}:q:h      list   ids queued at high priority
--   KEYS[5]  {P:R}:q:n      list   ids queued at normal priority
--   KEYS[6]  {P:R}:q:l      list   ids queued at low priority
--   KEYS[7]  {P:R}:sched    zset   id -> eta (delayed jobs and retries)
--   KEYS[8]  {P:R}:lease    zset   id -> lease deadline (active jobs)
--   KEYS[9]  {P:R}:dead     zset   id -> time it died (dead letter index)
--   KEYS[10] {P:R}:wake     list   wake-up tokens for idle fetchers
--   KEYS[11] {P:R}:waiters  hash   id -> number of waiters blocked on it
--   KEYS[12] {P:R}:ticks    hash   schedule -> last tick SEP job id
--
-- Encodings (SEP is the byte 0x1f, which valid JSON never contains raw):
--   spec   = prio SEP max_retries SEP created_at SEP eta SEP task SEP args
--   meta   = attempts SEP started_at SEP last_error
--            Written only when it cannot be derived: a job without a meta
--            field has 0 attempts when it is not leased, and is on its
--            first attempt (attempts = 1) while it is leased. So first
--            attempts cost no meta write at fetch nor delete at ack.
--   record = state SEP attempts SEP started_at SEP finished_at SEP error
--            SEP result SEP spec            (state: 's' succeeded, 'd' dead)

local SEP = '\31'
local K_BASE, K_JOBS, K_META
local K_QH, K_QN, K_QL
local K_SCHED, K_LEASE, K_DEAD
local K_WAKE, K_WAITERS, K_TICKS

-- Points the helpers at one route's keys. Every route script calls it first
-- with its KEYS. In the function library (src/scripts.rs) this prelude runs
-- once, when the library is loaded, and each call only sets these upvalues
-- (calls never interleave: Redis runs one script at a time).
local function use_keys(k)
  K_BASE, K_JOBS, K_META = k[1], k[2], k[3]
  K_QH, K_QN, K_QL = k[4], k[5], k[6]
  K_SCHED, K_LEASE, K_DEAD = k[7], k[8], k[9]
  K_WAKE, K_WAITERS, K_TICKS = k[10], k[11], k[12]
end
local CHUNK = 1000
local MAX_TOKENS = 16
local NOTIFY_TTL_MS = 60000

local function result_key(id) return K_BASE .. ':r:' .. id end
-- Running attempts' progress reports (hash id -> JSON); absent while no
-- running job reports any.
local function progress_key() return K_BASE .. ':progress' end

-- The route's recovery epoch. While the server keeps its data, a lease is
-- only lost to recover.lua (acks and releases come from the holder), which
-- moves the epoch on; so an attempt leased at the current epoch still holds
-- its lease. The epoch is `<run id>:<replication id>:<nonce>:<count>`:
-- - the server's run id and replication id, because a restart (from RDB,
--   or AOF `everysec`) or a failover may have rolled the data back to
--   before a fetch while keeping the key: a new process has a new run id,
--   a new master a new replication id;
-- - a nonce chosen (from TIME) whenever the key is created, because the
--   key may be evicted or deleted and must not come back with a value a
--   token already holds;
-- - the count of recoveries, kept in the key `{P:R}:epoch` as
--   `<nonce>:<count>`.
local function epoch_key() return K_BASE .. ':epoch' end
local RUN_ID -- cached per Lua VM, which lives as long as the server process
-- Which server, and which history of its data, this is: the run id (new
-- with every process) and the replication id (new whenever a server
-- becomes a master, so a failover, or a master demoted and promoted again,
-- gives a new one). '' where an ACL forbids INFO: then no epoch is handed
-- out and every ack is checked in full.
local function server_id()
  if not RUN_ID then
    local info = redis.pcall('INFO', 'server')
    RUN_ID = type(info) == 'string' and string.match(info, 'run_id:(%x+)') or ''
  end
  if RUN_ID == '' then return '' end
  local repl = redis.pcall('INFO', 'replication')
  local replid = type(repl) == 'string' and string.match(repl, 'master_replid:(%x+)')
  if not replid then return '' end
  return RUN_ID .. ':' .. replid
end
-- The current epoch, or '' (no epoch: acks are checked in full). `create`:
-- make the key when it is missing (fetch); otherwise a missing key gives ''
-- (ack), which no token matches.
local function epoch(create)
  local server = server_id()
  if server == '' then return '' end
  local v = redis.call('GET', epoch_key())
  if not v then
    if not create then return '' end
    local t = redis.pcall('TIME')
    if type(t) ~= 'table' or not t[2] then return '' end
    v = t[1] .. string.format('%06d', tonumber(t[2])) .. ':0'
    redis.call('SET', epoch_key(), v)
  end
  return server .. ':' .. v
end
-- Moves the epoch on (recover.lua). A missing key needs nothing: no token
-- matches it, and the next fetch makes it with a new nonce.
local function bump_epoch()
  local v = redis.call('GET', epoch_key())
  if not v then return end
  local nonce, count = string.match(v, '^(%d+):(%d+)$')
  if nonce then
    redis.call('SET', epoch_key(), nonce .. ':' .. tostring(tonumber(count) + 1))
  else
    redis.call('DEL', epoch_key())
  end
end
local function notify_key(id) return K_BASE .. ':w:' .. id end

-- Splits `s` on SEP into at most `n` parts (the last part keeps the rest).
local function split(s, n)
  local out, start = {}, 1
  for _ = 1, n - 1 do
    local j = string.find(s, SEP, start, true)
    if not j then break end
    out[#out + 1] = string.sub(s, start, j - 1)
    start = j + 1
  end
  out[#out + 1] = string.sub(s, start)
  return out
end

local function queue_of(spec)
  local p = string.sub(spec, 1, 1)
  if p == 'h' then return K_QH elseif p == 'l' then return K_QL else return K_QN end
end

-- Calls a variadic command `cmd key [prefix] list[from..to]...` in chunks,
-- so long batches never exceed Lua's stack. `from`, `to` default to the
-- whole list (a range lets ack.lua pass ids straight from ARGV).
local function vcall(cmd, key, list, prefix, from, to)
  local n, i = to or #list, from or 1
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    if prefix then
      redis.call(cmd, key, prefix, unpack(list, i, j))
    else
      redis.call(cmd, key, unpack(list, i, j))
    end
    i = j + 1
  end
end

-- Drops the progress of `list[from..to]`, whose attempts ended: one EXISTS
-- when nothing reports progress.
local function drop_progress(list, from, to)
  if redis.call('EXISTS', progress_key()) == 1 then
    vcall('HDEL', progress_key(), list, nil, from, to)
  end
end

-- Variadic read (HMGET, ZMSCORE) of `list[from..to]` in chunks; returns one
-- flat list (the reply itself when one chunk does: no per-element copy).
local function vget(cmd, key, list, from, to)
  local n, i = to or #list, from or 1
  if n - i < CHUNK then
    if i > n then return {} end
    return redis.call(cmd, key, unpack(list, i, n))
  end
  local out, o = {}, 0
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    local part = redis.call(cmd, key, unpack(list, i, j))
    for k = 1, #part do out[o + k] = part[k] end
    o = o + #part
    i = j + 1
  end
  return out
end

-- Tops the wake-up tokens for idle fetchers up by `n`, to at most
-- MAX_TOKENS. While workers are busy the list is full and this is one LLEN.
local function wake(n)
  if n <= 0 then return end
  local room = MAX_TOKENS - redis.call('LLEN', K_WAKE)
  if room <= 0 then return end
  local t = {}
  for i = 1, math.min(n, room) do t[i] = '1' end
  redis.call('LPUSH', K_WAKE, unpack(t))
end

local function parse_meta(meta)
  if not meta then return 0, '', '' end
  local m = split(meta, 3)
  return tonumber(m[1]), m[2] or '', m[3] or ''
end

-- The attempts of a job that holds a lease, given its meta field (or nil).
local function leased_attempts(meta)
  if not meta then return 1, '', '' end
  return parse_meta(meta)
end

-- One concatenation (a single VM instruction), no intermediate table.
local function record(state, attempts, started, finished, err, result, spec)
  return state .. SEP .. attempts .. SEP .. started .. SEP .. finished .. SEP .. err .. SEP .. result .. SEP .. spec
end

-- Hands a final record to everyone waiting on `id` (count from the waiters
-- hash), and clears the waiter mark.
local function notify(id, count, rec)
  local n = tonumber(count) or 0
  if n <= 0 then return end
  local key = notify_key(id)
  for _ = 1, n do redis.call('LPUSH', key, rec) end
  redis.call('PEXPIRE', key, NOTIFY_TTL_MS)
  redis.call('HDEL', K_WAITERS, id)
end

-- Stores a dead record for `id` and indexes it in the dead letter.
local function bury(id, rec, now, ttl_ms)
  redis.call('SET', result_key(id), rec, 'PX', ttl_ms)
  redis.call('ZADD', K_DEAD, now, id)
end

-- Drops dead-letter index entries whose record has expired.
local function trim_dead(now, ttl_ms)
  redis.call('ZREMRANGEBYSCORE', K_DEAD, '-inf', '(' .. tostring(now - ttl_ms))
end

-- Adds jobs given as triples (id, due, spec) in `args` from index `from`.
-- Skips ids the route already holds (live, or finished with a result), and
-- repeats of an id within the batch. A constant number of Redis calls per
-- batch (chunked): one HMGET for live ids, one multi-key EXISTS for results
-- (checked key by key only when some result exists), one HSET, one RPUSH
-- per priority and one ZADD.
local function add_jobs(now, args, from)
  if #args == from + 2 then
    -- One job (a plain submit): the same checks in fewer calls. HSETNX
    -- is the live-id check and the write in one.
    local id, due, spec = args[from], args[from + 1], args[from + 2]
    if redis.call('EXISTS', result_key(id)) == 1 then return 0 end
    if redis.call('HSETNX', K_JOBS, id, spec) == 0 then return 0 end
    if tonumber(due) > now then
      redis.call('ZADD', K_SCHED, due, id)
    else
      redis.call('RPUSH', queue_of(spec), id)
    end
    wake(1)
    return 1
  end
  local ids, rkeys = {}, {}
  for i = from, #args, 3 do
    ids[#ids + 1] = args[i]
    rkeys[#rkeys + 1] = result_key(args[i])
  end
  if #ids == 0 then return 0 end
  local live = vget('HMGET', K_JOBS, ids)
  local finished = {}
  local any, i = 0, 1
  while i <= #rkeys do
    local j = math.min(i + CHUNK - 1, #rkeys)
    any = any + redis.call('EXISTS', unpack(rkeys, i, j))
    i = j + 1
  end
  if any > 0 then
    for n = 1, #rkeys do finished[n] = redis.call('EXISTS', rkeys[n]) == 1 end
  end
  local qs = {h = {}, n = {}, l = {}}
  local sched, fields, seen = {}, {}, {}
  local added, ready = 0, 0
  for n = 1, #ids do
    local k = from + (n - 1) * 3
    local id, due, spec = ids[n], tonumber(args[k + 1]), args[k + 2]
    if not live[n] and not finished[n] and not seen[id] then
      seen[id] = true
      added = added + 1
      fields[#fields + 1] = id
      fields[#fields + 1] = spec
      if due > now then
        sched[#sched + 1] = args[k + 1]
        sched[#sched + 1] = id
      else
        local q = qs[string.sub(spec, 1, 1)] or qs.n
        q[#q + 1] = id
        ready = ready + 1
      end
    end
  end
  vcall('HSET', K_JOBS, fields)
  vcall('RPUSH', K_QH, qs.h)
  vcall('RPUSH', K_QN, qs.n)
  vcall('RPUSH', K_QL, qs.l)
  vcall('ZADD', K_SCHED, sched)
  -- A new eta may be earlier than what idle fetchers wait for: wake one.
  if #sched > 0 then ready = ready + 1 end
  wake(ready)
  return added
end

-- Moves up to `limit` scheduled jobs whose eta has passed to the back of
-- their queue. Returns how many moved.
local function promote(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', K_SCHED, '-inf', now, 'LIMIT', 0, limit)
  if #ids == 0 then return 0 end
  local specs = vget('HMGET', K_JOBS, ids)
  local qs = {h = {}, n = {}, l = {}}
  for i = 1, #ids do
    local spec = specs[i]
    if spec then
      local q = qs[string.sub(spec, 1, 1)] or qs.n
      q[#q + 1] = ids[i]
    end
    -- A scheduled id without a spec has nothing left to run: drop it.
  end
  vcall('RPUSH', K_QH, qs.h)
  vcall('RPUSH', K_QN, qs.n)
  vcall('RPUSH', K_QL, qs.l)
  vcall('ZREM', K_SCHED, ids)
  return #ids
end

-- Script body follows.
