-- epoch.lua: the route's recovery epoch, kept in {P:R}:epoch.
--
-- While the server keeps its data, a lease is only lost to recover.lua
-- (acks and releases come from the holder), which moves the epoch on; so
-- an attempt leased at the current epoch still holds its lease. The epoch
-- is `<run id>:<replication id>:<nonce>:<count>`:
-- - the server's run id and replication id, because a restart (from RDB,
--   or AOF `everysec`) or a failover may have rolled the data back to
--   before a fetch while keeping the key: a new process has a new run id,
--   a new master a new replication id;
-- - a nonce chosen (from TIME) whenever the key is created, because the
--   key may be evicted or deleted and must not come back with a value a
--   token already holds;
-- - the count of recoveries, kept in the key as `<nonce>:<count>`.
--
--   epoch(key, create): the current epoch, or '' (no epoch: acks are
--     checked in full). `create`: make the key when it is missing (fetch);
--     otherwise a missing key gives '' (ack), which no token matches.
--   bump_epoch(key): moves the epoch on (recover.lua). A missing key needs
--     nothing: no token matches it, and the next fetch makes it with a new
--     nonce.
--   revoked_since(epoch, tomb): whether a lease taken at `epoch` was taken
--     away from its holder: `tomb` is the epoch recover.lua moved on to
--     when it last took a lease of the job away (its entry in
--     {P:R}:revoked). A lease taken before that is gone, even if the job
--     holds a lease again now (run again after a requeue, or its id
--     reused) with the same attempt number. An unknown epoch ('') counts
--     as revoked; an epoch of another server history (a restart, a
--     failover) cannot be ordered, and counts as not revoked: the lease
--     check decides.
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
local function epoch(key, create)
  local server = server_id()
  if server == '' then return '' end
  local v = redis.call('GET', key)
  if not v then
    if not create then return '' end
    local t = redis.pcall('TIME')
    if type(t) ~= 'table' or not t[2] then return '' end
    v = t[1] .. string.format('%06d', tonumber(t[2])) .. ':0'
    redis.call('SET', key, v)
  end
  return server .. ':' .. v
end
local function bump_epoch(key)
  local v = redis.call('GET', key)
  if not v then return end
  local nonce, count = string.match(v, '^(%d+):(%d+)$')
  if nonce then
    redis.call('SET', key, nonce .. ':' .. tostring(tonumber(count) + 1))
  else
    redis.call('DEL', key)
  end
end
local function revoked_since(e, tomb)
  if e == '' then return true end
  local ep, ec = string.match(e, '^(.*):(%d+)$')
  local tp, tc = string.match(tomb, '^(.*):(%d+)$')
  if not ep or not tp or ep ~= tp then return false end
  return tonumber(ec) < tonumber(tc)
end
