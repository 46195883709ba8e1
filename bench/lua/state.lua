-- One Lua state of the "many states" benchmark (bench/c/manystates.c):
-- the host runs this chunk with (items) in each of its states; it returns
-- the function the host calls once every state is ready. That function
-- starts one 2v0 producer thread (dssbench) posting `items` integers and
-- dispatches until all arrived, checking each arrived exactly once.
local items = math.tointeger(...)
local dss = require "darksidesync"
local b = require "dssbench"
local got, sum = 0, 0
local function callback(i) got = got + 1; sum = sum + i end
local wait, dispatch = dss.wait, dss.dispatch
return function()
  local job = b.post2(callback, 1, items)
  while got < items do
    wait()
    dispatch()
  end
  local r = job:result()
  assert(r.failed == 0 and r.sent == items, "producer refused")
  assert(got == items and sum == items * (items + 1) // 2, "items lost or duplicated")
  assert(dss.queuesize() == 0, "items left over")
  return got
end
