-- Shared helpers of the darksidesync specs.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"

local H = {}

-- A safety net, not a timing assertion: a broken build fails with a
-- message instead of hanging the run.
H.PATIENCE = 60

-- Runs `step` until `cond()` is true; fails after H.PATIENCE seconds.
function H.until_true(cond, step, what)
  local deadline = os.time() + H.PATIENCE
  while not cond() do
    if os.time() > deadline then error("gave up waiting for " .. (what or "a condition"), 2) end
    if step then step() end
  end
end

-- Dispatches until `cond()` is true.
function H.dispatch_until(cond, what)
  H.until_true(cond, function()
    if dss.wait(0.05) then dss.dispatch() end
  end, what)
end

-- Waits for a job whose items need no dispatching.
function H.join(job)
  assert(job:wait(H.PATIENCE), "job did not finish")
end

-- Empties the queue and restores defaults between specs.
function H.reset()
  testlib.reset()
  dss.seterrorhandler(function() end)
  while dss.poll() ~= -1 do end
  dss.seterrorhandler(nil)
  dss.setcapacity(65536)
  dss.setport(0)
end

-- A fire-and-forget error handler that records errors.
function H.collect_errors()
  local errors = {}
  dss.seterrorhandler(function(e) errors[#errors + 1] = tostring(e) end)
  return errors
end

return H
