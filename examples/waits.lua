-- Where the time goes: how long work waited in the queue before this
-- thread ran it (post to run), for the whole state and per library.
-- A loop that falls behind shows it here long before anything is lost.
--
--   cargo run --release -- examples/waits.lua
--   lua5.4 examples/waits.lua     (with the module on package.cpath)
local dss = require "darksidesync"
local timer = require "darksidesync.timer"
local process = require "darksidesync.process"

-- Off by default: on, every item costs two clock reads.
dss.timing(true)
print("timing is on")

-- A callback that hogs the Lua thread, as a slow request handler would.
local function busy(seconds)
  local done = timer.now() + seconds
  while timer.now() < done do end
end

-- A child process prints lines; they queue up behind the slow ticks.
local lines = 0
process.spawn({ "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.01; done" }, {
  stdout = function() lines = lines + 1 end,
  exit = function(code) print(("[process] %d lines, exited with status %d"):format(lines, code)) end,
})

-- Each tick takes twice its period: the loop falls behind.
local ticks = 0
timer.every(0.01, function(t)
  ticks = ticks + 1
  busy(0.02)
  if ticks == 10 then
    t:cancel()
    print("[timer] 10 ticks, each 20 ms of work every 10 ms")
  end
end)

dss.run()

local function show(what, w)
  if not w then
    print(what .. " not registered")
    return
  end
  print(("%-22s %3d items waited: p50 %6.2f ms, p99 %6.2f ms, max %6.2f ms, mean %6.2f ms"):format(
    what, w.count, w.p50 * 1e3, w.p99 * 1e3, w.max * 1e3, w.total / w.count * 1e3))
end
show("the state:", dss.waits())
show("darksidesync.timer:", dss.waits("darksidesync.timer"))
show("darksidesync.process:", dss.waits("darksidesync.process"))
dss.timing(false)
print("timing is off: waits() is " .. tostring(dss.waits()))
