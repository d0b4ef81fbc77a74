-- seek.lua: a page of a time-ordered index (a zset of id -> ms), newest
-- first, strictly after the entry (t, id), read only. Order: score
-- descending, then id descending (ZRANGE … REV's order), so the cursor
-- (t, id) names one place whether or not its entry still exists, and any
-- number of entries may share one time: the place is found by binary
-- search among the entries at time t, O(log² N), never by reading them.
-- KEYS[1]  the index ({P:R}:sched, :lease, :dead or :done)
-- ARGV[1]  t ('' for the first page)
-- ARGV[2]  id
-- ARGV[3]  n, the most entries to return
-- Returns { id, score, id, score, ... }.
local key, t, id, n = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
-- Byte order, as Redis orders members (Lua's `<` follows the locale).
local function before(a, b)
  local la, lb = #a, #b
  for i = 1, math.min(la, lb) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return la < lb
end
local start = 0
if t ~= '' then
  local lo = redis.call('ZCOUNT', key, '(' .. t, '+inf')
  local hi = lo + redis.call('ZCOUNT', key, t, t)
  -- The first rank in [lo, hi) whose id comes before `id` in byte order.
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZRANGE', key, mid, mid, 'REV')[1]
    if m and before(m, id) then hi = mid else lo = mid + 1 end
  end
  start = lo
end
return redis.call('ZRANGE', key, start, start + n - 1, 'REV', 'WITHSCORES')
