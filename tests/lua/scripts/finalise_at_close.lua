-- Run by closing_spec.lua in a fresh interpreter: an object whose
-- finaliser was set BEFORE `require "darksidesync"` is finalised at
-- lua_close after the module's per-state data is gone. Its finaliser
-- calls every function the module exports and a pending reply object,
-- and prints one line per call. (Libraries built on darksidesync-binding,
-- such as the testlib, are separate modules with their own guards.)
local dss, testlib, reply
local calls = {}

local function finaliser()
  for _, c in ipairs(calls) do
    local ok, err = pcall(c.f, c.arg)
    io.stdout:write(c.name, "\t", tostring(ok), "\t", tostring(err), "\n")
  end
  for _, c in ipairs({ { "reply()", reply }, { "tostring(reply)", tostring } }) do
    local ok, err = pcall(c[2], reply)
    io.stdout:write(c[1], "\t", tostring(ok), "\t", tostring(err), "\n")
  end
  io.stdout:write("finaliser done\n")
  io.stdout:flush()
end

if newproxy then -- 5.1, LuaJIT
  KEEP = newproxy(true)
  getmetatable(KEEP).__gc = finaliser
else
  KEEP = setmetatable({}, { __gc = finaliser })
end

dss = require "darksidesync"
testlib = require "darksidesync.testlib"
for prefix, t in pairs({ dss = dss }) do
  for name, f in pairs(t) do
    if type(f) == "function" then
      calls[#calls + 1] = { name = prefix .. "." .. name, f = f, arg = function() end }
    end
  end
end
table.sort(calls, function(a, b) return a.name < b.name end)

-- A blocking call whose reply object Lua still holds, unanswered.
testlib.call(function() end, nil, 1)
local count, callback, args
repeat
  assert(dss.wait(60), "the call did not arrive")
  count, callback, args = dss.poll()
until callback
reply = args[1]
io.stdout:write("functions\t", #calls, "\n")
io.stdout:flush()
