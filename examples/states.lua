-- Several Lua states in one process, each on its own OS thread with its
-- own queue, each running its own timers and delivering its callbacks
-- directly (no explicit yield anywhere), talking to the main state only
-- through messages (values are copied).
--
--   cargo run --release -- examples/states.lua
local host = require "darksidesync.host"

local child_source = [[
  local host = require "darksidesync.host"
  local timer = require "darksidesync.timer"
  local name, interval = ...
  local n = 0
  local t = timer.every(interval, function()
    n = n + 1
    host.parent:send("tick", { name = name, count = n, state = host.id })
  end)
  host.onmessage(function(cmd)
    if cmd == "stop" then
      t:cancel()
      host.parent:send("bye", { name = name, count = n })
    end
  end)
]]

local states = {
  { name = "alice", interval = 0.05 },
  { name = "bob", interval = 0.08 },
  { name = "carol", interval = 0.13 },
}
local alive = #states

for _, s in ipairs(states) do
  local child = host.spawn({ source = child_source, name = s.name }, s.name, s.interval)
  child:onmessage(function(kind, msg)
    if kind == "tick" then
      print(("[%-5s] tick %d from state %d"):format(msg.name, msg.count, msg.state))
      if msg.count == 3 then child:send("stop") end
    elseif kind == "bye" then
      print(("[%-5s] stopped after %d ticks"):format(msg.name, msg.count))
      child:close() -- it may end now: nothing more will be sent
    end
  end)
  child:onexit(function(ok, err)
    assert(ok, err)
    alive = alive - 1
    print(("[%-5s] state closed; %d still running"):format(s.name, alive))
    if alive == 0 then print("all states finished") end
  end)
end
print(("main state %d started %d states"):format(host.id, #states))
