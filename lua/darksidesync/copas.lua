--- darksidesync.copas: run darksidesync's queue from a Copas loop.
--
--   local copas = require "copas"
--   local dsscopas = require "darksidesync.copas"
--   local watcher = dsscopas.attach({ max = 100 })  -- a Copas thread on darksidesync.fd()
--   while watcher.active do copas.step(1) end        -- items are dispatched as they arrive
--   -- a callback (or another Copas thread) ends it with watcher:detach()
--
-- Each item's callback runs in a Copas thread of its own
-- (`dispatch(max, copas.addthread)`), so it may use Copas I/O
-- (`copas.receive`, `copas.send`, ...) before it returns; for a blocking
-- call its return values (or its error) are the reply, or it takes the
-- reply object with `darksidesync.reply()` and answers later.
--
-- `attach(opts)` returns a watcher `{ active, thread, detach() }`; no
-- callback runs inside `attach()`. `opts.max` bounds the items run per
-- slice (default: the items queued when the slice starts). After each
-- slice the thread yields to Copas, so the other Copas threads get their
-- turn while the queue is busy: one slice per `copas.step()`.
--
-- The thread waits with `copas.receivefrom` on a socket-like object whose
-- `getfd()` is darksidesync's descriptor (Copas selects it like any
-- LuaSocket socket) and whose `dirty()` is true while work is queued or
-- after `detach()`, which is how a detach wakes the waiting thread; its
-- `receivefrom()` reports "timeout" once after every slice, which is how
-- the thread yields to Copas (Copas 1.1.7 has no yield of its own).
--
-- `watcher:detach()` (also `watcher.detach()`) ends the thread at its next
-- turn: a slice in progress completes. Debian's Copas (1.1.7) `copas.loop()`
-- is `while true do copas.step() end`: it never returns, with or without
-- threads left. Drive `copas.step()` yourself to stop, as above.
local copas = require "copas"
local darksidesync = require "darksidesync"

local M = {}

function M.attach(opts)
  opts = opts or {}
  local max = opts.max
  local watcher = { active = true }
  local fd = darksidesync.fd()
  local must_yield = true -- the first call yields: attach() runs nothing
  local obj = {}
  function obj.getfd() return fd end
  function obj.dirty() return not watcher.active or darksidesync.queuesize() > 0 end
  function obj.settimeout() return 1 end
  -- Copas closes the object its thread last waited on when the thread
  -- ends; darksidesync's descriptor must stay open.
  function obj.close() return 1 end
  function obj.receivefrom()
    if must_yield then
      must_yield = false
      return nil, "timeout"
    end
    if not watcher.active or darksidesync.wait(0) then
      must_yield = true
      return "", "127.0.0.1", 0
    end
    return nil, "timeout"
  end
  function watcher.detach()
    if not watcher.active then return false end
    watcher.active = false
    return true
  end
  watcher.thread = copas.addthread(function()
    while true do
      copas.receivefrom(obj)
      if not watcher.active then return end
      darksidesync.dispatch(max, copas.addthread)
    end
  end)
  return watcher
end

return M
