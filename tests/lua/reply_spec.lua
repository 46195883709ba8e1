-- Replies that can wait: dss.reply() inside a dispatched callback, and
-- handlers run in coroutines of their own by dispatch(max, spawn) and the
-- Copas and cqueues adapters, answered after real socket round trips.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"
local H = require "helper"

describe("reply()", function()
  before_each(H.reset)
  after_each(H.reset)

  it("lets a dispatched callback take its reply object and answer later", function()
    local kept
    local job = testlib.call(function(x)
      kept = dss.reply()
      return "not the reply"
    end, nil, 41)
    H.dispatch_until(function() return kept ~= nil end, "the call")
    assert.is_false(job:done())
    assert.equal("darksidesync.reply (pending)", tostring(kept))
    kept(42, "later")
    H.join(job)
    assert.same({ "replied", { 42, "later", n = 2 } }, { job:result() })
    assert.equal("darksidesync.reply (answered)", tostring(kept))
    assert.same({}, { kept(1) }) -- later calls do nothing
  end)

  it("is nil outside a blocking call's callback, and once taken", function()
    assert.is_nil(dss.reply())
    local seen = {}
    H.join(testlib.post(function() seen[#seen + 1] = dss.reply() == nil end, 1, 1))
    local second
    local job = testlib.call(function()
      local r = dss.reply()
      second = dss.reply()
      r("ok")
    end)
    H.dispatch_until(function() return job:done() end)
    assert.same({ true }, seen)
    assert.is_nil(second)
    assert.same({ "replied", { "ok", n = 1 } }, { job:result() })
  end)

  it("a dropped reply object releases the caller with 'cancelled'", function()
    local ran = false
    local job = testlib.call(function() dss.reply() ran = true end)
    H.dispatch_until(function() return ran end)
    H.until_true(function() return job:done() end, function()
      collectgarbage()
      collectgarbage()
      job:wait(0.01)
    end, "the caller's release")
    assert.equal("cancelled", (job:result()))
  end)

  it("the caller keeps its timeout while the object is held", function()
    local kept
    local job = testlib.call(function() kept = dss.reply() end, { timeout = 0.05 })
    H.dispatch_until(function() return kept ~= nil end)
    H.join(job)
    assert.equal("timed out", (job:result()))
    assert.same({}, { kept("too late") })
  end)

  it("an error after taking it goes to the error handler; the object still answers", function()
    local errors = H.collect_errors()
    local kept
    local job = testlib.call(function()
      kept = dss.reply()
      error("after taking", 0)
    end)
    H.dispatch_until(function() return kept ~= nil end)
    assert.same({ "after taking" }, errors)
    kept("fine")
    H.join(job)
    assert.same({ "replied", { "fine", n = 1 } }, { job:result() })
  end)
end)

describe("dispatch(max, spawn)", function()
  before_each(H.reset)
  after_each(H.reset)

  it("hands each item to spawn; a handler may yield before it answers", function()
    local spawned = {}
    local job = testlib.call(function(x)
      local y = coroutine.yield("waiting")
      return x + y
    end, nil, 1)
    H.until_true(function() return dss.queuesize() > 0 end, function() dss.wait(0.05) end)
    assert.equal(1, dss.dispatch(nil, function(h) spawned[#spawned + 1] = coroutine.create(h) end))
    assert.equal(1, #spawned)
    local co = spawned[1]
    assert.same({ true, "waiting" }, { coroutine.resume(co) })
    assert.is_false(job:done())
    assert.is_true((coroutine.resume(co, 41)))
    assert.equal("dead", coroutine.status(co))
    H.join(job)
    assert.same({ "replied", { 42, n = 1 } }, { job:result() })
  end)

  it("a handler's error becomes the caller's error; reply() works in the handler's coroutine", function()
    local spawn = function(h) local co = coroutine.create(h) assert(coroutine.resume(co)) end
    local failing = testlib.call(function() error("handler failed", 0) end)
    local kept
    local taking = testlib.call(function() kept = dss.reply() coroutine.yield() end)
    H.until_true(function() return dss.queuesize() >= 2 end, function() dss.wait(0.05) end)
    dss.dispatch(nil, spawn)
    H.join(failing)
    assert.same({ "error", "handler failed" }, { failing:result() })
    assert.is_not_nil(kept)
    kept("taken")
    H.join(taking)
    assert.same({ "replied", { "taken", n = 1 } }, { taking:result() })
  end)

  it("rejects a spawn that is not a function", function()
    local ok, err = pcall(dss.dispatch, nil, 5)
    assert.is_false(ok)
    assert.equal("darksidesync.dispatch: spawn must be a function or nil, got number", err)
  end)
end)

describe("adapters answer a native call after a real socket round trip", function()
  before_each(H.reset)
  after_each(H.reset)

  it("copas", function()
    local copas = require "copas"
    local socket = require "socket"
    local dsscopas = require "darksidesync.copas"
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    copas.addserver(server, function(skt)
      local line = copas.receive(skt, "*l")
      copas.send(skt, line .. " pong\n")
    end)
    local job = testlib.call(function(x)
      local c = socket.tcp()
      c:settimeout(0)
      copas.connect(c, "127.0.0.1", port)
      copas.send(c, x .. "\n")
      local line = copas.receive(c, "*l")
      c:close()
      return line
    end, nil, "ping")
    local watcher = dsscopas.attach()
    local deadline = os.time() + H.PATIENCE
    while not job:done() and os.time() <= deadline do copas.step(0.05) end
    watcher:detach()
    for _ = 1, 3 do copas.step(0) end
    -- Copas 1.1.7 has no removeserver(); a closed socket is skipped by
    -- socket.select.
    if copas.removeserver then copas.removeserver(server) end
    server:close()
    assert.same({ "replied", { "ping pong", n = 1 } }, { job:result() })
  end)

  it("cqueues", function()
    local cqueues = require "cqueues"
    local csocket = require "cqueues.socket"
    local dsscq = require "darksidesync.cqueues"
    local cq = cqueues.new()
    local server = csocket.listen("127.0.0.1", 0)
    local _, _, port = server:localname()
    cq:wrap(function()
      local con = server:accept()
      local line = con:read("*l")
      con:write(line .. " pong\n")
      con:flush()
      con:close()
    end)
    local job = testlib.call(function(x)
      local c = csocket.connect("127.0.0.1", port)
      c:write(x .. "\n")
      c:flush()
      local line = c:read("*l")
      c:close()
      return line
    end, nil, "ping")
    local watcher = dsscq.attach(cq)
    cq:wrap(function()
      local deadline = os.time() + H.PATIENCE
      while not job:done() and os.time() <= deadline do cqueues.sleep(0.01) end
      watcher.detach()
    end)
    assert(cq:loop())
    server:close()
    assert.same({ "replied", { "ping pong", n = 1 } }, { job:result() })
  end)
end)
