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
-- scheduler (a round trip's reply is not delayed to the next step).
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local darksidesync = require "darksidesync"

local create, resume, status, yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

local M = {}

-- Resumes `co` until it ends, from a coroutine of cq: what it yields (its
-- waits on cqueues objects) is yielded to cq, what cq resumes with is
-- handed back. `res` is what its last resume returned.
local function forward(co, res)
  while status(co) ~= "dead" do
    res = pack(resume(co, yield(unpack(res, 2, res.n))))
  end
  if not res[1] then error(res[2], 0) end
end

function M.attach(cq, opts)
  cq = cq or cqueues.new()
  opts = opts or {}
  local max = opts.max
  local watcher = { cq = cq, active = true }
  local stopped = condition.new()
  local pollable = { pollfd = darksidesync.fd(), events = "r" }
  local function spawn(handler)
    local co = create(handler)
    local res = pack(resume(co))
    if status(co) ~= "dead" then
      cq:wrap(function() forward(co, res) end)
    elseif not res[1] then
      -- The handler reports its callback's errors itself: this is its own.
      error(res[2], 0)
    end
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
