-- The original DarkSideSync `luaexit` use case, done right: a small
-- daemon whose Lua code hears about SIGHUP (reload), SIGUSR1 (status) and
-- SIGINT/SIGTERM (clean shutdown). The signal handler itself only writes
-- to a pipe; the Lua callbacks run on the Lua thread.
--
--   cargo run --release -- examples/signals.lua
--   lua5.4 examples/signals.lua     (with the module on package.cpath)
--   (then press Ctrl-C, or from another terminal: kill -HUP <pid>)
local dss = require "darksidesync"
local signal = require "darksidesync.signal"
local timer = require "darksidesync.timer"

local config_version, beats = 1, 0
local handlers = {}

local heartbeat = timer.every(1, function()
  beats = beats + 1
  print(("heartbeat %d (config v%d)"):format(beats, config_version))
end)

local function shutdown(name)
  print("got " .. name .. ": shutting down cleanly")
  heartbeat:cancel()
  for _, h in ipairs(handlers) do h:cancel() end
  -- Nothing holds the program any more: run() below returns.
end

-- keepalive = true: these handlers alone keep the program running.
local keep = { keepalive = true }
handlers[#handlers + 1] = signal.on("HUP", function(name)
  config_version = config_version + 1
  print(("got %s: reloaded the configuration (now v%d)"):format(name, config_version))
end, keep)
handlers[#handlers + 1] = signal.on("USR1", function()
  print(("status: %d heartbeats, config v%d"):format(beats, config_version))
end, keep)
handlers[#handlers + 1] = signal.on("INT", shutdown, keep)
handlers[#handlers + 1] = signal.on("TERM", shutdown, keep)

-- Flushed at once so a supervisor (or the test) can act on it.
io.stdout:setvbuf("line")
print(("ready: pid %d; press Ctrl-C to stop, kill -HUP %d to reload"):format(signal.pid(), signal.pid()))
dss.run() -- until the handlers are cancelled
print("bye")
