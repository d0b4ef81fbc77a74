-- notify.lua: notify(waiters, key, id, count, rec) hands a final record to
-- everyone waiting on `id`: pushes it `count` times (the field of the
-- waiters hash `waiters`) to the job's notification list `key`
-- ({P:R}:w:<id>), and clears the waiter mark.
local NOTIFY_TTL_MS = 60000
local function notify(waiters, key, id, count, rec)
  local n = tonumber(count) or 0
  if n <= 0 then return end
  for _ = 1, n do redis.call('LPUSH', key, rec) end
  redis.call('PEXPIRE', key, NOTIFY_TTL_MS)
  redis.call('HDEL', waiters, id)
end
