-- darksidesync.host: the host's conventions over darksidesync.states
-- (see states.rs).
local run_child = ... -- runs a child's script the host's way (states.rs)
local states = require "darksidesync.states"
local error, pcall, select, setmetatable, tostring, type = error, pcall, select, setmetatable, tostring, type
local unpack = table.unpack or unpack

-- Sent by a child whose main chunk set no host.onmessage.
local NOT_LISTENING = "\0darksidesync.host: not listening"

local host = { id = states.id }

-- Re-raises an error of darksidesync.states under the host's name.
local function rename(err, from, to)
  return (tostring(err):gsub("^darksidesync%.states: " .. from .. ": ", to .. ": "))
end

local function packed(...) return { n = select("#", ...), ... } end

-- The chunk every child runs: the script, then run(), the host's way.
local CHILD = [[return require("darksidesync.host")._run_child(...)]]

local Child = {}
Child.__index = Child

function Child:onmessage(f)
  if f ~= nil and type(f) ~= "function" then
    error("child:onmessage: expected a function or nil, got " .. type(f), 2)
  end
  self._onmessage = f
end

function Child:onexit(f)
  if f ~= nil and type(f) ~= "function" then
    error("child:onexit: expected a function or nil, got " .. type(f), 2)
  end
  self._onexit = f
end

function Child:send(...)
  local ok, r, why = pcall(self._h.post, self._h, ...)
  if not ok then error(rename(r, "post", "child:send"), 0) end
  if r then return true end
  return false, why
end

function Child:close() return self._h:close() end

function Child:id() return self._id end

local function script_of(script)
  if type(script) == "string" then
    local f, err = io.open(script, "rb")
    if not f then error("host.spawn: cannot read " .. err, 0) end
    local source = f:read("*a")
    f:close()
    return source, "@" .. script, script
  elseif type(script) == "table" and type(script.source) == "string" then
    local name = script.name or "host.spawn"
    return script.source, "=" .. name, name
  elseif type(script) == "table" then
    error("host.spawn: a table script needs a source string", 0)
  end
  error("host.spawn: expected a script path or {source = ...}, got " .. type(script), 0)
end

function host.spawn(script, ...)
  local source, chunkname, arg0 = script_of(script)
  local _, err = load(source, chunkname)
  if err then error("host.spawn: syntax error: " .. err, 0) end
  local ok, h = pcall(states.spawn, CHILD, source, chunkname, arg0, ...)
  if not ok then error(rename(h, "spawn", "host.spawn"), 0) end
  local child = setmetatable({ _h = h, _id = h:id() }, Child)
  -- The handlers hold the child weakly: a collected child handle lets go
  -- of the state (its run() may end), as child:close() does.
  local weak = setmetatable({ child = child }, { __mode = "v" })
  local id = child._id
  h:onmessage(function(first, ...)
    local c = weak.child
    if first == NOT_LISTENING and select("#", ...) == 0 then
      if c then c._h:close() end
      return
    end
    if c and c._onmessage then return c._onmessage(first, ...) end
    error("darksidesync.host: state " .. id .. " sent a message but its handle has no onmessage handler", 0)
  end)
  -- A child reports its failure as (false, text) from run_child; an error
  -- of darksidesync.states itself arrives as (false, text) too.
  h:onexit(function(done, ok, text)
    local err
    if not done then err = ok elseif ok == false then err = text end
    local c = weak.child
    if c and c._onexit then
      if err == nil then return c._onexit(true) end
      return c._onexit(false, err)
    end
    if err ~= nil then error("state " .. id .. " failed: " .. tostring(err), 0) end
  end)
  return child
end

function host.onmessage(f)
  if not states.parent then
    error("host.onmessage: the root state has no parent to receive from", 2)
  end
  if f ~= nil and type(f) ~= "function" then
    error("host.onmessage: expected a function or nil, got " .. type(f), 2)
  end
  states.parent:onmessage(f)
  host._listening = f ~= nil
end

if states.parent then
  local p = states.parent
  host.parent = {
    send = function(_, ...)
      local ok, r, why = pcall(p.post, p, ...)
      if not ok then error(rename(r, "post", "host.parent:send"), 0) end
      if r then return true end
      return false, why
    end,
    call = function(_, ...)
      local r = packed(pcall(p.call, p, ...))
      if not r[1] then error(rename(r[2], "call", "host.parent:call"), 0) end
      return unpack(r, 2, r.n)
    end,
  }
end

-- In a state started by host.spawn (see CHILD).
local spawned = false
function host._run_child(...)
  spawned = true
  return run_child(...)
end

-- After the main chunk (runtime.rs): a child that does not listen lets its
-- parent know, so that the parent's hold does not keep it running.
function host._after_main_chunk()
  if spawned and not host._listening then states.parent:post(NOT_LISTENING) end
end

return host
