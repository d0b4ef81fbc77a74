-- purge_dead.lua: deletes up to a batch of dead jobs of one route.
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  the most dead jobs to delete in this call
-- Returns { index entries removed, records deleted }.
local ids = redis.call('ZRANGE', K_DEAD, 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return {0, 0} end
local deleted = 0
for i = 1, #ids do
  deleted = deleted + redis.call('DEL', result_key(ids[i]))
end
vcall('ZREM', K_DEAD, ids)
return {#ids, deleted}
