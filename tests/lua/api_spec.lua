-- The darksidesync Lua API: poll, dispatch, replies, error handling,
-- capacity and statistics, driven by real background threads.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"
local H = require "helper"

describe("darksidesync", function()
  before_each(H.reset)
  after_each(H.reset)

  it("has a version and the DSS 1.0 functions", function()
    assert.matches("^darksidesync %d+%.%d+", dss._VERSION)
    for _, name in ipairs { "poll", "queuesize", "getport", "setport" } do
      assert.is_function(dss[name])
    end
    assert.equal(dss, require "darksidesync")
  end)

  describe("poll()", function()
    it("returns -1 on an empty queue", function()
      assert.equal(-1, dss.poll())
      assert.equal(0, dss.queuesize())
    end)

    it("returns count, callback, args with args.n, oldest first", function()
      local cb = function() end
      H.join(testlib.post(cb, 3, 1))
      assert.equal(3, dss.queuesize())
      local count, callback, args = dss.poll()
      assert.equal(2, count)
      assert.equal(cb, callback)
      assert.same({ 1, 1, 1, n = 3 }, args)
      count, callback, args = dss.poll()
      assert.equal(1, count)
      assert.same({ 1, 2, 2, n = 3 }, args)
      assert.equal(0, (dss.poll()))
      assert.equal(-1, dss.poll())
    end)

    it("keeps nil arguments, counted in args.n", function()
      local job = testlib.call(function() end, nil, nil, "b", nil)
      H.until_true(function() return dss.queuesize() > 0 end, function() dss.wait(0.05) end)
      local count, _, args = dss.poll()
      assert.equal(0, count)
      assert.equal(4, args.n)
      assert.is_userdata(args[1])
      assert.is_nil(args[2])
      assert.equal("b", args[3])
      assert.is_nil(args[4])
      args[1]()
      H.join(job)
    end)

    it("gives a reply userdata that answers once", function()
      local job = testlib.call(function() end, nil, "q")
      H.until_true(function() return dss.queuesize() > 0 end, function() dss.wait(0.05) end)
      local _, _, args = dss.poll()
      local reply = args[1]
      assert.equal("q", args[2])
      assert.equal(0, select("#", reply("a", nil, 3)))
      H.join(job)
      local status, values = job:result()
      assert.equal("replied", status)
      assert.same({ "a", nil, 3, n = 3 }, values)
      -- a second call does nothing and returns nothing
      assert.equal(0, select("#", reply("again")))
      assert.same({ "a", nil, 3, n = 3 }, select(2, job:result()))
    end)

    it("keeps its metatable hidden and its metamethods safe on other values", function()
      local job = testlib.call(function() end)
      H.until_true(function() return dss.queuesize() > 0 end, function() dss.wait(0.05) end)
      local _, _, args = dss.poll()
      local reply = args[1]
      assert.equal("darksidesync.reply", getmetatable(reply))
      local mt = debug.getmetatable(reply)
      local other = io.stdout
      local ok, err = pcall(mt.__call, other, 1)
      assert.is_false(ok)
      assert.equal("darksidesync.reply: expected a reply object", tostring(err):match("darksidesync%.reply: expected a reply object"))
      mt.__gc(other) -- a foreign userdata is left alone
      assert.equal(io.type(other), "file")
      assert.equal("darksidesync.reply (pending)", tostring(reply))
      reply("ok")
      H.join(job)
      assert.equal("replied", (job:result()))
    end)

    it("releases the waiter when the reply userdata is collected uncalled", function()
      local job = testlib.call(function() end)
      H.until_true(function() return dss.queuesize() > 0 end, function() dss.wait(0.05) end)
      do
        local _, _, args = dss.poll()
        assert.is_userdata(args[1])
      end
      H.until_true(function() return job:done() end, function() collectgarbage() collectgarbage() end, "garbage release")
      assert.equal("cancelled", (job:result()))
    end)
  end)

  describe("dispatch()", function()
    it("keeps FIFO order across producers", function()
      local seen, last_seq = {}, {}
      local ok = true
      local cb = function(producer, seq, ticket)
        seen[#seen + 1] = ticket
        if (last_seq[producer] or 0) + 1 ~= seq then ok = false end
        last_seq[producer] = seq
      end
      local job = testlib.post(cb, 500, 4)
      H.dispatch_until(function() return #seen == 2000 end, "2000 items")
      H.join(job)
      assert.is_true(ok, "per-producer order broken")
      for i = 1, 2000 do
        if seen[i] ~= i then error("item " .. i .. " arrived as ticket " .. tostring(seen[i])) end
      end
      assert.same({ posted = 2000, refused = 0, errors = {} }, job:result())
    end)

    it("runs at most max items and returns the number run", function()
      local n = 0
      H.join(testlib.post(function() n = n + 1 end, 10, 1))
      assert.equal(0, dss.dispatch(0))
      assert.equal(3, dss.dispatch(3))
      assert.equal(3, n)
      assert.equal(7, dss.queuesize())
      assert.equal(7, dss.dispatch())
      assert.equal(0, dss.dispatch())
      assert.equal(10, n)
    end)

    it("turns callback return values into the reply", function()
      local job = testlib.call(function(a, b) return a * b, nil, "done" end, nil, 6, 7)
      H.dispatch_until(function() return job:done() end)
      local status, values = job:result()
      assert.equal("replied", status)
      assert.same({ 42, nil, "done", n = 3 }, values)
    end)

    it("turns a callback error into the caller's error text", function()
      local job = testlib.call(function() error("no such thing") end)
      H.dispatch_until(function() return job:done() end)
      local status, text = job:result()
      assert.equal("error", status)
      assert.matches("no such thing", text)
    end)

    it("sends fire-and-forget errors to the error handler without losing items", function()
      local errors = H.collect_errors()
      local ran = {}
      local job = testlib.post(function(_, seq)
        ran[#ran + 1] = seq
        if seq % 3 == 0 then error("bad " .. seq) end
      end, 9, 1)
      H.dispatch_until(function() return #ran == 9 end)
      H.join(job)
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, ran)
      assert.equal(3, #errors)
      assert.matches("bad 3", errors[1])
      assert.matches("bad 9", errors[3])
    end)

    it("runs the error handler in the failing callback's context", function()
      local trace
      dss.seterrorhandler(function(e) trace = debug.traceback(e) end)
      local function failing_callback() error("deep") end
      H.join(testlib.post(failing_callback, 1, 1))
      assert.equal(1, dss.dispatch())
      assert.matches("deep", trace)
      -- the handler ran before the stack unwound: error() is still on it
      assert.matches("in function 'error'", trace)
    end)

    it("survives an error handler that fails", function()
      dss.seterrorhandler(function() error("handler broke") end)
      local n = 0
      H.join(testlib.post(function() n = n + 1 error("x") end, 3, 1))
      assert.equal(3, dss.dispatch())
      assert.equal(3, n)
    end)

    it("seterrorhandler returns the previous handler and nil restores the default", function()
      local f = function() end
      assert.is_nil(dss.seterrorhandler(f))
      assert.equal(f, dss.seterrorhandler(nil))
      assert.is_nil(dss.seterrorhandler(nil))
    end)

    it("lets a callback poll the next item in order", function()
      local order = {}
      H.join(testlib.post(function(_, seq)
        order[#order + 1] = seq
        if seq == 1 then
          local _, _, args = dss.poll()
          order[#order + 1] = "polled " .. args[2]
        end
      end, 3, 1))
      dss.dispatch()
      assert.same({ 1, "polled 2", 3 }, order)
    end)

    it("refuses a blocking call from the Lua thread at once", function()
      assert.equal("would deadlock", testlib.callhere(function() end))
    end)
  end)

  describe("capacity", function()
    it("has a finite default and can be changed", function()
      assert.equal(65536, dss.capacity())
      assert.equal(65536, dss.setcapacity(4))
      assert.equal(4, dss.capacity())
    end)

    it("refuses posts on a full queue and counts them", function()
      dss.setcapacity(5)
      local before = dss.stats()
      local job = testlib.post(function() end, 8, 1, "try")
      H.join(job)
      local r = job:result()
      assert.equal(5, r.posted)
      assert.equal(3, r.refused)
      assert.same({ "full", "full", "full" }, r.errors)
      assert.equal(5, dss.queuesize())
      local after = dss.stats()
      assert.equal(3, after.refused - before.refused)
      assert.equal(after.refused, after.dropped, "the deprecated alias")
      assert.equal(5, after.depth)
    end)

    it("blocks producers on a full queue until there is room", function()
      dss.setcapacity(2)
      local n = 0
      local job = testlib.post(function() n = n + 1 end, 50, 2)
      H.dispatch_until(function() return n == 100 end)
      H.join(job)
      assert.equal(100, job:result().posted)
      assert.is_true(dss.stats().peak_depth >= 1)
    end)

    it("makes a non-waiting call fail with 'full'", function()
      dss.setcapacity(1)
      H.join(testlib.post(function() end, 1, 1))
      local job = testlib.call(function() end, { try = true })
      H.join(job)
      assert.equal("full", (job:result()))
    end)
  end)

  describe("stats()", function()
    it("counts posts, deliveries, replies and wake-ups", function()
      local s0 = dss.stats()
      for _, k in ipairs { "posted", "delivered", "dropped", "cancelled", "replies", "peak_depth", "wakeups", "depth", "capacity" } do
        assert.is_number(s0[k], k)
      end
      assert.equal(0, s0.depth, "precondition: nothing queued")
      H.join(testlib.post(function() end, 10, 1))
      local burst = dss.stats()
      assert.equal(10, burst.depth)
      assert.equal(1, burst.wakeups - s0.wakeups, "a burst of 10 costs one wake-up")
      local job = testlib.call(function() return 1 end)
      H.dispatch_until(function() return job:done() end)
      dss.dispatch()
      local s1 = dss.stats()
      assert.equal(11, s1.posted - s0.posted)
      assert.equal(11, s1.delivered - s0.delivered)
      assert.equal(1, s1.replies - s0.replies)
      assert.equal(0, s1.depth)
    end)

    local function identity_holds(s)
      return s.posted == s.delivered + s.cancelled + s.depth
    end

    it("keeps posted == delivered + cancelled + depth after one poll() of 1000", function()
      H.join(testlib.post(function() end, 1000, 1))
      local s0 = dss.stats()
      assert.is_true(identity_holds(s0), "before poll")
      assert.is_true(dss.poll() ~= -1)
      local s = dss.stats()
      assert.is_true(identity_holds(s),
        ("posted %d, delivered %d, cancelled %d, depth %d"):format(s.posted, s.delivered, s.cancelled, s.depth))
      assert.equal(999, s.depth)
      assert.equal(1, s.delivered - s0.delivered)
      assert.equal(999, dss.queuesize())
    end)

    it("counts items drained into the local batch and then unregistered as cancelled", function()
      H.join(testlib.post(function() end, 1000, 1))
      local s0 = dss.stats()
      assert.is_true(dss.poll() ~= -1) -- the rest wait, partly in the local batch
      testlib.reset() -- unregisters: none of the 999 may run
      local s = dss.stats()
      assert.is_true(identity_holds(s),
        ("posted %d, delivered %d, cancelled %d, depth %d"):format(s.posted, s.delivered, s.cancelled, s.depth))
      assert.equal(1, s.delivered - s0.delivered)
      assert.equal(999, s.cancelled - s0.cancelled)
      assert.equal(0, s.depth)
      assert.equal(-1, dss.poll())
    end)

    it("keeps the identity in every snapshot under concurrent producers", function()
      local job = testlib.post(function() end, 5000, 4)
      local snapshots, bad, first_bad = 0, 0, nil
      while not job:done() or dss.queuesize() > 0 do
        for _ = 1, 10 do
          local s = dss.stats()
          snapshots = snapshots + 1
          if not identity_holds(s) then
            bad = bad + 1
            first_bad = first_bad or ("posted %d, delivered %d, cancelled %d, depth %d")
              :format(s.posted, s.delivered, s.cancelled, s.depth)
          end
        end
        if snapshots % 20 == 0 then dss.dispatch(50) else dss.poll() end
      end
      assert.is_true(snapshots >= 2000, "snapshots: " .. snapshots)
      assert.equal(0, bad, first_bad)
    end)

    it("counts items cancelled when their library unregisters", function()
      local s0 = dss.stats()
      H.join(testlib.post(function() end, 4, 1))
      local job = testlib.call(function() end)
      H.until_true(function() return dss.queuesize() == 5 end, function() dss.wait(0.05) end)
      testlib.reset()
      H.join(job)
      assert.equal("cancelled", (job:result()))
      assert.equal(0, dss.queuesize())
      assert.equal(5, dss.stats().cancelled - s0.cancelled)
    end)
  end)

  describe("run() / stop()", function()
    it("returns when no library keeps it alive and nothing is queued", function()
      local n = 0
      local job = testlib.post(function() n = n + 1 end, 100, 2)
      local ran = dss.run()
      H.join(job)
      -- run() may return before the threads start if none had its
      -- keep-alive yet; the testlib takes them before returning the job.
      assert.equal(200, n)
      assert.equal(200, ran)
    end)

    it("returns when stop() is called from a callback", function()
      local n = 0
      local job = testlib.post(function() n = n + 1 if n == 5 then assert.is_true(dss.stop()) end end, 1000, 1)
      dss.run()
      assert.is_true(n >= 5)
      H.dispatch_until(function() return job:done() and dss.queuesize() == 0 end)
      assert.equal(1000, n)
      assert.is_false(dss.stop())
    end)

    it("returns right after the callback that called stop(), leaving the rest queued", function()
      local n = 0
      H.join(testlib.post(function() n = n + 1 if n == 3 then dss.stop() end end, 10, 1))
      assert.equal(3, dss.run())
      assert.equal(3, n)
      assert.equal(7, dss.queuesize())
      assert.equal(7, dss.dispatch())
    end)

    it("returns after a failing callback whose error handler calls stop()", function()
      local n, errors = 0, {}
      dss.seterrorhandler(function(e) errors[#errors + 1] = tostring(e) dss.stop() end)
      H.join(testlib.post(function() n = n + 1 if n == 3 then error("third", 0) end end, 10, 1))
      assert.equal(3, dss.run())
      assert.same({ "third" }, errors)
      assert.equal(7, dss.queuesize())
    end)

    it("answers blocking calls while running", function()
      local job = testlib.call(function(x) return x + 1 end, nil, 1)
      dss.run()
      H.join(job)
      assert.same({ "replied", { 2, n = 1 } }, { job:result() })
    end)
  end)
end)
