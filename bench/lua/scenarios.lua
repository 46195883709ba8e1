-- The benchmark scenarios, one per process so that memory figures start
-- from a clean heap. `cargo xtask bench` runs them; by hand:
--
--   lua5.4 bench/lua/scenarios.lua <scenario> [args...]
--
-- (or lua5.1, luajit: the file is Lua 5.1 as well) with LUA_PATH/LUA_CPATH
-- pointing at an installed module (`cargo xtask module --lua 5.4 --out
-- DIR`) and, for the public paths, the benchmark utilities dssbench.so
-- (bench/c) and dssbenchrs.so (bench/rust), built for that Lua, beside it.
-- Each prints one line `RESULT key=value key=value ...` that xtask parses.
--
-- <source> is where items come from:
--   internal  darksidesync.benchlib (the module's own Item::call path)
--   c1        dssbench through DSS API 1v0 (deliver)
--   c2        dssbench through DSS API 2v0 (post waiting for room / call)
--   c2nw      dssbench through DSS API 2v0 post(..., 0), never waiting
--   rust      dssbenchrs on darksidesync-binding (Dss::post / Dss::call)
--   rustcb    the same through Dss::post_callback / Dss::call_callback
--
--   throughput <source> <dispatch|poll|luv> <producers> <items per producer> [timed]
--                                with "timed": darksidesync.timing(true) first, and
--                                the items' queue waits reported (wait_p50_us ...)
--   drain      <source> <items>   poll() over a pre-filled queue
--   roundtrip  <source> <wait|luv|cqueues|cqueues_inline> <calls> <gap_us>
--                                cqueues_inline: a cqueues loop on fd() calling
--                                dispatch() itself, without the adapter's
--                                coroutine per item (what cqueues alone costs)
--   limit_poll <items>           pure Lua: the Lua side of poll() alone
--   limit_pcall <items>          C calls a Lua function per item via lua_pcall
--   queued     <items>           resident bytes per item with <items> queued
--   stream     <items> <capacity> peak RSS for <items> through <capacity>
--   luv_work   <items>           peer: luv's uv.new_work thread pool
--   luv_async  <items>           peer: luv's async:send from a uv thread
--   async_sleep <calls> <ms>     dssbenchrs: <calls> coroutines, each an async sleep of <ms>
--   async_poll_sleep <calls> <ms> the same sleeps polled by a manual loop (mlua#76)
--   async_ready <calls>          an async function ready at once, called <calls> times
--   plain_call <calls>           a plain mlua function, called <calls> times
--   async_echo <coroutines> <requests> a tokio TCP echo, one connection per coroutine
--
-- Every item carries an integer; the scenarios count the items and sum the
-- integers and fail (non-zero exit) unless each arrived exactly once.
local scenario = arg[1]
local unpack = table.unpack or unpack
-- An argument as an integer (5.3+) or a whole float (5.1, LuaJIT).
local toint = math.tointeger and function(x) return math.tointeger(tonumber(x)) end
  or function(x) return tonumber(x) end
-- x / 2 for an even x, exact below 2^53 (no `//` in 5.1).
local function half(x) return math.floor(x / 2) end

local function result(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(t[k]) end
  print("RESULT " .. table.concat(out, " "))
end

-- Monotonic seconds, from the C utility (any source's scenario loads it).
local function now()
  require "darksidesync"
  return require("dssbench").now()
end

-- The item sources, one interface: post(cb, producers, per) and
-- call(cb, calls, gap_us) start a job; outcome(job) waits for it and
-- returns { sent, failed, bad_replies, p50_us, p99_us, max_us };
-- sum(producers, per) is the sum of the integers a post job sends.
local SOURCES = {}

local function distinct_sum(producers, per)
  local t = producers * per
  return half(t * (t + 1))
end

local function own_outcome(job)
  return job:result()
end

function SOURCES.internal()
  local bl = require "darksidesync.benchlib"
  return {
    post = function(cb, producers, per) return bl.post(cb, per, producers) end,
    call = function(cb, calls, gap) return bl.call(cb, calls, gap) end,
    -- Each producer sends 0 .. per - 1.
    sum = function(producers, per) return producers * half(per * (per - 1)) end,
    outcome = function(job)
      job:wait()
      local r = job:result()
      -- benchlib counts a call with a wrong reply as failed.
      return { sent = r.posted + r.calls, failed = r.failed, bad_replies = 0,
               p50_us = r.p50_us, p99_us = r.p99_us, max_us = r.max_us }
    end,
  }
end

function SOURCES.c1()
  local b = require "dssbench"
  return { post = b.post1, call = b.call1, sum = distinct_sum, outcome = own_outcome }
end

function SOURCES.c2()
  local b = require "dssbench"
  return { post = b.post2, call = b.call2, sum = distinct_sum, outcome = own_outcome }
end

function SOURCES.c2nw()
  local b = require "dssbench"
  return { post = b.post2nw, sum = distinct_sum, outcome = own_outcome }
end

function SOURCES.rust()
  local b = require "dssbenchrs"
  return { post = b.post, call = b.call, sum = distinct_sum, outcome = own_outcome }
end

function SOURCES.rustcb()
  local b = require "dssbenchrs"
  return { post = b.post_callback, call = b.call_callback, sum = distinct_sum, outcome = own_outcome }
end

-- LuaCallback::post: posts only (no call).
function SOURCES.rustfn()
  local b = require "dssbenchrs"
  return { post = b.post_values, sum = distinct_sum, outcome = own_outcome }
end

-- LuaCallback::post of four scalars (k, k / 2, true, "tick").
function SOURCES.rustfn4()
  local b = require "dssbenchrs"
  return { post = b.post_scalars, sum = distinct_sum, outcome = own_outcome }
end

-- LuaCallback::post of a table { k = k, name = "tick", path = "/tmp/k" }:
-- the callback reads the field (one index more than the rows above).
function SOURCES.rustfnt()
  local b = require "dssbenchrs"
  return {
    post = function(cb, producers, per)
      return b.post_table(function(t) cb(t.k) end, producers, per)
    end,
    sum = distinct_sum, outcome = own_outcome,
  }
end

-- The same table made by a post_callback's closure with mlua.
function SOURCES.rustcbt()
  local b = require "dssbenchrs"
  return {
    post = function(cb, producers, per)
      return b.post_callback_table(function(t) cb(t.k) end, producers, per)
    end,
    sum = distinct_sum, outcome = own_outcome,
  }
end

local function source(name)
  local make = SOURCES[name]
  if not make then error("unknown source " .. tostring(name)) end
  require "darksidesync"
  return make()
end

-- Fails unless every item of `job` arrived exactly once. `count()`
-- returns how many items the callback saw and the sum of their integers;
-- it is read after the job ended and anything still queued ran (a
-- duplicate or a miscount would show there).
local function check_exactly_once(src, job, count, producers, per)
  local dss = require "darksidesync"
  local r = src.outcome(job)
  dss.dispatch()
  local got, sum = count()
  local total = producers * per
  assert(r.failed == 0, ("%d deliveries refused: %s"):format(r.failed, tostring(r.error)))
  assert(r.sent == total, ("%d of %d items sent"):format(r.sent, total))
  assert(got == total, ("%d of %d items arrived"):format(got, total))
  assert(sum == src.sum(producers, per), "an item was lost or arrived twice (sum)")
  assert(dss.queuesize() == 0, "items left in the queue")
  return r
end

-- A callback that counts and sums, and the function reading both.
local function counting()
  local got, sum = 0, 0
  return function(i) got = got + 1; sum = sum + i end, function() return got, sum end
end

local S = {}

function S.throughput(src_name, mode, producers, per, timed)
  local dss = require "darksidesync"
  local src = source(src_name)
  producers, per = toint(producers), toint(per)
  timed = timed == "timed"
  dss.timing(timed)
  local total = producers * per
  -- Locals, not the table, for the hot loops' count.
  local got, sum = 0, 0
  local function callback(i) got = got + 1; sum = sum + i end
  local wait, dispatch, poll, queuesize = dss.wait, dss.dispatch, dss.poll, dss.queuesize
  local before = dss.stats()
  local t0 = now()
  local job = src.post(callback, producers, per)
  -- The producers are done and nothing is left: an item is missing (the
  -- check below says which); stop instead of waiting forever.
  local function starved()
    return job:done() and queuesize() == 0
  end
  if mode == "dispatch" then
    while got < total do
      if not wait(1) and starved() then break end
      dispatch()
    end
  elseif mode == "poll" then
    -- DarkSideSync 1.0 style: poll one item at a time, call it ourselves.
    while got < total do
      local n, f, args = poll()
      if n == -1 then
        if not wait(1) and starved() then break end
      elseif f then
        f(unpack(args, 1, args.n))
      end
    end
  elseif mode == "luv" then
    -- Woken through darksidesync.fd() by a luv loop.
    local uv = require "luv"
    local dssluv = require "darksidesync.luv"
    dssluv.attach()
    local timer = uv.new_timer()
    timer:start(1, 1, function()
      if got >= total or starved() then
        timer:close()
        dssluv.detach()
      end
    end)
    uv.run()
  else
    error("mode must be dispatch, poll or luv")
  end
  local secs = now() - t0
  local r = check_exactly_once(src, job, function() return got, sum end, producers, per)
  local s = dss.stats()
  local wakeups = s.wakeups - before.wakeups
  local t = {
    source = src_name, mode = mode, producers = producers, items = total, secs = secs,
    items_per_s = total / secs, wakeups = wakeups,
    wakeups_per_1000 = wakeups * 1000 / total, peak_depth = s.peak_depth,
    capacity = dss.capacity(),
    full_retries = r.full_retries, timed = tostring(timed),
  }
  if timed then
    -- Every item was posted while timing was on: each one's wait counts.
    local w = dss.waits()
    assert(w.count == total, ("%d waits recorded for %d items"):format(w.count, total))
    t.wait_p50_us, t.wait_p99_us, t.wait_max_us = w.p50 * 1e6, w.p99 * 1e6, w.max * 1e6
  end
  result(t)
end

function S.drain(src_name, items)
  local dss = require "darksidesync"
  local src = source(src_name)
  items = toint(items)
  dss.setcapacity(items + 16)
  local callback, count = counting()
  local job = src.post(callback, 1, items)
  -- Wait for the producer: the queue is full before the clock starts.
  local r = src.outcome(job)
  src.outcome = function() return r end
  local queued = dss.queuesize()
  assert(queued == items, ("%d of %d items queued before the drain"):format(queued, items))
  local poll = dss.poll
  local t0 = now()
  for _ = 1, items do
    local n, f, args = poll()
    f(unpack(args, 1, args.n))
  end
  local secs = now() - t0
  check_exactly_once(src, job, count, 1, items)
  result { source = src_name, items = items, secs = secs, items_per_s = items / secs }
end

function S.limit_poll(items)
  items = toint(items)
  local callback, count = counting()
  -- What poll() hands back: a count, the callback, a fresh args table with n.
  local left = items
  local function fake_poll()
    left = left - 1
    return left, callback, { left, n = 1 }
  end
  local t0 = now()
  for _ = 1, items do
    local n, f, args = fake_poll()
    f(unpack(args, 1, args.n))
  end
  local secs = now() - t0
  assert(count() == items)
  result { items = items, secs = secs, items_per_s = items / secs }
end

function S.limit_pcall(items)
  require "darksidesync"
  local b = require "dssbench"
  items = toint(items)
  local callback, count = counting()
  local t0 = now()
  b.pcall_loop(callback, items)
  local secs = now() - t0
  local got, sum = count()
  assert(got == items and sum == distinct_sum(1, items))
  result { items = items, secs = secs, items_per_s = items / secs }
end

function S.roundtrip(src_name, mode, calls, gap)
  local dss = require "darksidesync"
  local src = source(src_name)
  calls, gap = toint(calls), toint(gap)
  local function callback(i) return i + 1 end
  local job = src.call(callback, calls, gap)
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
  elseif mode == "cqueues" then
    local cqueues = require "cqueues"
    local dsscq = require "darksidesync.cqueues"
    local cq = cqueues.new()
    local watcher = dsscq.attach(cq)
    cq:wrap(function()
      while not job:done() do cqueues.sleep(0.01) end
      watcher.detach()
    end)
    assert(cq:loop())
  elseif mode == "cqueues_inline" then
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local pollable = { pollfd = dss.fd(), events = "r" }
    cq:wrap(function()
      while not job:done() do
        cqueues.poll(pollable, 0.01)
        dss.dispatch()
      end
    end)
    assert(cq:loop())
  else
    error("mode must be wait, luv, cqueues or cqueues_inline")
  end
  local r = src.outcome(job)
  assert(r.failed == 0 and r.bad_replies == 0 and r.sent == calls,
    ("%d of %d calls answered, %d failed, %d wrong replies"):format(r.sent, calls, r.failed, r.bad_replies))
  result { source = src_name, mode = mode, calls = r.sent, failed = r.failed,
           p50_us = r.p50_us, p99_us = r.p99_us, max_us = r.max_us }
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

-- darksidesync.states (issue 14): a child state posts <items> integers to
-- the main state, each delivered exactly once (the peer: luv_async).
function S.states_post(items)
  local dss = require "darksidesync"
  local states = require "darksidesync.states"
  items = tonumber(items)
  local got, sum = 0, 0
  local t0 = now()
  local h = states.spawn([[
    local states = require "darksidesync.states"
    local parent = states.parent
    local post = parent.post
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
  result { items = items, delivered = got, secs = secs, items_per_s = items / secs }
end

-- The main state calls a child state <calls> times (the child answers in
-- its darksidesync.run()): round trip percentiles.
function S.states_call(calls)
  local dss = require "darksidesync"
  local states = require "darksidesync.states"
  calls = tonumber(calls)
  local h = states.spawn([[
    local dss = require "darksidesync"
    local states = require "darksidesync.states"
    states.parent:onmessage(function(x) return x + 1 end)
    dss.run() -- until the main state closes its handle
  ]])
  assert(h:call(0) == 1) -- the child is serving
  local call, times = h.call, {}
  for i = 1, calls do
    local t0 = now()
    local r = call(h, i)
    times[i] = (now() - t0) * 1e6
    assert(r == i + 1)
  end
  h:close()
  h:join()
  table.sort(times)
  local function at(q) return times[math.max(1, math.ceil(q * calls))] end
  result { calls = calls, p50_us = at(0.5), p99_us = at(0.99), max_us = times[calls] }
end

-- Async functions of dssbenchrs (darksidesync-binding, tokio): wall and
-- process CPU time (os.clock(): every thread) of <calls> concurrent sleeps.
function S.async_sleep(calls, ms)
  local dss = require "darksidesync"
  local b = require "dssbenchrs"
  calls, ms = tonumber(calls), tonumber(ms)
  b.unref()
  local done = 0
  local t0, c0 = now(), os.clock()
  for _ = 1, calls do
    coroutine.wrap(function()
      b.sleep_ms(ms)
      done = done + 1
    end)()
  end
  local c1 = os.clock()
  dss.run()
  local secs, cpu = now() - t0, os.clock() - c0
  assert(done == calls, "sleeps lost")
  -- wait_cpu_secs: from the last call started to the last resumed (the
  -- sleeping, and one wake, poll and resume per call).
  result { calls = calls, secs = secs, cpu_secs = cpu, wait_cpu_secs = os.clock() - c1 }
end

-- The same sleeps through a manual polling loop: every pending coroutine
-- is resumed (its future polled) again and again until ready.
function S.async_poll_sleep(calls, ms)
  local b = require "dssbenchrs"
  calls, ms = tonumber(calls), tonumber(ms)
  local pending, n = {}, 0
  local t0, c0 = now(), os.clock()
  for i = 1, calls do
    local h = b.poll_sleep(ms)
    pending[i] = coroutine.wrap(function()
      while not h:ready() do coroutine.yield(false) end
      return true
    end)
  end
  n = calls
  local c1 = os.clock()
  while n > 0 do
    local i = 1
    while i <= n do
      if pending[i]() then
        pending[i] = pending[n]
        pending[n] = nil
        n = n - 1
      else
        i = i + 1
      end
    end
  end
  result { calls = calls, secs = now() - t0, cpu_secs = os.clock() - c0, wait_cpu_secs = os.clock() - c1 }
end

-- `calls` calls of dssbenchrs's `fname` (each returns its argument + 1).
local function calls_of(fname, calls)
  local b = require "dssbenchrs"
  calls = tonumber(calls)
  local f, sum = b[fname], 0
  local t0 = now()
  for i = 1, calls do sum = sum + f(i) end
  local secs = now() - t0
  assert(sum == calls * (calls + 1) / 2 + calls, "wrong results") -- no // : 5.1 and LuaJIT load this file
  result { calls = calls, secs = secs, calls_per_s = calls / secs }
end

function S.async_ready(calls) calls_of("ready", calls) end

function S.plain_call(calls) calls_of("plain", calls) end

function S.async_echo(coroutines, requests)
  local dss = require "darksidesync"
  local b = require "dssbenchrs"
  coroutines, requests = tonumber(coroutines), tonumber(requests)
  b.unref()
  local port = b.echo_server()
  local done = 0
  local t0 = now()
  for c = 1, coroutines do
    coroutine.wrap(function()
      local conn = b.connect(port)
      for k = 1, requests do
        local line = c .. ":" .. k
        assert(b.echo(conn, line) == line, "a wrong echo")
        done = done + 1
      end
    end)()
  end
  dss.run()
  local secs = now() - t0
  assert(done == coroutines * requests, "requests lost")
  result { requests = done, secs = secs, requests_per_s = done / secs }
end

local run = S[scenario]
if not run then
  io.stderr:write("unknown scenario ", tostring(scenario), "\n")
  os.exit(2)
end
run(select(2, unpack(arg)))
