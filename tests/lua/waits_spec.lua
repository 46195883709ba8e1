-- Where the time goes: timing(), waits([library]). Items held back by a
-- sleep of known length must show at least that wait (a lower bound, never
-- an upper one); counts are the items taken to run.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"
local socket = require "socket"
local H = require "helper"

-- Seconds the items are held back before they run.
local HELD = 0.03

describe("timing", function()
  before_each(H.reset)
  after_each(H.reset)

  it("is off by default: waits() is nil", function()
    assert.is_false(dss.timing())
    H.join(testlib.post(function() end, 3, 1))
    dss.dispatch()
    assert.is_nil(dss.waits())
    assert.is_nil(dss.waits("darksidesync.testlib"))
  end)

  it("timing(on) returns the previous setting", function()
    assert.is_false(dss.timing(true))
    assert.is_true(dss.timing())
    assert.is_true(dss.timing(true))
    assert.is_true(dss.timing(false))
    assert.is_false(dss.timing())
    assert.has_error(function() dss.timing("yes") end,
      "darksidesync.timing: expected a boolean or nil, got string")
    assert.has_error(function() dss.waits(1) end,
      "darksidesync.waits: library must be a string (its registered name) or nil, got number")
  end)

  it("dispatch(): held items show at least the time they were held", function()
    dss.timing(true)
    local ran = 0
    H.join(testlib.post(function() ran = ran + 1 end, 5, 1))
    socket.sleep(HELD)
    assert.equal(5, dss.dispatch())
    local w = dss.waits()
    assert.equal(5, w.count)
    assert.is_true(w.p50 >= HELD, "p50 " .. w.p50)
    assert.is_true(w.p99 >= w.p50 and w.max >= w.p99, "quantiles out of order")
    assert.is_true(w.total >= 5 * HELD, "total " .. w.total)
    -- The library's items are all of them.
    local lib = dss.waits("darksidesync.testlib")
    assert.equal(5, lib.count)
    assert.equal(w.max, lib.max)
    assert.is_nil(dss.waits("no such library"))
  end)

  it("poll(): a wait ends when poll() hands the item over", function()
    dss.timing(true)
    H.join(testlib.post(function() end, 2, 1))
    local n = dss.poll()
    assert.equal(1, n)
    assert.equal(1, dss.waits().count)
    socket.sleep(HELD)
    dss.poll()
    local w = dss.waits()
    assert.equal(2, w.count)
    assert.is_true(w.max >= HELD, "max " .. w.max)
  end)

  it("counts only items posted while it is on, and starts afresh", function()
    H.join(testlib.post(function() end, 2, 1))
    dss.timing(true)
    H.join(testlib.post(function() end, 3, 1))
    assert.equal(5, dss.dispatch())
    assert.equal(3, dss.waits().count)
    dss.timing(false)
    assert.is_nil(dss.waits())
    dss.timing(true)
    assert.equal(0, dss.waits().count)
    assert.equal(0, dss.waits().max)
  end)
end)
