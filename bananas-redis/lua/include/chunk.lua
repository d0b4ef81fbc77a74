-- chunk.lua: the most arguments one variadic command gets from a script,
-- so long batches never exceed Lua's stack.
local CHUNK = 1000
