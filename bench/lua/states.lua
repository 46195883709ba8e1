-- Benchmarks of darksidesync.states (issue 14 part 1): messages per second
-- and call round trip between two Lua states on their own threads. The
-- peer, luv's new_thread + async:send, is scenarios.lua's `luv_async`.
--
--   lua5.4 bench/lua/states.lua <scenario> [args...]
--
-- with LUA_PATH/LUA_CPATH pointing at an installed module (`cargo xtask
-- module --lua 5.4 --out DIR`). Each prints one `RESULT key=value ...` line
-- in scenarios.lua's format.
--
--   states_post <items>   a child posts <items> integers to the main state
--   states_call <calls>   the main state calls a child <calls> times
local dss = require "darksidesync"
local states = require "darksidesync.states"

local scenario = arg[1]
local now = require("socket").gettime

local function result(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(t[k]) end
  print("RESULT " .. table.concat(out, " "))
end

local S = {}

function S.states_post(items)
  items = tonumber(items)
  local got, sum = 0, 0
  local t0 = now()
  local h = states.spawn([[
    local states = require "darksidesync.states"
    local post = states.parent.post
    local parent = states.parent
    for i = 1, ... do assert(post(parent, i)) end
  ]], items)
  h:onmessage(function(i) got = got + 1; sum = sum + i end)
  local wait, dispatch = dss.wait, dss.dispatch
  while got < items do
    wait()
    dispatch()
  end
  local secs = now() - t0
  assert(h:join() == nil)
  assert(sum == items * (items + 1) / 2, "messages lost or duplicated")
  result {
    items = items, delivered = got, lost = items - got, secs = secs,
    messages_per_s = items / secs,
  }
end

function S.states_call(calls)
  calls = tonumber(calls)
  local h = states.spawn([[
    local dss = require "darksidesync"
    local states = require "darksidesync.states"
    states.parent:onmessage(function(x) return x + 1 end)
    dss.run() -- until the parent closes its handle
  ]])
  assert(h:call(0) == 1) -- the child is serving
  local call = h.call
  local t0 = now()
  for i = 1, calls do
    assert(call(h, i) == i + 1)
  end
  local secs = now() - t0
  h:close()
  h:join()
  result { calls = calls, secs = secs, roundtrip_us = secs / calls * 1e6, calls_per_s = calls / secs }
end

local run = S[scenario]
if not run then
  io.stderr:write("unknown scenario ", tostring(scenario), "\n")
  os.exit(2)
end
run(select(2, (table.unpack or unpack)(arg)))
