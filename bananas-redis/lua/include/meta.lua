-- meta.lua: a job's `meta` field, `attempts SEP started_at SEP last_error`.
-- It is written only when it cannot be derived: a job without one has 0
-- attempts when it is not leased, and is on its first attempt while it is
-- leased. So first attempts cost no meta write at fetch nor delete at ack.
--   parse_meta(meta): attempts (nil when unreadable), started_at, error;
--     0, '', '' for no field.
--   leased_attempts(meta): the same for a job that holds a lease.
--- @include "include/split.lua"
local function parse_meta(meta)
  if not meta then return 0, '', '' end
  local m = split(meta, 3)
  return tonumber(m[1]), m[2] or '', m[3] or ''
end
local function leased_attempts(meta)
  if not meta then return 1, '', '' end
  return parse_meta(meta)
end
