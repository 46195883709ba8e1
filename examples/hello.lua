-- The README's first command: a background process and a timer, both
-- delivering to this Lua state while it waits, with nothing but Rust
-- installed.
--
--   cargo run --release -- examples/hello.lua
local timer = require "darksidesync.timer"
local process = require "darksidesync.process"

local t0 = timer.now()
print("hello from " .. _VERSION .. " in darksidesync-host")

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

print("the script is done; the host now dispatches until nothing can arrive")
