-- vget.lua: vget(cmd, key, list, from, to) is a variadic read (HMGET,
-- ZMSCORE) of `list[from..to]` in chunks; it returns one flat list (the
-- reply itself when one chunk does: no per-element copy).
--- @include "include/chunk.lua"
local function vget(cmd, key, list, from, to)
  local n, i = to or #list, from or 1
  if n - i < CHUNK then
    if i > n then return {} end
    return redis.call(cmd, key, unpack(list, i, n))
  end
  local out, o = {}, 0
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    local part = redis.call(cmd, key, unpack(list, i, j))
    for k = 1, #part do out[o + k] = part[k] end
    o = o + #part
    i = j + 1
  end
  return out
end
