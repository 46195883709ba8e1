-- Waiting for work: fd(), wait(), and the LuaVortex trio in microseconds.
-- No wall-clock upper bounds: only that bounded waits return, and lower
-- bounds where a wait must have waited.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"
local socket = require "socket"
local H = require "helper"

describe("waiting", function()
  before_each(H.reset)
  after_each(H.reset)

  it("fd() and event_fd() are the same stable descriptor", function()
    local fd = dss.fd()
    assert.is_number(fd)
    assert.is_true(fd >= 0)
    assert.equal(fd, dss.fd())
    assert.equal(fd, dss.event_fd())
  end)

  it("the descriptor is readable exactly while work is queued", function()
    local obj = { getfd = function() return dss.fd() end }
    local r = socket.select({ obj }, nil, 0)
    assert.is_nil(r[obj])
    H.join(testlib.post(function() end, 3, 1))
    r = socket.select({ obj }, nil, 0)
    assert.is_truthy(r[obj])
    dss.dispatch()
    r = socket.select({ obj }, nil, 0)
    assert.is_nil(r[obj])
  end)

  it("wait(0) and wait(t) return false on an empty queue, after t", function()
    assert.is_false(dss.wait(0))
    local t0 = socket.gettime()
    assert.is_false(dss.wait(0.05))
    assert.is_true(socket.gettime() - t0 >= 0.04)
  end)

  it("wait() returns true once work is pending", function()
    local job = testlib.post(function() end, 1, 1)
    assert.is_true(dss.wait())
    assert.is_true(dss.wait(0))
    assert.equal(1, dss.dispatch())
    H.join(job)
    assert.is_false(dss.wait(0))
  end)

  it("wait() is not ended by a producer finishing", function()
    -- a finished job releases its keep-alive; wait must keep waiting
    local first = testlib.post(function() end, 1, 1)
    H.join(first)
    dss.dispatch()
    local job = testlib.call(function() return "late" end)
    assert.is_true(dss.wait())
    dss.dispatch()
    H.join(job)
    assert.equal("replied", (job:result()))
  end)

  it("while wait(0) do dispatch() end never hangs", function()
    for round = 1, 20 do
      local job = testlib.post(function() end, 50, 2)
      H.join(job)
      local loops = 0
      while dss.wait(0) do
        dss.dispatch()
        loops = loops + 1
        assert.is_true(loops < 1000, "stale wake-up in round " .. round)
      end
      assert.equal(0, dss.queuesize())
    end
  end)

  it("wait_events(usec) waits in microseconds and returns a boolean", function()
    local t0 = socket.gettime()
    assert.is_false(dss.wait_events(50000))
    assert.is_true(socket.gettime() - t0 >= 0.04)
    local job = testlib.post(function() end, 1, 1)
    assert.is_true(dss.wait_events())
    assert.is_true(dss.wait_events(0))
    dss.dispatch()
    H.join(job)
  end)

  it("yield(usec) returns 0 after the timeout when nothing comes", function()
    local t0 = socket.gettime()
    assert.equal(0, dss.yield(50000))
    assert.is_true(socket.gettime() - t0 >= 0.04)
  end)

  it("yield() lets a waiting thread in: its handler runs, its reply comes back", function()
    local job = testlib.call(function(a) return a .. "!" end, nil, "hi")
    assert.is_true(dss.yield() >= 1)
    H.join(job)
    assert.same({ "replied", { "hi!", n = 1 } }, { job:result() })
  end)

  it("yield(usec) runs what is pending and returns the count", function()
    H.join(testlib.post(function() end, 7, 1))
    assert.equal(7, dss.yield(1000))
  end)
end)
