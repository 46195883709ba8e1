-- Async Rust functions (dssrust, examples/rust/src/asyncfns.rs) used from
-- coroutines; the work below is the same under every loop:
--
--   lua5.4 examples/rust/async.lua [run|luv|cqueues|copas]
--
-- with dssrust.so, darksidesync.so and lua/darksidesync/*.lua on the
-- paths (`cargo xtask binding` runs it under each loop). Each call
-- suspends only its own coroutine; the loop runs the others meanwhile.
local dssrust = require "dssrust"
local dss = require "darksidesync"

local function work(spawn, finish)
  local port = dssrust.echo_server()
  local left = 3
  local function done()
    left = left - 1
    if left == 0 then finish() end
  end
  spawn(function()
    print("slept, then got", dssrust.sleep(0.05, "a value"))
    done()
  end)
  spawn(function()
    print("echoed", dssrust.echo(port, "hello over tokio"))
    done()
  end)
  spawn(function()
    local ok, err = pcall(dssrust.fail, 0.01, "a Rust error")
    print("caught", ok, (tostring(err):match("^[^\n]*")))
    done()
  end)
end

local loop = arg[1] or "run"
local function wrap(f) coroutine.wrap(f)() end

if loop == "run" then
  dssrust.unref() -- run() returns when the last future settled
  work(wrap, function() end)
  dss.run()
elseif loop == "luv" then
  local uv = require "luv"
  local dssluv = require "darksidesync.luv"
  dssluv.attach()
  work(wrap, dssluv.detach)
  uv.run()
elseif loop == "cqueues" then
  local cqueues = require "cqueues"
  local cq = cqueues.new()
  local watcher = require("darksidesync.cqueues").attach(cq)
  work(function(f) cq:wrap(f) end, watcher.detach)
  assert(cq:loop())
elseif loop == "copas" then
  local copas = require "copas"
  local watcher = require("darksidesync.copas").attach()
  work(copas.addthread, watcher.detach)
  while watcher.active do copas.step(1) end
else
  error("usage: async.lua [run|luv|cqueues|copas]")
end
print("done under " .. loop)
