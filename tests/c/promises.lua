-- The C ABI's promises at its edges (issue 21), with the C utility
-- tests/c/promises.c:
--
--   lua5.4 tests/c/promises.lua DIR [ROUNDS]   (DIR has darksidesync.so, promises.so)
--
-- * every entry point, called from a finaliser that lua_close runs after
--   darksidesync's own, returns a code (the probe prints its verdict at
--   close; the caller checks for it);
-- * an unreg() from a worker never returns while a decoder/run of that
--   utility runs, and none starts afterwards (ROUNDS rounds per version);
-- * a decoder or run that raises: the error reaches the error handler
--   under dispatch(), the caller of poll(), and the process lives;
-- * the Lua-thread finalizer runs once, with the state, after the last item.
--
-- Plain Lua, one line per test, non-zero exit when one failed.

local dir = assert(arg[1], "usage: promises.lua DIR [ROUNDS]")
local rounds = tonumber(arg[2] or 5000)
package.cpath = dir .. "/?.so;" .. package.cpath

local p = require "promises"
p.probe_close()            -- before darksidesync: finalised after it
local dss = require "darksidesync"
p.bind()

local failed, passed = 0, 0
local function test(name, f)
    local ok, err = pcall(f)
    if ok then
        passed = passed + 1
        io.stderr:write("ok   ", name, "\n")
    else
        failed = failed + 1
        io.stderr:write("FAIL ", name, ": ", tostring(err), "\n")
    end
    dss.seterrorhandler(nil)
    pcall(dss.dispatch) -- what a failed test left (it may raise)
end

local function eq(a, b, what)
    if a ~= b then error((what or "value") .. ": expected " .. tostring(b) .. ", got " .. tostring(a), 2) end
end

-- Waits for `pred`, dispatching meanwhile; fails after `seconds`.
local function until_(pred, what, seconds)
    local deadline = os.time() + (seconds or 60)
    while not pred() do
        dss.wait(0.01)
        dss.dispatch()
        if os.time() > deadline then error("gave up waiting for " .. what, 2) end
    end
end

for _, api in ipairs({ 1, 2 }) do
    test(api .. "v0 unreg() from a worker waits for a running decoder/run; none starts after", function()
        local deadline = os.time() + 600
        for _ = 1, rounds do
            p.race_start(api, 50)
            local spins = 0
            while not p.race_done() do
                dss.dispatch()
                if os.time() > deadline then error("a round did not end") end
                -- Now and then a system call (a wait of at most 1 ms, cut
                -- short by a post) lets the worker run: valgrind runs one
                -- thread at a time, and a spinning one keeps it waiting.
                -- Only now and then: spinning is what makes the races.
                spins = spins + 1
                if spins % 256 == 0 then dss.wait(0.001) end
            end
            dss.dispatch()
        end
        local c = p.race_counts()
        io.stderr:write(string.format("     %d rounds: ran %d, cancelled %d, called after unreg() returned %d\n",
            rounds, c.ran, c.cancelled, c.after_dead))
        eq(c.after_dead, 0, "callbacks with a state after unreg() returned")
    end)
end

for _, api in ipairs({ 1, 2 }) do
    local what = api == 1 and "decoder" or "run"
    test(api .. "v0 " .. what .. " that raises: dispatch() hands the error to the handler and goes on", function()
        local seen = {}
        dss.seterrorhandler(function(e) seen[#seen + 1] = tostring(e) end)
        local before = p.raise_counts()
        eq(p.raise(api, "dispatch"), api == 1 and -100 or 0, "queued")
        eq(p.raise(api, "dispatch"), api == 1 and -100 or 0, "queued")
        local n = dss.dispatch()
        eq(n, 2, "items dispatch() counts")
        eq(#seen, 2, "errors handled")
        assert(seen[1]:find("promises: raised in dispatch", 1, true), "the handler got " .. seen[1])
        if api == 2 then
            local after = p.raise_counts()
            eq(after.freed_ok - before.freed_ok, 2, "free_fn(data, DSS2_OK) after a run that raised")
            eq(after.freed_other - before.freed_other, 0, "free_fn with another outcome")
        end
        -- and the state goes on
        eq(dss.queuesize(), 0, "queue")
    end)
    test(api .. "v0 " .. what .. "s that raise amid a run: FIFO, each error to the handler in its place, max counts them, empty stacks, unreg() from a thread returns", function()
        local log = {}
        local tops = {}
        promises_ran = function(i, top)
            log[#log + 1] = "o" .. i
            if top ~= 0 then tops[#tops + 1] = i .. ":" .. top end
        end
        local nested = 0
        dss.seterrorhandler(function(e)
            log[#log + 1] = "x" .. (tostring(e):match("promises: raised at (%d+)") or "?")
            -- The handler runs within the item, as for a callback's error.
            if pcall(dss.dispatch) then nested = nested + 1 end
        end)
        local before = p.raise_counts()
        eq(p.raise_mixed(api, "oxooxxo"), 0, "posts refused")
        eq(dss.dispatch(3), 3, "dispatch(3): an item that raised counts")
        eq(table.concat(log, " "), "o1 x2 o3", "the first three, in order")
        eq(dss.queuesize(), 4, "left")
        eq(dss.dispatch(), 4, "the rest")
        eq(table.concat(log, " "), "o1 x2 o3 o4 x5 x6 o7", "every item once, in order")
        eq(table.concat(tops, " "), "", "decoders/runs that did not start on an empty stack")
        eq(nested, 0, "dispatch() calls the handler could make")
        eq(p.raise_mixed(api, "xx"), 0, "posts refused")
        eq(dss.dispatch(), 2, "two that raise in a row")
        eq(table.concat(log, " ", 8), "x1 x2", "both errors handled")
        if api == 2 then
            local after = p.raise_counts()
            eq(after.freed_ok - before.freed_ok, 9, "free_fn(data, DSS2_OK), once per item")
            eq(after.freed_other - before.freed_other, 0, "free_fn with another outcome")
        end
        -- poll() too runs a decoder/run on an empty stack.
        eq(p.raise_mixed(api, "o"), 0, "post refused")
        local _, cb, args = dss.poll()
        cb((table.unpack or unpack)(args, 1, args.n))
        eq(log[#log], "o1", "polled")
        eq(table.concat(tops, " "), "", "a polled decoder/run that did not start on an empty stack")
        -- No running mark is left behind by the callbacks that raised.
        eq(p.raise_unreg_from_thread(api), true, "unreg() from another thread returned")
        promises_ran = nil
    end)
    test(api .. "v0 " .. what .. " that calls back into darksidesync under poll() and dispatch(): its data is not released under it", function()
        local seen, early = {}, {}
        promises_nested = function() seen[#seen + 1] = dss.queuesize() end
        promises_ran = function(i, top, released)
            if released then early[#early + 1] = i end
        end
        eq(p.raise_mixed(api, "nn"), 0, "posts refused")
        local _, cb, args = dss.poll()
        cb((table.unpack or unpack)(args, 1, args.n))
        eq(dss.dispatch(), 1, "dispatched")
        eq(#seen, 2, "nested calls made")
        eq(table.concat(early, " "), "", "items whose data was released while they ran")
        promises_nested, promises_ran = nil, nil
    end)
    test(api .. "v0 " .. what .. " that raises: poll() returns a callback that raises it", function()
        local before = p.raise_counts()
        p.raise(api, "poll")
        local _, cb, args = dss.poll()
        local ok, err = pcall(cb, (table.unpack or unpack)(args, 1, args.n))
        eq(ok, false, "the callback raised")
        assert(tostring(err):find("promises: raised in poll", 1, true), "it raised " .. tostring(err))
        eq(dss.poll(), -1, "nothing left")
        if api == 2 then
            eq(p.raise_counts().freed_ok - before.freed_ok, 1, "free_fn(data, DSS2_OK)")
        end
    end)
end

test("2v0 finalizer: once, on the Lua thread with the state, after the last item; unrefs", function()
    assert(p.has_finalizer(), "DSS API 2v0 has no setfinalizer")
    local calls = 0
    for _ = 1, 20 do
        p.finalizer_start(function() calls = calls + 1 end, 100)
        local c
        until_(function()
            c = p.finalizer_counts()
            return c.finalized > 0 and c.worker_done
        end, "the finalizer and the worker", 60)
        eq(c.finalized, 1, "finalizer calls")
        eq(c.with_state, 1, "finalizer given a state")
        eq(c.after_items, 1, "after unreg() began and every item was freed (right handle and ud)")
        eq(c.unreffed, 1, "it unreffed its callback")
        eq(c.ran + (c.freed - c.ran), 100, "items ran or were cancelled")
        dss.dispatch()
        eq(p.finalizer_counts().finalized, 1, "finalizer calls, later")
    end
    eq(calls > 0, true, "some items ran before unreg()")
end)

io.stderr:write(string.format("promises: %d passed, %d failed\n", passed, failed))
if failed > 0 then os.exit(1, true) end
