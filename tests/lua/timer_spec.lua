-- darksidesync.timer: one-shot and repeating timers from one background
-- thread, callbacks on the Lua thread, keep-alive for run().
local dss = require "darksidesync"
local timer = require "darksidesync.timer"
local H = require "helper"

describe("darksidesync.timer", function()
  before_each(H.reset)
  after_each(H.reset)

  it("runs a one-shot timer once, on dispatch, with its handle", function()
    local calls, got = 0, nil
    local t = timer.after(0.01, function(h) calls = calls + 1; got = h end)
    assert.is_true(t:active())
    assert.equal(0, calls) -- never behind the Lua thread's back
    H.dispatch_until(function() return calls > 0 end, "the timer")
    assert.equal(1, calls)
    assert.equal(t, got)
    assert.is_false(t:active())
    assert.is_false(t:cancel())
  end)

  it("fires timers in deadline order", function()
    -- The deadlines are observed, not assumed: on a loaded machine the
    -- thread may stall between the two calls for longer than their gap.
    local order = {}
    local t0 = timer.now()
    timer.after(0.2, function() order[#order + 1] = "late" end)
    timer.after(0.01, function() order[#order + 1] = "early" end)
    local t1 = timer.now()
    H.dispatch_until(function() return #order == 2 end, "both timers")
    -- "early" is due by t1 + 0.01, "late" not before t0 + 0.2; only a
    -- stall of 190 ms between the calls could make them overlap.
    assert.is_true(t1 + 0.01 < t0 + 0.2, "the calls stalled; rerun")
    assert.same({ "early", "late" }, order)
  end)

  it("repeats until cancelled, and never fires after cancel()", function()
    local ticks = 0
    local r
    r = timer.every(0.005, function(h)
      assert.equal(r, h)
      ticks = ticks + 1
      if ticks == 3 then assert.is_true(h:cancel()) end
    end)
    H.dispatch_until(function() return ticks >= 3 end, "three ticks")
    assert.is_false(r:active())
    -- Dispatch a while longer: the count must not move.
    local t0 = timer.now()
    while timer.now() - t0 < 0.1 do if dss.wait(0.01) then dss.dispatch() end end
    assert.equal(3, ticks)
  end)

  it("takes an optional first delay for repeating timers", function()
    local ticks = 0
    local r = timer.every(3600, function() ticks = ticks + 1 end, 0)
    H.dispatch_until(function() return ticks == 1 end, "the first tick")
    assert.is_true(r:active())
    assert.is_true(r:cancel())
  end)

  it("cancels a pending one-shot timer", function()
    local fired = false
    local t = timer.after(0.02, function() fired = true end)
    assert.is_true(t:cancel())
    assert.is_false(t:active())
    local t0 = timer.now()
    while timer.now() - t0 < 0.1 do if dss.wait(0.01) then dss.dispatch() end end
    assert.is_false(fired)
  end)

  it("keeps run() going while a timer is live", function()
    local before = dss.stats().keep_alive
    local done = {}
    timer.after(0.02, function() done[#done + 1] = "a" end)
    local n = 0
    timer.every(0.01, function(h) n = n + 1; if n == 2 then h:cancel(); done[#done + 1] = "b" end end)
    assert.equal(before + 2, dss.stats().keep_alive)
    dss.run()
    table.sort(done)
    assert.same({ "a", "b" }, done)
    assert.equal(before, dss.stats().keep_alive)
  end)

  it("releases the keep-alive of a cancelled timer", function()
    local before = dss.stats().keep_alive
    local t = timer.after(3600, function() end)
    assert.equal(before + 1, dss.stats().keep_alive)
    t:cancel()
    assert.equal(before, dss.stats().keep_alive)
    dss.run() -- returns: nothing can arrive
  end)

  it("reports callback errors to the error handler and goes on", function()
    local errors = H.collect_errors()
    local ok = false
    timer.after(0, function() error("boom") end)
    timer.after(0.01, function() ok = true end)
    H.dispatch_until(function() return ok end, "the second timer")
    assert.equal(1, #errors)
    assert.matches("boom", errors[1])
  end)

  it("rejects bad arguments with clear errors", function()
    assert.has_error(function() timer.after("soon", print) end, "timer.after: seconds must be a number, got string")
    assert.has_error(function() timer.after(-1, print) end, "timer.after: seconds must be a non-negative number, got -1")
    assert.has_error(function() timer.after(1) end, "timer.after: callback must be a function, got no value")
    assert.has_error(function() timer.every(0, print) end, "timer.every: seconds must be a positive number, got 0")
    assert.has_error(function() timer.every(1, 42) end, "timer.every: callback must be a function, got number")
    local t = timer.after(3600, print)
    assert.has_error(function() t.cancel() end)
    t:cancel()
  end)

  it("has a monotonic clock", function()
    local a = timer.now()
    local b = timer.now()
    assert.is_number(a)
    assert.is_true(b >= a)
  end)
end)
