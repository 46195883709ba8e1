-- The event-loop adapters, each driving a REAL loop that receives items
-- from background threads and answers blocking calls.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"
local H = require "helper"

-- Starts 2 x 50 fire-and-forget items and 3 blocking calls; `finished()`
-- is true once every item ran and every call was answered.
local function traffic(on_done)
  local state = { n = 0 }
  local post = testlib.post(function() state.n = state.n + 1 end, 50, 2)
  local calls = {}
  for i = 1, 3 do
    calls[i] = testlib.call(function(x) return x * 10 end, nil, i)
  end
  function state.finished()
    if state.n < 100 or not post:done() then return false end
    for _, c in ipairs(calls) do
      if not c:done() then return false end
    end
    return true
  end
  function state.check()
    assert.equal(100, state.n)
    for i, c in ipairs(calls) do
      assert.same({ "replied", { i * 10, n = 1 } }, { c:result() })
    end
  end
  -- poll for completion from inside the loop via a recurring check
  state.on_done = on_done
  return state
end

describe("adapters", function()
  before_each(H.reset)
  after_each(H.reset)

  it("luv: a uv_poll on the fd dispatches items and replies", function()
    local uv = require "luv"
    local dssluv = require "darksidesync.luv"
    local t = traffic()
    dssluv.attach()
    assert.is_true(dssluv.attached())
    local timer = uv.new_timer()
    local deadline = os.time() + H.PATIENCE
    timer:start(10, 10, function()
      if t.finished() or os.time() > deadline then
        timer:stop()
        timer:close()
        dssluv.detach()
      end
    end)
    uv.run()
    assert.is_false(dssluv.attached())
    t.check()
  end)

  it("cqueues: a controller coroutine polling the fd dispatches items and replies", function()
    local cqueues = require "cqueues"
    local dsscq = require "darksidesync.cqueues"
    local cq = cqueues.new()
    local t = traffic()
    local watcher = dsscq.attach(cq)
    cq:wrap(function()
      local deadline = os.time() + H.PATIENCE
      while not t.finished() and os.time() <= deadline do cqueues.sleep(0.01) end
      watcher.detach()
    end)
    assert(cq:loop())
    assert.is_false(watcher.active)
    t.check()
  end)

  it("socket: socket.select on the pollable object dispatches items and replies", function()
    local dsssock = require "darksidesync.socket"
    local t = traffic()
    H.until_true(t.finished, function() dsssock.select({}, nil, 0.05) end, "socket adapter traffic")
    t.check()
    assert.equal(0, dsssock.step(0))
  end)

  it("dss.lua: socket.select on the UDP socket from dss.getsocket()", function()
    local socket = require "socket"
    local dsslua = require "dss"
    local skt, port = dsslua.getsocket()
    assert.is_truthy(skt, port)
    assert.is_true(port >= 50000 and port <= 50200)
    assert.equal(port, dss.getport())
    local handler = dsslua.gethandler()
    local n = 0
    local post = testlib.post(function() n = n + 1 end, 50, 2)
    -- a DSS-style blocking callback answers through the reply userdata
    local call = testlib.call(function(reply, x) reply(x + 1) end, nil, 41)
    H.until_true(function() return n == 100 and call:done() end, function()
      local r = socket.select({ skt }, nil, 0.05)
      if r[skt] then handler(skt) end
    end, "UDP traffic")
    H.join(post)
    assert.same({ "replied", { 42, n = 1 } }, { call:result() })
    assert.equal(0, dsslua.queuesize())
  end)

  it("dss.lua: errors go to the dss error handler, other items still run", function()
    local socket = require "socket"
    local dsslua = require "dss"
    local skt = assert(dsslua.getsocket())
    local errors = {}
    dsslua.seterrorhandler(function(e) errors[#errors + 1] = e end)
    local n = 0
    H.join(testlib.post(function(_, seq) n = n + 1 if seq == 2 then error("dss boom") end end, 4, 1))
    H.until_true(function() return n == 4 end, function()
      local r = socket.select({ skt }, nil, 0.05)
      if r[skt] then dsslua.gethandler()(skt) end
    end)
    assert.equal(1, #errors)
    assert.matches("dss boom", errors[1])
    dsslua.seterrorhandler(nil)
    assert.has_error(function() dsslua.seterrorhandler(5) end)
  end)

  it("copas: a copas thread waiting on the fd dispatches items and replies", function()
    local copas = require "copas"
    local dsscopas = require "darksidesync.copas"
    local t = traffic()
    local watcher = dsscopas.attach()
    H.until_true(t.finished, function() copas.step(0.05) end, "copas traffic")
    watcher.detach()
    -- the detached thread wakes (dirty) and ends
    for _ = 1, 5 do copas.step(0) end
    t.check()
    assert.equal("dead", coroutine.status(watcher.thread))
  end)

  it("copas: attach() runs no callback, and a callback may detach the watcher", function()
    local copas = require "copas"
    local dsscopas = require "darksidesync.copas"
    local watcher
    local n = 0
    H.join(testlib.post(function()
      n = n + 1
      if n == 7 then assert.is_true(watcher:detach()) end
    end, 20, 1))
    watcher = dsscopas.attach({ max = 5 })
    assert.equal(0, n)
    assert.is_true(watcher.active)
    for _ = 1, 10 do copas.step(0) end
    assert.is_false(watcher.active)
    assert.equal("dead", coroutine.status(watcher.thread))
    -- the slice in which detach() was called completes; nothing after it
    assert.equal(10, n)
    assert.equal(10, dss.queuesize())
  end)

  it("copas: runs at most max items per step and lets other Copas threads run meanwhile", function()
    local copas = require "copas"
    local socket = require "socket"
    local dsscopas = require "darksidesync.copas"
    -- another Copas thread: a UDP server on a real loopback socket
    local server = assert(socket.udp())
    assert(server:setsockname("127.0.0.1", 0))
    local _, port = server:getsockname()
    local received = {}
    copas.addserver(server, function(skt)
      while #received < 3 do
        local data = copas.receivefrom(skt)
        received[#received + 1] = { data = data, left = dss.queuesize() }
      end
    end)
    local n = 0
    H.join(testlib.post(function() n = n + 1 end, 200, 1))
    local watcher = dsscopas.attach({ max = 10 })
    local client = assert(socket.udp())
    for i = 1, 3 do assert(client:sendto("ping" .. i, "127.0.0.1", port)) end
    local steps = 0
    while n < 200 do
      local before = n
      copas.step(0)
      steps = steps + 1
      assert.is_true(n - before <= 10, "a step ran " .. (n - before) .. " items")
      assert.is_true(steps < 1000, "no progress")
    end
    assert.is_true(steps >= 20)
    assert.equal(3, #received)
    for i, r in ipairs(received) do
      assert.equal("ping" .. i, r.data)
      assert.is_true(r.left > 0, "the server ran only after the queue was empty")
    end
    watcher:detach()
    for _ = 1, 3 do copas.step(0) end
    assert.equal("dead", coroutine.status(watcher.thread))
    client:close()
    server:close()
  end)
end)
