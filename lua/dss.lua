--- dss: helper for darksidesync with LuaSocket, compatible with the
-- original DarkSideSync 1.0 `dss.lua`.
--
--   local dss = require "dss"
--   local skt, port = dss.getsocket()   -- UDP socket on 127.0.0.1:50000..50200
--   -- or: nil, "Could not configure a UDP socket"
--   local handler = dss.gethandler()    -- function(skt): read wake-ups, run the queue
--   ... socket.select({ skt, ... }) ... when skt is readable: handler(skt)
--   dss.queuesize()                     -- items waiting
--   dss.seterrorhandler(f)              -- f(err) handles errors of callbacks
--
-- Difference from the original, on purpose: darksidesync coalesces
-- wake-ups (one datagram per burst of deliveries, not one per item), so
-- the handler reads every pending datagram and then polls until the queue
-- is empty, instead of polling once per datagram.
--
-- Callbacks are run as `callback(unpack(args, 1, args.n))`, exactly as
-- `poll()` returns them: for a blocking delivery the first argument is the
-- reply userdata, which the callback calls with its answer.
local socket = require "socket"
local darksidesync = require "darksidesync"

local xpcall, select, type, tostring = xpcall, select, type, tostring
local unpack = unpack or table.unpack
local traceback = debug and debug.traceback
local stderr = io and io.stderr

local M = {}

local function default_errorhandler(err)
  local text = "dss: error in callback: " .. tostring(err)
  if traceback then text = traceback(text, 2) end
  if stderr then stderr:write(text, "\n") end
  return err
end

local errorhandler = default_errorhandler
local udpsocket, udpport

--- Binds a UDP socket on localhost, on the first free port of
-- 50000-50200, and tells darksidesync to notify it.
-- @return socket, port; or nil, "Could not configure a UDP socket"
function M.getsocket()
  if udpsocket then
    darksidesync.setport(udpport)
    return udpsocket, udpport
  end
  for port = 50000, 50200 do
    local skt = socket.udp()
    if not skt then break end
    if skt:setsockname("127.0.0.1", port) then
      skt:settimeout(0)
      darksidesync.setport(port)
      udpsocket, udpport = skt, port
      return skt, port
    end
    skt:close()
  end
  return nil, "Could not configure a UDP socket"
end

local function run(callback, args)
  return callback(unpack(args, 1, args.n))
end

--- Returns the function to call when the UDP socket is readable. It reads
-- all pending wake-up datagrams, then runs every queued item.
-- @return function(skt) returning the number of items handled
function M.gethandler()
  return function(skt)
    skt = skt or udpsocket
    if skt then
      skt:settimeout(0)
      while skt:receive() do end
    end
    local handled = 0
    while true do
      local count, callback, args = darksidesync.poll()
      if count == -1 then break end
      handled = handled + 1
      if callback ~= nil then
        xpcall(function() return run(callback, args) end, errorhandler)
      end
      if count == 0 then break end
    end
    return handled
  end
end

--- The number of items waiting in the queue.
function M.queuesize()
  return darksidesync.queuesize()
end

--- Sets the handler for errors raised by callbacks run by the handler of
-- `gethandler()`; nil restores the default (traceback to stderr).
function M.seterrorhandler(f)
  if f ~= nil and type(f) ~= "function" then
    error("dss.seterrorhandler: expected a function or nil, got " .. type(f), 2)
  end
  errorhandler = f or default_errorhandler
end

return M
