-- darksidesync.states: Lua states on their own native threads, copied
-- values both ways through darksidesync's queues, join, calls with
-- timeouts and would-deadlock detection, close of a parent.
local dss = require "darksidesync"
local states = require "darksidesync.states"
local H = require "helper"

-- Waits until the spawned states' threads are back to `n`.
local function until_count(n)
  H.until_true(function() return states.count() == n end, function()
    if dss.wait(0.01) then dss.dispatch() end
  end, "states.count() == " .. n)
end

describe("darksidesync.states", function()
  -- Every spec ends the states it started.
  local baseline = 0
  before_each(function()
    H.reset()
    until_count(baseline)
  end)
  after_each(H.reset)

  describe("spawn and join", function()
    it("returns the chunk's results: spawn('return 6 * ...', 7):join() is 42", function()
      assert.equal(42, states.spawn("return 6 * ...", 7):join())
    end)

    it("passes arguments and results with nils, nested tables and strings", function()
      local h = states.spawn([[
        local a, b, c, t = ...
        return select("#", ...), a, b, c, t.x.y, t[1], "ü\0z", { k = { 1, 2, { 3 } } }
      ]], nil, true, 2.5, { x = { y = "deep" }, "one" })
      local n, a, b, c, y, one, s, t = h:join(H.PATIENCE)
      assert.equal(4, n)
      assert.is_nil(a)
      assert.is_true(b)
      assert.equal(2.5, c)
      assert.equal("deep", y)
      assert.equal("one", one)
      assert.equal("ü\0z", s)
      assert.same({ k = { 1, 2, { 3 } } }, t)
      -- a second join gives the same results
      assert.equal(4, (h:join()))
    end)

    it("runs a file with spawnfile", function()
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write("local x = ... return x + 1, debug.getinfo(1, 'S').source\n")
      f:close()
      local r, source = states.spawnfile(path, 41):join(H.PATIENCE)
      os.remove(path)
      assert.equal(42, r)
      assert.equal("@" .. path, source)
    end)

    it("gives the child the same package.path and cpath, darksidesync preloaded", function()
      local path, cpath, v, has = states.spawn([[
        local dss = require "darksidesync"
        return package.path, package.cpath, dss._VERSION,
          package.preload["darksidesync.states"] ~= nil
      ]]):join(H.PATIENCE)
      assert.equal(package.path, path)
      assert.equal(package.cpath, cpath)
      assert.equal(dss._VERSION, v)
      assert.is_true(has)
    end)

    it("tells each state its id and its parent's", function()
      local h = states.spawn([[
        local states = require "darksidesync.states"
        return states.id, states.parent:id()
      ]])
      local id, parent = h:join(H.PATIENCE)
      assert.equal(h:id(), id)
      assert.equal(states.id, parent)
      assert.are_not.equal(states.id, id)
      assert.is_nil(states.parent) -- the spec's state is a root
    end)

    it("returns nil and the error with its traceback when the chunk fails", function()
      local r, err = states.spawn([[
        local function inner() error("boom") end
        inner()
      ]]):join(H.PATIENCE)
      assert.is_nil(r)
      assert.matches("darksidesync.states.spawn:1: boom", err, 1, true)
      assert.matches("stack traceback:", err, 1, true)
      assert.matches("'inner'", err, 1, true)
      assert.not_matches("xpcall", err, 1, true) -- the runner's frames are cut
    end)

    it("reports an error value that is not a string through tostring", function()
      local r, err = states.spawn("error(setmetatable({}, { __tostring = function() return 'an object' end }))")
        :join(H.PATIENCE)
      assert.is_nil(r)
      assert.matches("^an object", err)
    end)

    it("calls onexit in the parent with the results or the error", function()
      local got = {}
      local ok_h = states.spawn("return 'fine', { n = 1 }")
      ok_h:onexit(function(...) got.ok = { ... } end)
      local bad_h = states.spawn("error('bad end', 0)")
      bad_h:onexit(function(...) got.bad = { ... } end)
      H.dispatch_until(function() return got.ok and got.bad end, "both exits")
      assert.same({ true, "fine", { n = 1 } }, got.ok)
      assert.is_false(got.bad[1])
      assert.matches("^bad end\nstack traceback:", got.bad[2])
      local ok, err = pcall(ok_h.onexit, ok_h, 42)
      assert.is_false(ok)
      assert.equal("darksidesync.states: onexit: expected a function or nil, got number", err)
    end)

    it("join with a timeout returns nil, 'timeout' while the child runs", function()
      local h = states.spawn([[require("darksidesync").run() return "ended"]])
      local r, why = h:join(0.05)
      assert.is_nil(r)
      assert.equal("timeout", why)
      -- the parent's hold keeps the child's run() waiting until close()
      assert.is_true(h:close())
      assert.is_false(h:close())
      assert.equal("ended", h:join(H.PATIENCE))
    end)

    it("joins a child whose exit waits for room in the joining state's queue", function()
      dss.setcapacity(4)
      local h = states.spawn([[
        local states = require "darksidesync.states"
        for i = 1, 4 do states.parent:post(i) end -- the parent's queue is full
        return "posted"
      ]])
      local got = 0
      h:onmessage(function() got = got + 1 end)
      assert.equal("posted", h:join(H.PATIENCE))
      H.dispatch_until(function() return got == 4 and states.count() == baseline end, "the exit")
    end)

    it("raises at once on a syntax error or a bad chunk", function()
      local ok, err = pcall(states.spawn, "return (")
      assert.is_false(ok)
      assert.matches("^darksidesync.states: spawn: ", err)
      ok, err = pcall(states.spawn, 42)
      assert.is_false(ok)
      assert.equal("darksidesync.states: spawn: expected the chunk's source (a string), got number", err)
      ok, err = pcall(states.spawnfile, "/nonexistent/x.lua")
      assert.is_false(ok)
      assert.matches("^darksidesync.states: spawnfile: cannot read /nonexistent/x.lua", err)
      local h = states.spawn("return 1")
      ok, err = pcall(h.join, h, -1)
      assert.is_false(ok)
      assert.equal("darksidesync.states: join: the timeout must be a non-negative number of seconds", err)
      ok, err = pcall(h.join, h, "soon")
      assert.is_false(ok)
      assert.equal("darksidesync.states: join: expected a number of seconds, got string", err)
      assert.equal(1, h:join(H.PATIENCE))
    end)
  end)

  describe("messages", function()
    it("delivers every post exactly once, in order, both ways (through a full queue)", function()
      local N = 20000
      local h = states.spawn([[
        local dss = require "darksidesync"
        local states = require "darksidesync.states"
        local N = ...
        dss.setcapacity(16) -- the parent's posts wait for room
        local got, next_expected, sum = 0, 1, 0
        states.parent:onmessage(function(i)
          assert(i == next_expected, "out of order")
          next_expected = i + 1
          got = got + 1
          sum = sum + i
          if got == N then dss.stop() end
        end)
        assert(states.parent:post("ready"))
        dss.run()
        for i = 1, N do assert(states.parent:post(i)) end
        return got, sum
      ]], N)
      local ready, got, order_ok, sum = false, 0, true, 0
      h:onmessage(function(i)
        if i == "ready" then ready = true return end
        if i ~= got + 1 then order_ok = false end
        got = got + 1
        sum = sum + i
      end)
      H.dispatch_until(function() return ready end, "the child's ready")
      for i = 1, N do assert(h:post(i)) end
      H.dispatch_until(function() return got == N end, "the child's posts")
      local cgot, csum = h:join(H.PATIENCE)
      assert.equal(N, cgot)
      assert.equal(N * (N + 1) / 2, csum)
      assert.is_true(order_ok)
      assert.equal(N * (N + 1) / 2, sum)
      H.dispatch_until(function() return dss.queuesize() == 0 end, "an empty queue")
      assert.equal(N, got) -- nothing more arrived
    end)

    it("answers calls both ways with the handler's return values", function()
      local h = states.spawn([[
        local dss = require "darksidesync"
        local states = require "darksidesync.states"
        local total = 0
        for i = 1, 200 do
          local sq, tag = states.parent:call("square", i)
          assert(sq == i * i and tag == "sq")
          total = total + sq
        end
        states.parent:onmessage(function(cmd, a, b)
          if cmd == "add" then return a + b, { a = a, b = b } end
          if cmd == "stop" then dss.stop() end
        end)
        states.parent:post("serving")
        dss.run()
        return total
      ]])
      local serving = false
      h:onmessage(function(cmd, i)
        if cmd == "square" then return i * i, "sq" end
        if cmd == "serving" then serving = true end
      end)
      H.dispatch_until(function() return serving end, "the child's calls")
      for i = 1, 200 do
        local s, t = h:call("add", i, 1)
        assert.equal(i + 1, s)
        assert.same({ a = i, b = 1 }, t)
      end
      assert(h:post("stop"))
      local total = h:join(H.PATIENCE)
      assert.equal(200 * 201 * 401 / 6, total)
    end)

    it("raises the handler's error in the caller", function()
      local h = states.spawn([[
        local dss = require "darksidesync"
        local states = require "darksidesync.states"
        states.parent:onmessage(function(x)
          if x == "fail" then error("no such thing", 0) end
          dss.stop()
        end)
        states.parent:post("up")
        dss.run()
      ]])
      local up = false
      h:onmessage(function() up = true end)
      H.dispatch_until(function() return up end, "the child")
      local ok, err = pcall(h.call, h, "fail")
      assert.is_false(ok)
      assert.equal("darksidesync.states: call: handler error: no such thing", err)
      h:post("stop")
      h:join(H.PATIENCE)
    end)

    it("a call whose reply() object the handler dropped is 'cancelled', not 'closed'", function()
      local h = states.spawn([[
        local dss = require "darksidesync"
        local states = require "darksidesync.states"
        states.parent:onmessage(function(x)
          if x == "drop" then
            do local _ = dss.reply() end  -- taken, never called
            collectgarbage(); collectgarbage()
            return
          end
          dss.stop()
        end)
        states.parent:post("up")
        dss.run()
      ]])
      finally(function()
        h:post("stop")
        h:join(H.PATIENCE)
      end)
      local up = false
      h:onmessage(function() up = true end)
      H.dispatch_until(function() return up end, "the child")
      local ok, err = pcall(h.call, h, "drop")
      assert.is_false(ok)
      assert.equal("darksidesync.states: call: cancelled", err)
    end)

    it("reports a message to a state with no handler for its sender", function()
      local h = states.spawn([[
        local states = require "darksidesync.states"
        return pcall(states.parent.call, states.parent, "anyone?")
      ]])
      local r
      H.dispatch_until(function()
        local a, b = h:join(0)
        if a ~= nil then r = { a, b } end
        return r ~= nil
      end, "the child's end")
      assert.is_false(r[1])
      assert.matches("handler error: darksidesync.states: a message from state " .. h:id()
        .. " arrived but no onmessage handler is set for it", r[2], 1, true)
    end)

    it("calltimeout raises 'timeout' when the other state does not dispatch", function()
      local h = states.spawn([[
        local states = require "darksidesync.states"
        -- busy joining its own child for a while: no dispatching here
        local g = states.spawn("require('darksidesync').run()")
        g:join(0.5)
        return "done"
      ]])
      local ok, err = pcall(h.calltimeout, h, 0.05, "are you there?")
      assert.is_false(ok)
      assert.equal("darksidesync.states: calltimeout: timeout", err)
      assert.equal("done", h:join(H.PATIENCE))
      -- the unanswered call died with the child's state
      local ok2, err2 = pcall(h.call, h, "again")
      assert.is_false(ok2)
      assert.equal("darksidesync.states: call: closed", err2)
      local r, why = h:post("late")
      assert.is_nil(r)
      assert.equal("closed", why)
    end)

    it("refuses a join or call that would deadlock, instead of hanging", function()
      local h = states.spawn([[
        local states = require "darksidesync.states"
        return states.parent:call("wait for me")
      ]])
      h:onmessage(function(x) return "answered " .. x end)
      -- the child's call is in our queue: it blocks until we dispatch
      H.until_true(function() return dss.wait(0.05) end, nil, "the child's call")
      local r, why = h:join()
      assert.is_nil(r)
      assert.equal("would deadlock", why)
      local ok, err = pcall(h.call, h, "you first")
      assert.is_false(ok)
      assert.equal("darksidesync.states: call: would deadlock", err)
      dss.dispatch()
      assert.equal("answered wait for me", h:join(H.PATIENCE))
    end)

    it("refuses a call back from a handler whose caller waits for it", function()
      local h = states.spawn([[
        local dss = require "darksidesync"
        local states = require "darksidesync.states"
        states.parent:onmessage(function(x)
          -- the parent is blocked in its call to us: calling it back would hang
          local ok, err = pcall(states.parent.call, states.parent, "back")
          dss.stop()
          return x, ok, err
        end)
        dss.run()
      ]])
      h:onmessage(function() return "never reached" end)
      local x, ok, err = h:call("go")
      assert.equal("go", x)
      assert.is_false(ok)
      assert.equal("darksidesync.states: call: would deadlock", err)
      h:join(H.PATIENCE)
    end)

    it("refuses a post that closes a cycle of full queues; dispatching then posting again delivers", function()
      -- Queues of one item: the child posts "a" (our queue is full) and
      -- "b" (waits for us); we post "x" (its queue is full) and "y" (waits
      -- for it). Both sides waiting would never end: exactly one of the
      -- two posts is refused, and its side does what doc/states.md says
      -- (dispatch what arrived, post again).
      dss.setcapacity(1)
      local h = states.spawn([[
        local dss = require "darksidesync"
        local states = require "darksidesync.states"
        local H = require "helper"
        dss.setcapacity(1)
        local got = {}
        states.parent:onmessage(function(x) got[#got + 1] = x end)
        local refused = 0
        local function post(x)
          H.until_true(function()
            local ok, why = states.parent:post(x)
            if ok then return true end
            assert(why == "would deadlock", why)
            refused = refused + 1
            dss.dispatch()
          end, nil, "the child's post")
        end
        post("a")
        post("b")
        H.until_true(function() return #got == 2 end, function()
          if dss.wait(0.05) then dss.dispatch() end
        end, "x and y")
        return refused, got[1], got[2]
      ]])
      local got = {}
      h:onmessage(function(x) got[#got + 1] = x end)
      H.until_true(function() return dss.queuesize() == 1 end, function()
        dss.wait(0.01)
      end, "the child's first post")
      local refused = 0
      local function post(x)
        H.until_true(function()
          local ok, why = h:post(x)
          if ok then return true end
          assert.equal("would deadlock", why)
          refused = refused + 1
          dss.dispatch()
        end, nil, "our post")
      end
      post("x")
      post("y")
      H.dispatch_until(function() return #got == 2 end, "a and b")
      local child_refused, x, y = h:join(H.PATIENCE)
      assert.same({ "a", "b" }, got)
      assert.equal("x", x)
      assert.equal("y", y)
      assert.equal(1, refused + child_refused)
    end)

    it("a parent and two children exchange 2,000 posts and calls each way through queues of 4", function()
      -- Every side sends without dispatching between sends, so the
      -- queues fill up and cycles of full queues form again and again;
      -- each is refused ("would deadlock") at once and its side
      -- dispatches, then sends again (doc/states.md). Each side's watchdog
      -- gives its whole exchange H.PATIENCE: with a refusal taking 100 ms
      -- this did not finish.
      local N, CAP = 2000, 4
      local SENDER = [[
        local dss = require "darksidesync"
        local H = require "helper"
        -- Sends message i to `peer`: a post when i is odd, a call
        -- (answered with -i) when even; a send refused because it would
        -- deadlock is sent again after a dispatch. Returns the refusals.
        local deadline = os.time() + H.PATIENCE
        return function(peer, i)
          local refused = 0
          while true do
            if os.time() > deadline then
              error("gave up: the exchange took more than " .. H.PATIENCE .. " s (sending " .. i .. ")")
            end
            local ok, why
            if i % 2 == 1 then
              ok, why = peer:post("post", i)
            else
              local okc, r = pcall(peer.call, peer, "call", i)
              if okc then assert(r == -i, "a wrong reply") end
              ok, why = okc, r
            end
            if ok then return refused end
            assert(tostring(why):find("would deadlock", 1, true), why)
            refused = refused + 1
            dss.dispatch()
          end
        end
      ]]
      -- Counts what one peer sends: in order, calls answered with -i.
      local function receiver()
        local r = { got = 0, in_order = true }
        function r.handler(kind, i)
          if i ~= r.got + 1 then r.in_order = false end
          r.got = r.got + 1
          if kind == "call" then return -i end
        end
        return r
      end
      dss.setcapacity(CAP)
      local kids = {}
      for k = 1, 2 do
        local h = states.spawn([[
          local dss = require "darksidesync"
          local states = require "darksidesync.states"
          local H = require "helper"
          local N, CAP, SENDER = ...
          local send = assert((loadstring or load)(SENDER))()
          dss.setcapacity(CAP)
          local got, in_order = 0, true
          states.parent:onmessage(function(kind, i)
            if i ~= got + 1 then in_order = false end
            got = got + 1
            if kind == "call" then return -i end
          end)
          local refused = 0
          for i = 1, N do refused = refused + send(states.parent, i) end
          H.until_true(function() return got == N end, function()
            if dss.wait(0.05) then dss.dispatch() end
          end, "the parent's messages")
          return got, in_order, refused
        ]], N, CAP, SENDER)
        local r = receiver()
        h:onmessage(r.handler)
        kids[k] = { h = h, r = r }
      end
      local send = assert((loadstring or load)(SENDER))()
      local refused = 0
      for i = 1, N do
        for k = 1, 2 do refused = refused + send(kids[k].h, i) end
      end
      H.dispatch_until(function()
        return kids[1].r.got == N and kids[2].r.got == N
      end, "the children's messages")
      local child_refused = 0
      for k = 1, 2 do
        local got, in_order, n = kids[k].h:join(H.PATIENCE)
        assert(got ~= nil, "child " .. k .. ": " .. tostring(in_order))
        assert.equal(N, got)
        assert.is_true(in_order)
        assert.equal(N, kids[k].r.got)
        assert.is_true(kids[k].r.in_order)
        child_refused = child_refused + n
      end
      -- the cycles did form (the test exercises the refusal)
      assert.is_true(refused + child_refused > 0)
    end)

    it("refuses values that cannot be copied, at the sender", function()
      local h = states.spawn([[
        require("darksidesync.states").parent:onmessage(function() end)
        require("darksidesync").run()
      ]])
      local cyclic = {}
      cyclic.self = { cyclic }
      local cases = {
        { print, "function" },
        { io.stdout, "userdata" },
        { coroutine.create(function() end), "thread" },
        { { nested = { f = print } }, "function" },
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(h.post, h, 1, c[1])
        assert.is_false(ok)
        assert.equal("darksidesync.states: post: cannot copy a " .. c[2]
          .. " to another Lua state (only nil, booleans, numbers, strings and tables of them)", err)
        ok, err = pcall(h.call, h, c[1])
        assert.is_false(ok)
        assert.matches("^darksidesync.states: call: cannot copy a " .. c[2], err)
        ok, err = pcall(states.spawn, "return", c[1])
        assert.is_false(ok)
        assert.matches("^darksidesync.states: spawn: cannot copy a " .. c[2], err)
      end
      local ok, err = pcall(h.post, h, cyclic)
      assert.is_false(ok)
      assert.equal("darksidesync.states: post: cannot copy a table that contains itself (a cycle)", err)
      -- a table reached twice without a cycle is copied twice
      local shared = { 1 }
      assert.is_true(h:post({ a = shared, b = shared }))
      h:close()
      h:join(H.PATIENCE)
      -- results that cannot be copied are the child's error
      local r, why = states.spawn("return print"):join(H.PATIENCE)
      assert.is_nil(r)
      assert.matches("cannot copy a function", why, 1, true)
    end)

    it("raises on a handle method used without a handle", function()
      local h = states.spawn("return")
      local ok, err = pcall(h.post, 42)
      assert.is_false(ok)
      assert.equal("darksidesync.states: post: expected a state handle as self (use the colon syntax)", err)
      ok, err = pcall(h.onmessage, h, 42)
      assert.is_false(ok)
      assert.equal("darksidesync.states: onmessage: expected a function or nil, got number", err)
      h:join(H.PATIENCE)
    end)
  end)

  describe("close", function()
    it("a closing state stops and joins its running children", function()
      -- The middle state returns with two children still running: one
      -- looping in Lua, one waiting in darksidesync.run() for messages.
      -- (LuaJIT runs no count hook inside compiled code, so there the
      -- looping child turns its JIT off; see doc/states.md.)
      local h = states.spawn([[
        local states = require "darksidesync.states"
        states.spawn("if jit then jit.off() end local n = 0 while true do n = n + 1 end")
        states.spawn("require('darksidesync').run()")
        return states.count()
      ]])
      local inside = h:join(H.PATIENCE)
      assert.is_true(inside >= baseline + 3)
      until_count(baseline) -- all three threads end
    end)

    it("a child whose parent closes before the child's chunk starts is still stopped (100 rounds)", function()
      -- The middle state returns at once, so its close often asks the
      -- looping child to stop before that child armed its interrupt; the
      -- request must not be lost (it was, about 1 round in 15, on 5.1).
      for round = 1, 100 do
        local h = states.spawn([[
          local states = require "darksidesync.states"
          states.spawn("if jit then jit.off() end local n = 0 while true do n = n + 1 end")
        ]])
        h:join(H.PATIENCE)
        until_count(baseline)
        assert.equal(baseline, states.count(), "round " .. round)
      end
    end)

    it("a child blocked calling its closing parent is released", function()
      local h = states.spawn([[
        local states = require "darksidesync.states"
        local c = states.spawn([=[
          local states = require "darksidesync.states"
          return pcall(states.parent.call, states.parent, "never answered")
        ]=])
        return "middle"
      ]])
      assert.equal("middle", h:join(H.PATIENCE))
      until_count(baseline)
    end)

    it("a main state closed at exit stops and joins its running children", function()
      -- A script of its own, run by this interpreter: its lua_close must
      -- neither hang nor crash with children waiting, looping and calling.
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write([[
        local states = require "darksidesync.states"
        local waiting = states.spawn("require('darksidesync').run()")
        local looping = states.spawn("if jit then jit.off() end while true do end")
        local calling = states.spawn("return require('darksidesync.states').parent:call('never answered')")
        print("started", states.count())
      ]])
      f:close()
      local p = assert(io.popen("timeout 60 " .. arg[-1] .. " " .. script .. " 2>&1; echo status=$?"))
      local out = p:read("*a")
      p:close()
      os.remove(script)
      assert.equal("started\t3\nstatus=0\n", out)
    end)

    it("a collected handle lets its child's run() end", function()
      local h = states.spawn([[require("darksidesync").run()]])
      h = nil
      collectgarbage()
      collectgarbage()
      -- the handle's hold is gone: the child's run() ends by itself
      until_count(baseline)
    end)
  end)
end)
