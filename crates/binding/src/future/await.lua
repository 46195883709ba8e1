-- The Lua side of darksidesync-binding's async functions, compiled once
-- per state (per copy of the crate): returns make(start), which wraps the
-- Rust `start` of one async function (see mod.rs for the semantics).
--
-- start(...) polls the new future once: it returns true and the results
-- when it finished at once, false, false and the error's parts when it
-- failed at once, else false and the task.
-- The task's methods: settled(), take() -> true, results... | false,
-- message, traceback; cancel(); on_settle(f) (f runs on the Lua thread
-- when the task finished, as the user value of the task, so a parked
-- coroutine that nobody else holds stays collectable); live().
-- drivers: the module's table of callback coroutines' handlers;
-- traceback(message, level): luaL_traceback of the running coroutine
-- (there may be no debug library).
local drivers, traceback = ...
local co_running, co_yield, co_resume, co_status = coroutine.running, coroutine.yield,
  coroutine.resume, coroutine.status
local isyieldable = coroutine.isyieldable
local error, tostring, pcall, setmetatable, type = error, tostring, pcall, setmetatable, type
local loaded = package and package.loaded

-- Tasks of plain coroutines, which darksidesync resumes: held here until
-- they settle (nobody else need hold the coroutine, as in
-- `coroutine.wrap(f)()`), or until a 5.4 coroutine.close() cancels them.
local held = {}

-- The coroutine to resume for `co`: a callback of dispatch(max, spawn)
-- runs in a coroutine whose yields its handler's coroutine forwards, so
-- resuming must go through the handler (prelude.lua of the module).
local function outermost(co)
  local up = drivers[co]
  while up do
    co = up
    up = drivers[co]
  end
  return co
end

local function cancel(task)
  held[task] = nil
  task:cancel()
end

-- Lua 5.4: a coroutine closed while parked (coroutine.close) cancels its
-- future through a to-be-closed variable. Other versions: the identity.
local with_close = function(_, f, task) return f(task) end
local src = [[
local cancel, setmetatable = ...
local mt = { __close = function(g) cancel(g[1]) end }
return function(task, f, ...)
  local guard <close> = setmetatable({ task }, mt)
  return f(...)
end]]
local compiled = (loadstring or load)(src)
if compiled then with_close = compiled(cancel, setmetatable) end

local function finish(ok, ...)
  if ok then return ... end
  local message, future_tb = ...
  message = traceback(tostring(message), 2)
  if future_tb then message = message .. "\n(in the future) " .. future_tb end
  error(message, 0)
end

local function dss()
  return loaded.darksidesync or require "darksidesync"
end

-- Not in a yieldable coroutine: run darksidesync's loop until it settled.
-- The 1-second wait only notices an unregistered library (its wakes are
-- refused): a pending future costs one wake-up a second here.
local function block(task)
  local m = dss()
  while not task:settled() do
    local ok, err = pcall(m.wait, 1)
    if ok then ok, err = pcall(m.dispatch) end
    if not ok then
      cancel(task)
      error("cannot wait for an async function here (call it from a coroutine): " .. tostring(err), 0)
    end
    if not task:settled() and not task:live() then
      cancel(task)
    end
  end
end

local function settled_of(task)
  return function() return task:settled() end
end

local function park(task, co)
  local shared = loaded and loaded["darksidesync.async"]
  local parkers = type(shared) == "table" and shared.parkers
  if type(parkers) == "table" then
    local settled = settled_of(task)
    local on_settle = function(f) task:on_settle(f) end
    for i = 1, #parkers do
      if parkers[i].park(settled, on_settle) then return end
    end
  end
  local target = outermost(co)
  held[task] = true
  task:on_settle(function()
    held[task] = nil
    if co_status(target) == "suspended" then
      local ok, err = co_resume(target)
      if not ok then
        local tb = debug and debug.traceback
        error(tb and tb(target, tostring(err)) or tostring(err), 0)
      end
    end
  end)
  while not task:settled() do co_yield() end
end

local function wait_for(task)
  local co, main = co_running()
  if co == nil or main or (isyieldable and not isyieldable()) then
    block(task)
  else
    park(task, co)
  end
  return finish(task:take())
end

local function ready_or_wait(ok, task, ...)
  if ok then return task, ... end
  if not task then return finish(false, ...) end
  return with_close(task, wait_for, task)
end

return function(start)
  return function(...)
    return ready_or_wait(start(...))
  end
end
