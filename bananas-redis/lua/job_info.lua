-- job_info.lua: what one route knows about a job (read only).
-- KEYS: the route keys (see route.lua).
-- ARGV[1]  job id
-- Returns {}                                  unknown on this route,
--         { 'f', record }                     finished (succeeded or dead),
--         { 'l', state, spec, meta, eta, progress }
--                                             live: state is queued,
--                                             scheduled, retrying or active;
--                                             progress is '' unless active.
local id = ARGV[1]
local rec = redis.call('GET', result_key(id))
if rec then return {'f', rec} end
local spec = redis.call('HGET', K_JOBS, id)
if not spec then return {} end
local meta = redis.call('HGET', K_META, id) or ''
local _, _, err = parse_meta(meta ~= '' and meta or nil)
local state, eta, progress = 'queued', '', ''
if redis.call('ZSCORE', K_LEASE, id) then
  state = 'active'
  -- A leased job without meta is on its first attempt (see route.lua).
  if meta == '' then meta = '1' end
  -- The report, if the running attempt made it (`attempt␟json`).
  local p = redis.call('HGET', progress_key(), id)
  if p then
    local at = string.find(p, SEP, 1, true)
    if at and tonumber(string.sub(p, 1, at - 1)) == parse_meta(meta) then
      progress = string.sub(p, at + 1)
    end
  end
else
  local at = redis.call('ZSCORE', K_SCHED, id)
  if at then
    eta = at
    if err ~= '' then state = 'retrying' else state = 'scheduled' end
  end
end
return {'l', state, spec, meta, eta, progress}
