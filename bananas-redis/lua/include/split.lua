-- split.lua: split(s, n) splits `s` on SEP into at most `n` parts (the
-- last part keeps the rest).
--- @include "include/sep.lua"
local function split(s, n)
  local out, start = {}, 1
  for _ = 1, n - 1 do
    local j = string.find(s, SEP, start, true)
    if not j then break end
    out[#out + 1] = string.sub(s, start, j - 1)
    start = j + 1
  end
  out[#out + 1] = string.sub(s, start)
  return out
end
