-- Several child processes at once, their output interleaved as it
-- arrives, a progress timer, and Ctrl-C handled by a Lua callback that
-- stops the children cleanly.
--
--   cargo run --release -- examples/processes.lua [rounds]
--   lua5.4 examples/processes.lua [rounds]    (with the module on package.cpath)
local dss = require "darksidesync"
local signal = require "darksidesync.signal"
local timer = require "darksidesync.timer"
local process = require "darksidesync.process"

local rounds = tonumber((...)) or 4
local started = timer.now()
local function stamp() return ("%5.2fs"):format(timer.now() - started) end

-- Three "jobs" with different rhythms; one writes to stderr too.
local jobs = {
  { name = "fast", cmd = "for i in $(seq %d); do echo \"fast line $i\"; sleep 0.1; done" },
  { name = "slow", cmd = "for i in $(seq %d); do echo \"slow line $i\"; sleep 0.25; done" },
  { name = "noisy", cmd = "for i in $(seq %d); do echo \"noisy line $i\"; echo \"noisy warning $i\" >&2; sleep 0.15; done; exit 3" },
}

local running, children = 0, {}
local progress, interrupt

local function finished()
  running = running - 1
  if running == 0 then
    progress:cancel()
    interrupt:cancel()
    print(stamp() .. " all processes finished")
  end
end

for _, job in ipairs(jobs) do
  running = running + 1
  local p, err = process.spawn({ "sh", "-c", job.cmd:format(rounds) }, {
    stdout = function(line) print(("%s [%-5s] %s"):format(stamp(), job.name, line)) end,
    stderr = function(line) print(("%s [%-5s] stderr: %s"):format(stamp(), job.name, line)) end,
    exit = function(code, sig)
      print(("%s [%-5s] exited: %s"):format(stamp(), job.name, code and ("status " .. code) or sig))
      finished()
    end,
  })
  assert(p, err)
  children[#children + 1] = p
end

progress = timer.every(0.5, function()
  print(("%s [timer] %d process(es) running"):format(stamp(), running))
end)

-- Ctrl-C: the handler runs here, on the Lua thread, not in signal context.
interrupt = signal.on("INT", function(name)
  print(stamp() .. " got " .. name .. ", stopping the children")
  for _, p in ipairs(children) do p:kill("TERM") end
end)

print(stamp() .. " started " .. #jobs .. " processes; press Ctrl-C to stop them early")
dss.run() -- until every process exited and the timers are cancelled
