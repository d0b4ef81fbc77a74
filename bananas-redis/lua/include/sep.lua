-- sep.lua: the field separator of the stored encodings (the byte 0x1f,
-- which valid JSON never contains raw). The encodings themselves are
-- described once, in src/codec.rs.
local SEP = '\31'
