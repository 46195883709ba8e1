--- darksidesync.copas: run darksidesync's queue from a Copas loop.
--
--   local copas = require "copas"
--   local dsscopas = require "darksidesync.copas"
--   local watcher = dsscopas.attach()   -- a Copas thread waiting on darksidesync.fd()
--   copas.loop()                        -- items are dispatched as they arrive
--   watcher:detach()                    -- ends the thread (copas.loop() can return)
--
-- `attach(opts)`: `opts.max` limits the items run per wake-up. The thread
-- waits with `copas.receivefrom` on a socket-like object whose `getfd()` is
-- darksidesync's descriptor (Copas selects it like any LuaSocket socket)
-- and whose `dirty()` is true while work is queued or after `detach()`,
-- which is how a detach wakes the waiting thread.
local copas = require "copas"
local darksidesync = require "darksidesync"

local M = {}

function M.attach(opts)
  opts = opts or {}
  local max = opts.max
  local watcher = { active = true }
  local fd = darksidesync.fd()
  local obj = {}
  function obj.getfd() return fd end
  function obj.dirty() return not watcher.active or darksidesync.queuesize() > 0 end
  function obj.settimeout() return 1 end
  -- Copas closes the object its thread last waited on when the thread
  -- ends; darksidesync's descriptor must stay open.
  function obj.close() return 1 end
  function obj.receivefrom()
    if not watcher.active or darksidesync.wait(0) then return "", "127.0.0.1", 0 end
    return nil, "timeout"
  end
  function watcher.detach()
    if not watcher.active then return false end
    watcher.active = false
    return true
  end
  copas.addthread(function()
    while watcher.active do
      copas.receivefrom(obj)
      if watcher.active then darksidesync.dispatch(max) end
    end
  end)
  return watcher
end

return M
