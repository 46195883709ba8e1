--- darksidesync.socket: run darksidesync's queue from a LuaSocket
-- `socket.select` loop, by polling darksidesync.fd() directly (no UDP).
--
--   local dsssock = require "darksidesync.socket"
--   local obj = dsssock.pollable()   -- { getfd = ..., dirty = ... } for socket.select
--   -- hand-written loop:
--   local r = socket.select({ obj, server }, nil, 1)
--   if r[obj] then darksidesync.dispatch() end
--   -- or let the adapter do it:
--   local r, w, err = dsssock.select({ server }, nil, 1)  -- dispatches, then returns the rest
--   local n = dsssock.step([timeout])                      -- wait up to timeout, dispatch, return count
--
-- `pollable()` always returns the same object; its `dirty()` is true while
-- items are queued, so `select` returns at once when work is pending.
-- `select` returns what `socket.select` returns, with our object removed
-- from the readable list (and `err` cleared when only our object was ready).
local socket = require "socket"
local darksidesync = require "darksidesync"

local M = {}

local fd = darksidesync.fd()
local obj = {}
function obj.getfd() return fd end
function obj.dirty() return darksidesync.queuesize() > 0 end
setmetatable(obj, { __tostring = function() return "darksidesync.socket pollable" end })

function M.pollable()
  return obj
end

function M.select(recvt, sendt, timeout)
  local list = { obj }
  for _, s in ipairs(recvt or {}) do list[#list + 1] = s end
  local r, w, err = socket.select(list, sendt, timeout)
  if r[obj] then
    darksidesync.dispatch()
    r[obj] = nil
    for i = #r, 1, -1 do
      if r[i] == obj then table.remove(r, i) end
    end
    if err == "timeout" then err = nil end
  end
  return r, w, err
end

function M.step(timeout)
  local r = socket.select({ obj }, nil, timeout)
  if r[obj] then return darksidesync.dispatch() end
  return 0
end

return M
