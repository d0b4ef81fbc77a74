-- vcall.lua: vcall(cmd, key, list, prefix, from, to) calls a variadic
-- command `cmd key [prefix] list[from..to]...` in chunks. `from`, `to`
-- default to the whole list (a range lets ack.lua pass ids straight from
-- ARGV).
--- @include "include/chunk.lua"
local function vcall(cmd, key, list, prefix, from, to)
  local n, i = to or #list, from or 1
  while i <= n do
    local j = math.min(i + CHUNK - 1, n)
    if prefix then
      redis.call(cmd, key, prefix, unpack(list, i, j))
    else
      redis.call(cmd, key, unpack(list, i, j))
    end
    i = j + 1
  end
end
