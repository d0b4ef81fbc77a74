-- dead_list.lua: the newest dead jobs of one route (read only).
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  the most jobs to return
-- Returns { died_at1, record1, died_at2, record2, ... }, newest first;
-- index entries whose record expired are skipped.
local ids = redis.call('ZREVRANGE', K_DEAD, 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local rec = redis.call('GET', result_key(ids[i]))
  if rec then
    out[#out + 1] = ids[i + 1]
    out[#out + 1] = ids[i] .. SEP .. rec
  end
end
return out
