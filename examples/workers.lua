-- A worker pool: background threads (here, Lua states of their own, each
-- on its own OS thread) ask this state for decisions with blocking calls.
-- Every call waits until this thread has answered; the workers never touch
-- this state, and this state never blocks on them.
--
--   cargo run --release -- examples/workers.lua [workers] [wanted]
--   lua5.4 examples/workers.lua [workers] [wanted]   (with the module on package.cpath)
local dss = require "darksidesync"
local states = require "darksidesync.states"

local nworkers = tonumber((select(1, ...))) or 4
local wanted = tonumber((select(2, ...))) or 12

-- The worker: asks for a number, tests it, reports, asks whether to go on.
local worker_source = [[
  local states = require "darksidesync.states"
  local function is_prime(n)
    if n < 2 then return false end
    if n % 2 == 0 then return n == 2 end
    for d = 3, math.floor(math.sqrt(n)), 2 do
      if n % d == 0 then return false end
    end
    return true
  end
  local tested = 0
  while true do
    local n = states.parent:call("next")        -- blocks until the main state decides
    if not n then break end
    tested = tested + 1
    local go_on = states.parent:call("result", n, is_prime(n))
    if not go_on then break end
  end
  states.parent:post("done", tested)            -- dispatched before this state's exit
]]

local next_candidate = 1000000000001 -- odd numbers from 10^12 up
local found, handed_out = {}, 0
local per_worker = {}

local function decide(w, kind, a, b)
  if kind == "next" then
    if #found >= wanted then return nil end  -- decision: no more work
    local n = next_candidate
    next_candidate = next_candidate + 2
    handed_out = handed_out + 1
    return n
  elseif kind == "result" then
    if b and #found < wanted then               -- late results past the goal are dropped
      found[#found + 1] = a
      print(("worker %d: %d is prime (%d/%d)"):format(w, a, #found, wanted))
    end
    return #found < wanted                      -- decision: go on or stop
  elseif kind == "done" then
    per_worker[w] = a
  end
end

local remaining = nworkers

local function report()
  local counts = {}
  for w = 1, nworkers do counts[#counts + 1] = tostring(per_worker[w] or 0) end
  print(("found %d primes above 10^12 with %d workers; %d candidates handed out; tested per worker: %s")
    :format(#found, nworkers, handed_out, table.concat(counts, " ")))
end

for w = 1, nworkers do
  local child = states.spawn(worker_source)
  child:onmessage(function(...) return decide(w, ...) end)
  child:onexit(function(ok, err)
    assert(ok, err)
    remaining = remaining - 1
    if remaining == 0 then report() end
  end)
end
print(("%d workers started, looking for %d primes"):format(nworkers, wanted))
dss.run() -- until every worker ended (a running child holds its parent)
