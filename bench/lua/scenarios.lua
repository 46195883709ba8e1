-- The benchmark scenarios, one per process so that memory figures start
-- from a clean heap. `cargo xtask bench` runs them; by hand:
--
--   lua5.4 bench/lua/scenarios.lua <scenario> [args...]
--
-- with LUA_PATH/LUA_CPATH pointing at an installed module (`cargo xtask
-- module --lua 5.4 --out DIR`). Each prints one line
-- `RESULT key=value key=value ...` that xtask parses.
--
--   throughput <dispatch|poll> <producers> <items per producer>
--   roundtrip  <wait|luv> <calls> <gap_us>
--   queued     <items>          resident bytes per item with <items> queued
--   stream     <items> <capacity> peak RSS for <items> through <capacity>
--   luv_work   <items>          peer: luv's uv.new_work thread pool
--   luv_async  <items>          peer: luv's async:send from a uv thread
local scenario = arg[1]
local unpack = table.unpack or unpack

local function result(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(t[k]) end
  print("RESULT " .. table.concat(out, " "))
end

local S = {}

function S.throughput(mode, producers, per)
  local dss = require "darksidesync"
  local bl = require "darksidesync.benchlib"
  producers, per = tonumber(producers), tonumber(per)
  local total = producers * per
  local got = 0
  local function callback(i) got = got + 1 end
  local wait, dispatch, poll = dss.wait, dss.dispatch, dss.poll
  local before = dss.stats()
  local t0 = bl.now()
  local job = bl.post(callback, per, producers)
  if mode == "dispatch" then
    while got < total do
      wait()
      dispatch()
    end
  elseif mode == "poll" then
    -- DarkSideSync 1.0 style: poll one item at a time, call it ourselves.
    while got < total do
      local n, f, args = poll()
      if n == -1 then
        wait()
      elseif f then
        f(unpack(args, 1, args.n))
      end
    end
  else
    error("mode must be dispatch or poll")
  end
  local secs = bl.now() - t0
  job:wait()
  local s = dss.stats()
  local wakeups = s.wakeups - before.wakeups
  result {
    mode = mode, producers = producers, items = total, secs = secs,
    items_per_s = total / secs, wakeups = wakeups,
    wakeups_per_1000 = wakeups * 1000 / total, peak_depth = s.peak_depth,
  }
end

function S.roundtrip(mode, calls, gap)
  local dss = require "darksidesync"
  local bl = require "darksidesync.benchlib"
  calls, gap = tonumber(calls), tonumber(gap)
  local function callback(i) return i + 1 end
  local job = bl.call(callback, calls, gap)
  if mode == "wait" then
    while not job:done() do
      if dss.wait(0.05) then dss.dispatch() end
    end
  elseif mode == "luv" then
    local uv = require "luv"
    local dssluv = require "darksidesync.luv"
    dssluv.attach()
    local timer = uv.new_timer()
    timer:start(10, 10, function()
      if job:done() then
        timer:close()
        dssluv.detach()
      end
    end)
    uv.run()
  else
    error("mode must be wait or luv")
  end
  local r = job:result()
  result { mode = mode, calls = r.calls, failed = r.failed, p50_us = r.p50_us, p99_us = r.p99_us, max_us = r.max_us }
end

function S.queued(items)
  local dss = require "darksidesync"
  local bl = require "darksidesync.benchlib"
  items = tonumber(items)
  dss.setcapacity(items)
  local got = 0
  local function callback() got = got + 1 end
  -- Warm up the bench port, the thread machinery and the allocator.
  local warm = bl.post(callback, 1000, 1)
  warm:wait()
  dss.dispatch()
  collectgarbage()
  collectgarbage()
  local idle = bl.rss()
  local job = bl.post(callback, items, 1)
  job:wait()
  local queued = dss.queuesize()
  local full = bl.rss()
  while got < 1000 + items do dss.wait(); dss.dispatch() end
  result {
    items = queued, idle_rss = idle, full_rss = full,
    bytes_per_item = (full - idle) / queued,
  }
end

function S.stream(items, capacity)
  local dss = require "darksidesync"
  local bl = require "darksidesync.benchlib"
  items, capacity = tonumber(items), tonumber(capacity)
  dss.setcapacity(capacity)
  local got = 0
  local function callback() got = got + 1 end
  collectgarbage()
  local idle = bl.rss()
  local t0 = bl.now()
  local job = bl.post(callback, items, 1)
  while got < items do dss.wait(); dss.dispatch() end
  local secs = bl.now() - t0
  job:wait()
  local peak = bl.peak_rss()
  result {
    items = items, capacity = capacity, idle_rss = idle, peak_rss = peak,
    peak_over_idle = peak - idle, items_per_s = items / secs,
  }
end

function S.luv_work(items)
  local uv = require "luv"
  items = tonumber(items)
  local got = 0
  local work = uv.new_work(function(n) return n end, function(n) got = got + 1 end)
  local t0 = uv.hrtime()
  for i = 1, items do work:queue(i) end
  uv.run()
  local secs = (uv.hrtime() - t0) / 1e9
  assert(got == items, "lost work items")
  result { items = items, delivered = got, secs = secs, items_per_s = items / secs }
end

function S.luv_async(items)
  local uv = require "luv"
  items = tonumber(items)
  local got, async = 0, nil
  async = uv.new_async(function(v)
    if v == "done" then uv.stop() else got = got + 1 end
  end)
  local t0 = uv.hrtime()
  local thread = uv.new_thread(function(a, n)
    local uv = require "luv"
    for i = 1, n do a:send(i) end
    -- The end marker can be lost to coalescing like any other value:
    -- repeat it a few times (the main loop stops at the first one).
    for _ = 1, 20 do a:send("done") uv.sleep(5) end
  end, async, items)
  uv.run()
  local secs = (uv.hrtime() - t0) / 1e9
  -- Close the handle only once the sending thread is gone: closing it
  -- while another thread may still be inside async:send crashes luv.
  thread:join()
  async:close()
  uv.run()
  result {
    items = items, delivered = got, lost = items - got, secs = secs,
    sends_per_s = items / secs, delivered_per_s = got / secs,
  }
end

local run = S[scenario]
if not run then
  io.stderr:write("unknown scenario ", tostring(scenario), "\n")
  os.exit(2)
end
run(select(2, unpack(arg)))
