--- darksidesync.cqueues: run darksidesync's queue from a cqueues controller.
--
--   local cqueues = require "cqueues"
--   local dsscq = require "darksidesync.cqueues"
--   local cq = cqueues.new()
--   local watcher = dsscq.attach(cq)  -- a coroutine in cq polling darksidesync.fd()
--   assert(cq:loop())                  -- items are dispatched as they arrive
--   watcher:detach()                   -- ends the coroutine (cq:loop() can return)
--
-- `attach(cq, opts)`: `cq` defaults to a new controller; `opts.max` limits
-- the items run per wake-up. Returns a watcher with `detach()` and the
-- field `cq`. The coroutine waits with
-- `cqueues.poll({pollfd = fd, events = "r"}, cond)`, where `cond` is the
-- condition `detach()` signals.
--
-- Each item's callback runs in a coroutine of its own (`dispatch(max,
-- spawn)`), so it may use cqueues I/O (sockets, `cqueues.sleep`, ...)
-- before it returns; for a blocking call its return values (or its error)
-- are the reply, or it takes the reply object with `darksidesync.reply()`
-- and answers later. The coroutine is started at once, inside
-- `dispatch()`; only one that waits (yields to cqueues) is handed to `cq`,
-- which then resumes it through a coroutine of `cq` that forwards its
-- yields. A callback that does not wait so costs no trip through `cq`'s
-- scheduler (a round trip's reply is not delayed to the next step). The
-- coroutines are reused: one goes back to a pool once its callback
-- returned, never while it waits, so items still start in FIFO order and
-- a waiting callback keeps its coroutine to itself.
--
-- Requiring it registers a parker with `darksidesync.async`: an async
-- function of a Rust library (darksidesync-binding) called from a
-- coroutine of a cqueues controller waits on a `cqueues.condition` that
-- its future's completion signals, so the controller runs its other
-- coroutines meanwhile.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local darksidesync = require "darksidesync"

local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

local M = {}

require("darksidesync.async").add("cqueues", function(settled, on_settle)
  if not cqueues.running() then return false end
  local done = condition.new()
  on_settle(function() done:signal() end)
  while not settled() do done:wait() end
  return true
end)

-- The coroutines handlers run in are reused: a runner resumed with (GO,
-- handler) runs it and yields DONE when it returned, then waits for the
-- next one (a resume without GO leaves it waiting). A handler that waits
-- on a cqueues object keeps its runner until it returned; only then does
-- the runner go back to the pool (a new coroutine per item cost more than
-- a resume of a pooled one).
local DONE, GO = {}, {}
local function serve(go, handler)
  if go == GO then
    handler()
    handler = nil -- the idle runner holds nothing of the last item
  end
  return serve(yield(DONE))
end

-- Resumes `co` (whose last resume returned `res`) until its handler
-- returned, from a coroutine of cq: what it yields (its waits on cqueues
-- objects) is yielded to cq, what cq resumes with is handed back.
local function forward(co, res)
  while res[1] and res[2] ~= DONE do
    res = pack(resume(co, yield(unpack(res, 2, res.n))))
  end
  if not res[1] then error(res[2], 0) end
end

local MAX_IDLE = 8

function M.attach(cq, opts)
  cq = cq or cqueues.new()
  opts = opts or {}
  local max = opts.max
  local watcher = { cq = cq, active = true }
  local stopped = condition.new()
  local pollable = { pollfd = darksidesync.fd(), events = "r" }
  local idle, n_idle = {}, 0
  local function give_back(co)
    if n_idle < MAX_IDLE then
      n_idle = n_idle + 1
      idle[n_idle] = co
    end
  end
  local function started(co, ok, first, ...)
    if ok and first == DONE then
      give_back(co)
    elseif ok then
      -- The handler waits: cq resumes the runner from now on.
      local res = pack(ok, first, ...)
      cq:wrap(function()
        forward(co, res)
        give_back(co)
      end)
    else
      -- The handler reports its callback's errors itself: this is its own.
      error(first, 0)
    end
  end
  local function spawn(handler)
    local co
    if n_idle > 0 then
      co = idle[n_idle]
      idle[n_idle] = nil
      n_idle = n_idle - 1
    else
      co = create(serve)
    end
    return started(co, resume(co, GO, handler))
  end
  function watcher.detach()
    if not watcher.active then return false end
    watcher.active = false
    stopped:signal()
    return true
  end
  cq:wrap(function()
    while watcher.active do
      cqueues.poll(pollable, stopped)
      if watcher.active then darksidesync.dispatch(max, spawn) end
    end
  end)
  return watcher
end

return M
