-- job_info.lua: what one route holds about a job (read only). The caller
-- (src/codec.rs) makes the job's state from it.
-- KEYS[1]  {P:R}:jobs
-- KEYS[2]  {P:R}:meta
-- KEYS[3]  {P:R}:sched
-- KEYS[4]  {P:R}:lease
-- KEYS[5]  {P:R}:progress
-- KEYS[6]  {P:R}:r:<id>
-- KEYS[7]  {P:R}:x:<id> (tags and metadata, when it has some)
-- ARGV[1]  job id
-- Returns { 'unknown' }              not on this route,
--         { 'finished', record, extra }    finished (succeeded or dead),
--         { 'live', spec, meta, leased, eta, progress, extra }
--                                   live: meta is '' without a field;
--                                   leased is 1 or 0; eta is the score in
--                                   the schedule or ''; progress is the
--                                   report field (`attempt SEP json`), ''
--                                   unless leased; extra is the tags and
--                                   metadata JSON, '' without.
local id = ARGV[1]
local rec = redis.call('GET', KEYS[6])
local extra = redis.call('GET', KEYS[7]) or ''
if rec then return {'finished', rec, extra} end
local spec = redis.call('HGET', KEYS[1], id)
if not spec then return {'unknown'} end
local meta = redis.call('HGET', KEYS[2], id) or ''
if redis.call('ZSCORE', KEYS[4], id) then
  return {'live', spec, meta, 1, '', redis.call('HGET', KEYS[5], id) or '', extra}
end
return {'live', spec, meta, 0, redis.call('ZSCORE', KEYS[3], id) or '', '', extra}
