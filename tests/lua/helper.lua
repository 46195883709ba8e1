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
  dss.timing(false)
end

-- A fire-and-forget error handler that records errors.
function H.collect_errors()
  local errors = {}
  dss.seterrorhandler(function(e) errors[#errors + 1] = tostring(e) end)
  return errors
end

-- The interpreter running this spec (the parent of io.popen's shell).
function H.interpreter()
  local p = assert(io.popen("readlink /proc/$PPID/exe"))
  local path = p:read("*l")
  p:close()
  assert(path and path ~= "", "cannot find the running interpreter")
  return path
end

-- Runs a Lua script in a fresh copy of the running interpreter (same
-- LUA_PATH/LUA_CPATH) and returns its output (stdout and stderr) and exit
-- status.
function H.run_script(script)
  local p = assert(io.popen("'" .. H.interpreter() .. "' " .. script .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("*a")
  p:close()
  local status = tonumber(out:match("exit=(%d+)\n?$"))
  return out:gsub("exit=%d+\n?$", ""), status
end

return H
