-- Several Lua states in one process, each on its own OS thread with its
-- own queue, each running its own timers and delivering its callbacks
-- directly (no explicit yield anywhere), talking to the main state only
-- through messages (values are copied). See doc/states.md.
--
--   cargo run --release -- examples/states.lua
--   lua5.4 examples/states.lua     (with the module on package.cpath;
--                                   any of lua5.1..5.4 or luajit)
local dss = require "darksidesync"
local states = require "darksidesync.states"

local child_source = [[
  local dss = require "darksidesync"
  local states = require "darksidesync.states"
  local timer = require "darksidesync.timer"
  local name, interval = ...
  local n = 0
  local t = timer.every(interval, function()
    n = n + 1
    states.parent:post("tick", { name = name, count = n, state = states.id })
  end)
  states.parent:onmessage(function(cmd)
    if cmd == "stop" then
      t:cancel()
      states.parent:post("bye", { name = name, count = n })
    end
  end)
  dss.run() -- until the timer is cancelled and the parent let go (h:close())
  return n
]]

local specs = {
  { name = "alice", interval = 0.05 },
  { name = "bob", interval = 0.08 },
  { name = "carol", interval = 0.13 },
}
local alive = #specs

for _, s in ipairs(specs) do
  local child = states.spawn(child_source, s.name, s.interval)
  child:onmessage(function(kind, msg)
    if kind == "tick" then
      print(("[%-5s] tick %d from state %d"):format(msg.name, msg.count, msg.state))
      if msg.count == 3 then child:post("stop") end
    elseif kind == "bye" then
      print(("[%-5s] stopped after %d ticks"):format(msg.name, msg.count))
      child:close() -- it may end now: nothing more will be sent
    end
  end)
  child:onexit(function(ok, ticks)
    assert(ok, ticks)
    alive = alive - 1
    print(("[%-5s] state closed after %d ticks; %d still running"):format(s.name, ticks, alive))
    if alive == 0 then print("all states finished") end
  end)
end
print(("main state %d started %d states"):format(states.id, #specs))
dss.run() -- until every child ended (a running child holds its parent)
