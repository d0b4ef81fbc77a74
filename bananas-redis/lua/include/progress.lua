-- progress.lua: drop_progress(key, list, from, to) drops the progress
-- reports (hash `key`, {P:R}:progress) of `list[from..to]`, whose attempts
-- ended: one EXISTS when nothing reports progress.
--- @include "include/vcall.lua"
local function drop_progress(key, list, from, to)
  if redis.call('EXISTS', key) == 1 then
    vcall('HDEL', key, list, nil, from, to)
  end
end
