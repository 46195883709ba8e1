-- Lua helpers of the darksidesync module, compiled once per state.
-- Returns a table of helpers; see state.rs.
local error, select, tostring, xpcall, pairs = error, select, tostring, xpcall, pairs
local traceback = debug and debug.traceback
local stderr = io and io.stderr

if not (error and select and tostring and xpcall and pairs and ((newproxy and getmetatable) or setmetatable)) then
  return nil, "darksidesync: needs Lua's base library"
    .. " (error, select, tostring, xpcall, pairs, setmetatable or newproxy)"
end

local H = {}

-- The closing flag: closing[1] becomes true when lua_close starts running
-- finalisers. Lua finalises the newest objects first, so the guard below
-- (made at the first require) runs before the finalisers of every object
-- that got its own before that require: those can still call
-- darksidesync's functions, after mlua and the state's hub are gone.
-- Every function checks the flag first and raises CLOSING instead.
local CLOSING = "darksidesync: state is closing"
local closing = { false }
H.closing = closing
-- C functions to call as well (they clear what C closures read instead
-- of the flag, see poll.rs); they cannot raise.
local on_close = {}
closing.on_close = on_close
local function mark_closing()
  closing[1] = true
  for i = 1, #on_close do on_close[i]() end
end
if newproxy then -- Lua 5.1, LuaJIT: only userdata have __gc
  closing.guard = newproxy(true)
  getmetatable(closing.guard).__gc = mark_closing
else
  closing.guard = setmetatable({}, { __gc = mark_closing })
end

-- Wraps f with the closing check.
function H.guard(f)
  return function(...)
    if closing[1] then error(CLOSING, 0) end
    return f(...)
  end
end

-- xpcall with arguments. Lua 5.2+ and LuaJIT take them natively; PUC Lua
-- 5.1 does not, so wrap the call in a closure there.
local native = select(2, xpcall(function(a) return a end, tostring, 42)) == 42
if native then
  H.xpcall = xpcall
else
  local unpack = unpack or table.unpack
  H.xpcall = function(f, handler, ...)
    local n, args = select("#", ...), { ... }
    return xpcall(function() return f(unpack(args, 1, n)) end, handler)
  end
end

-- Handlers of dispatch(max, spawn). Each runs its callback in a coroutine
-- of its own and forwards that coroutine's yields to whoever resumes the
-- coroutine `spawn` runs the handler in (a Copas thread, a cqueues
-- coroutine), so the callback may yield on I/O; this also keeps yields
-- working across the error catching on PUC Lua 5.1, whose pcall cannot
-- yield.
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_status, co_running = coroutine.status, coroutine.running
local unpack = unpack or table.unpack
local function pack(...) return { n = select("#", ...), ... } end

-- callback coroutine -> its reply object (false once reply() took it)
local bound = setmetatable({}, { __mode = "k" })
-- callback coroutine -> the handler's coroutine that forwards its yields:
-- whoever resumes a parked callback (darksidesync-binding's async
-- functions) must resume the handler's coroutine instead. Published in
-- the registry as "darksidesync.drivers" (state.rs).
local drivers = setmetatable({}, { __mode = "k" })
H.drivers = drivers
local reply_fail -- set by set_reply_fail: fails a reply object with a text

function H.set_reply_fail(f) reply_fail = f end

local function run_forwarding(co)
  local me, main = co_running()
  if me and not main then drivers[co] = me end
  local res = pack(co_resume(co))
  while res[1] and co_status(co) ~= "dead" do
    res = pack(co_resume(co, co_yield(unpack(res, 2, res.n))))
  end
  return res
end

function H.make_handler(reply, errorhandler, callback, ...)
  local args = pack(...)
  return function()
    local co = co_create(function() return callback(unpack(args, 1, args.n)) end)
    if reply ~= nil then bound[co] = reply end
    local res = run_forwarding(co)
    local answer = reply ~= nil and bound[co] ~= false
    bound[co] = nil
    if answer then
      if res[1] then
        reply(unpack(res, 2, res.n))
      else
        reply_fail(reply, tostring(res[2]))
      end
    elseif not res[1] then
      errorhandler(res[2])
    end
  end
end

-- The module's reply(): the reply object bound to the running callback
-- coroutine of a spawned handler, else the one of the callback dispatch()
-- is running (raw_reply).
function H.coroutine_reply(raw_reply)
  return function()
    if closing[1] then error(CLOSING, 0) end
    local co = co_running()
    local r = co and bound[co]
    if r then
      bound[co] = false
      return r
    end
    return raw_reply()
  end
end

-- The default error handler: runs as the message handler of the failing
-- callback, so the traceback shows where it failed. Writes, never raises.
function H.default_handler(err)
  local text = "darksidesync: error in callback: " .. tostring(err)
  if traceback then text = traceback(text, 2) end
  if stderr then stderr:write(text, "\n") end
  return err
end

-- Message handler of blocking deliveries: the error text becomes the reply.
function H.reply_handler(err)
  return tostring(err)
end

-- Wraps the raw Rust functions: they return (FAIL, message) to raise a
-- plain string error (a bare message, as luaL_error gives from C).
function H.wrap(raw, FAIL)
  local function check(...)
    if ... == FAIL then error((select(2, ...)), 0) end
    return ...
  end
  local M = {}
  for name, f in pairs(raw) do
    M[name] = function(...)
      if closing[1] then error(CLOSING, 0) end
      return check(f(...))
    end
  end
  return M
end

return H
