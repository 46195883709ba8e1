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
-- of its own (for the time the callback runs: see the pool below) and
-- forwards that coroutine's yields to whoever resumes the
-- coroutine `spawn` runs the handler in (a Copas thread, a cqueues
-- coroutine), so the callback may yield on I/O; this also keeps yields
-- working across the error catching on PUC Lua 5.1, whose pcall cannot
-- yield.
local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running = coroutine.running
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

-- Callback coroutines are reused (a new one per item cost more than a
-- resume of a pooled one). A pooled coroutine runs one callback at a
-- time and goes back to the pool only once that callback returned (one
-- that raised is dead and dropped), so a callback suspended in a yield
-- keeps its coroutine to itself. Resumed with (GO, f, args...) it calls
-- f(args...), answers the callback's reply with the results itself (they
-- never cross a yield), then yields DONE and waits for the next callback
-- holding nothing of the last one (what the last item referenced stays
-- collectable). A resume without GO (a stray resumer holding a finished
-- callback's coroutine) leaves it waiting.
local DONE, GO = {}, {}
local serve
local function await_next() return serve(co_yield(DONE)) end
-- The reply is marked answered first: should answering raise, the
-- coroutine dies with that error, which goes to the error handler.
local function finished(...)
  local co = co_running()
  local reply = bound[co]
  if reply then
    bound[co] = false
    reply(...)
  end
  return await_next()
end
serve = function(go, f, ...)
  if go ~= GO then return await_next() end
  return finished(f(...))
end

local idle, n_idle, MAX_IDLE = {}, 0, 8

local function take_coroutine()
  if n_idle == 0 then return co_create(serve) end
  local co = idle[n_idle]
  idle[n_idle] = nil
  n_idle = n_idle - 1
  return co
end

-- Forwards the callback's yields (to whoever resumes the handler's
-- coroutine) until it finished (DONE) or raised; returns what its last
-- resume returned.
local function drive(co, ok, first, ...)
  if ok and first ~= DONE then
    return drive(co, co_resume(co, co_yield(first, ...)))
  end
  return ok, first
end

local function settle(co, reply, errorhandler, ok, err)
  if ok then
    if n_idle < MAX_IDLE then
      n_idle = n_idle + 1
      idle[n_idle] = co
    end
  elseif reply ~= nil and bound[co] ~= false then
    reply_fail(reply, tostring(err))
  else
    errorhandler(err)
  end
end

-- Runs one callback in a pooled coroutine. `bound` and `drivers` entries
-- of a pooled coroutine are overwritten here, not cleared after each
-- item: an idle coroutine runs no user code.
local function run(reply, errorhandler, callback, ...)
  local co = take_coroutine()
  bound[co] = reply
  local me, main = co_running()
  if main then me = nil end
  drivers[co] = me
  return settle(co, reply, errorhandler, drive(co, co_resume(co, GO, callback, ...)))
end

-- The handler of one item; up to two arguments are kept as upvalues (no
-- table per item).
local function make_handler(reply, errorhandler, callback, ...)
  local n = select("#", ...)
  if n == 1 then
    local a = ...
    return function() return run(reply, errorhandler, callback, a) end
  elseif n == 0 then
    return function() return run(reply, errorhandler, callback) end
  elseif n == 2 then
    local a, b = ...
    return function() return run(reply, errorhandler, callback, a, b) end
  end
  local args = pack(...)
  return function() return run(reply, errorhandler, callback, unpack(args, 1, args.n)) end
end

-- One item of dispatch(max, spawn): spawn(handler) in protected mode, its
-- own errors (not the callback's: the handler reports those) to the error
-- handler. One call from Rust per item.
local xpcall_args = H.xpcall
function H.spawn_item(spawn, errorhandler, reply, callback, ...)
  return xpcall_args(spawn, errorhandler, make_handler(reply, errorhandler, callback, ...))
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
