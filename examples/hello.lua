-- The README's first command: a background process and a timer, both
-- delivering to this Lua state while it waits, with nothing but Rust
-- installed.
--
--   cargo run --release -- examples/hello.lua     (the embedded host)
--   lua5.4 examples/hello.lua                     (with the module on package.cpath;
--                                                  any of lua5.1..5.4 or luajit)
local dss = require "darksidesync"
local timer = require "darksidesync.timer"
local process = require "darksidesync.process"

local t0 = timer.now()
print("hello from " .. _VERSION)

-- A child process; each line it prints reaches us as a callback, on this
-- thread, as it arrives.
process.spawn({ "sh", "-c", "for i in 1 2 3; do echo \"step $i\"; sleep 0.2; done" }, {
  stdout = function(line) print("[process] " .. line) end,
  exit = function(code) print("[process] exited with status " .. code) end,
})

-- A repeating timer, served by a background thread.
local ticks = 0
timer.every(0.25, function(t)
  ticks = ticks + 1
  print(("[timer]   tick %d at %.2fs"):format(ticks, timer.now() - t0))
  if ticks == 3 then t:cancel() end
end)

print("callbacks are set up; dispatching until nothing can arrive")
-- Runs the callbacks on this thread as they arrive; returns once no timer,
-- process or other keep-alive reference is left (the host would also do
-- this by itself after the script).
dss.run()
print("done")
