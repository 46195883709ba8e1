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
-- Each item's callback runs in a coroutine of its own in `cq`
-- (`dispatch(max, spawn)`), so it may use cqueues I/O (sockets,
-- `cqueues.sleep`, ...) before it returns; for a blocking call its return
-- values (or its error) are the reply, or it takes the reply object with
-- `darksidesync.reply()` and answers later.
--
-- Requiring it registers a parker with `darksidesync.async`: an async
-- function of a Rust library (darksidesync-binding) called from a
-- coroutine of a cqueues controller waits on a `cqueues.condition` that
-- its future's completion signals, so the controller runs its other
-- coroutines meanwhile.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local darksidesync = require "darksidesync"

local M = {}

require("darksidesync.async").add("cqueues", function(settled, on_settle)
  if not cqueues.running() then return false end
  local done = condition.new()
  on_settle(function() done:signal() end)
  while not settled() do done:wait() end
  return true
end)

function M.attach(cq, opts)
  cq = cq or cqueues.new()
  opts = opts or {}
  local max = opts.max
  local watcher = { cq = cq, active = true }
  local stopped = condition.new()
  local pollable = { pollfd = darksidesync.fd(), events = "r" }
  local function spawn(handler) cq:wrap(handler) end
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
