-- Run by closing_spec.lua in a fresh interpreter: `require
-- "darksidesync"` in a state whose globals lack the base library (as a C
-- host that opens only the package library) must raise a string error.
local pcall, require, type, tostring, write = pcall, require, type, tostring, io.write
local base = {
  "assert", "collectgarbage", "dofile", "error", "getmetatable", "ipairs", "load",
  "loadfile", "loadstring", "newproxy", "next", "pairs", "pcall", "print", "rawequal",
  "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type",
  "unpack", "xpcall", "getfenv", "setfenv", "gcinfo",
}
for _, name in ipairs(base) do _G[name] = nil end
local ok, err = pcall(require, "darksidesync")
write(tostring(ok), "\t", type(err), "\t", type(err) == "string" and err or "", "\n")
