-- purge_dead.lua: deletes dead jobs of one route, given their ids (the
-- caller read them from {P:R}:dead, the oldest first).
-- KEYS[1]       {P:R}:dead
-- KEYS[2..1+n]  {P:R}:r:<id> of each id, in the order of ARGV
-- ARGV[1..n]    job ids
-- An id no longer in the dead letter (requeued meanwhile) is skipped. An
-- entry whose record is not a dead one ('d', include/record.lua) outlived
-- its own record, and the id ran again since: the entry goes, the later
-- run's record stays.
-- Returns the number of records deleted.
local deleted, gone = 0, {}
for i = 1, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    if redis.call('GETRANGE', KEYS[1 + i], 0, 0) == 'd' then
      deleted = deleted + redis.call('DEL', KEYS[1 + i])
    end
    gone[#gone + 1] = ARGV[i]
  end
end
if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
return deleted
