-- record.lua: record(state, attempts, started, finished, err, result, spec)
-- builds a finished job's record (state 's' succeeded or 'd' dead; the
-- layout is src/codec.rs's, which is its only decoder). One concatenation
-- (a single VM instruction), no intermediate table.
--- @include "include/sep.lua"
local function record(state, attempts, started, finished, err, result, spec)
  return state .. SEP .. attempts .. SEP .. started .. SEP .. finished .. SEP .. err .. SEP .. result .. SEP .. spec
end
