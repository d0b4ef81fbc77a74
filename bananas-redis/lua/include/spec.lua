-- spec.lua: the two fields of a job's spec that scripts read (the layout
-- is src/codec.rs's `encode_spec`: prio SEP max_retries SEP ...).
--   queue_of(spec, qh, qn, ql): the queue key for the spec's priority
--     (its first byte: 'h', 'n' or 'l'; anything else is normal).
--   max_retries_of(spec): its retry cap (0 when unreadable).
--- @include "include/split.lua"
local function queue_of(spec, qh, qn, ql)
  local p = string.sub(spec, 1, 1)
  if p == 'h' then return qh elseif p == 'l' then return ql else return qn end
end
local function max_retries_of(spec)
  return tonumber(split(spec, 3)[2]) or 0
end
