--- darksidesync.luv: run darksidesync's queue from a luv (libuv) loop.
--
--   local uv = require "luv"
--   local dssluv = require "darksidesync.luv"
--   local handle = dssluv.attach()   -- a uv_poll_t watching darksidesync.fd()
--   uv.run()                         -- items are dispatched as they arrive
--   dssluv.detach()                  -- stop watching (lets uv.run() return)
--
-- `attach(opts)`: `opts.max` limits the items run per wake-up (default: all
-- queued); `opts.unref = true` unrefs the handle so it does not keep
-- `uv.run()` alive on its own. Attaching twice returns the same handle.
-- `attached()` tells whether a handle is active.
--
-- The descriptor stays readable while items are queued (level-triggered),
-- so a `max` smaller than the queue only spreads the work over iterations.
local uv = require "luv"
local darksidesync = require "darksidesync"

local M = {}
local handle

function M.attach(opts)
  opts = opts or {}
  if handle then return handle end
  local max = opts.max
  local h = assert(uv.new_poll(darksidesync.fd()))
  assert(h:start("r", function(err)
    if err then error("darksidesync.luv: poll failed: " .. tostring(err)) end
    darksidesync.dispatch(max)
  end))
  if opts.unref then h:unref() end
  handle = h
  return h
end

function M.detach()
  if not handle then return false end
  local h = handle
  handle = nil
  h:stop()
  -- Closing the poll handle does not close darksidesync's descriptor.
  if not h:is_closing() then h:close() end
  return true
end

function M.attached()
  return handle ~= nil
end

return M
