-- A Lua loop fed by background threads: a child process's lines arrive as
-- callbacks on this thread while a timer ticks (the README's first example).
local dss = require "darksidesync"
local process = require "darksidesync.process"
local timer = require "darksidesync.timer"

local ticks = timer.every(0.1, function() print("tick") end)
process.spawn({ "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.15; done" }, {
  stdout = function(line) print("got " .. line) end,
  exit = function(code)
    print("exited with status " .. code)
    ticks:cancel()                -- nothing left to wait for: run() returns
  end,
})
dss.run()                         -- runs each callback here, as it arrives
print("done")
