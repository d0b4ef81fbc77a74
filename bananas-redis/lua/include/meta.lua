-- meta.lua: a job's `meta` field, `attempts SEP started_at SEP last_error`
-- and, once a worker holding the job was lost, `SEP lost` (how often: it
-- does not spend retries, see bananas_core::rules::lost_too_often).
-- It is written only when it cannot be derived: a job without one has 0
-- attempts when it is not leased, and is on its first attempt while it is
-- leased. So first attempts cost no meta write at fetch nor delete at ack.
--   parse_meta(meta): attempts (nil when unreadable), started_at, error,
--     lost; 0, '', '', 0 for no field.
--   leased_attempts(meta): the same for a job that holds a lease.
--   meta_of(attempts, started_at, error, lost): the field.
--- @include "include/split.lua"
local function parse_meta(meta)
  if not meta then return 0, '', '', 0 end
  local m = split(meta, 4)
  return tonumber(m[1]), m[2] or '', m[3] or '', tonumber(m[4]) or 0
end
local function leased_attempts(meta)
  if not meta then return 1, '', '', 0 end
  return parse_meta(meta)
end
local function meta_of(attempts, started, err, lost)
  local m = tostring(attempts) .. SEP .. started .. SEP .. err
  if lost > 0 then m = m .. SEP .. tostring(lost) end
  return m
end
