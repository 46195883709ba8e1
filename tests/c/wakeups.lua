-- The no-wait path's promises through the public C ABI (SPEC section 7):
-- DarkSideSync 1.0 fire-and-forget deliveries (1v0 deliver() without a
-- return callback) from dssutil's pthreads, in a fresh state, checked with
-- real descriptors, a real UDP socket and a real luv loop.
--
--   lua5.4 tests/c/wakeups.lua DIR     (DIR has darksidesync.so and dssutil.so)
--
-- Each case runs in a process of its own (the runner starts one per case),
-- so its first deliveries meet a fresh state, whose queue has no buffer
-- yet: they go through the side ring, and "posts first, then fd(),
-- setport() or an adapter" is the order tested.
-- Plain Lua; prints one line per test and exits non-zero if any failed.

local dir = assert(arg[1], "usage: wakeups.lua DIR [case]")
package.cpath = dir .. "/?.so;" .. package.cpath
-- The adapters ship in the repository's lua/ folder.
local repo = (arg[0]:match("^(.*)/tests/c/[^/]*$") or ".")
package.path = dir .. "/?.lua;" .. repo .. "/lua/?.lua;" .. package.path

local dss = require "darksidesync"
local u = require "dssutil"
local socket = require "socket"

local function eq(a, b, what)
    if a ~= b then error((what or "value") .. ": expected " .. tostring(b) .. ", got " .. tostring(a), 2) end
end
local function check(c, what) if not c then error(what, 2) end end

-- Waits (watchdog: 10 s) until `pred()`.
local function until_(pred, what)
    for _ = 1, 10000 do
        if pred() then return end
        u.sleep(1)
    end
    error("timed out: " .. what, 2)
end

local function readable(fd, seconds)
    local r = socket.select({ { getfd = function() return fd end } }, nil, seconds)
    return #r > 0
end

local cases = {}

cases.fd_after_posts = function()
    local ran = 0
    u.join(u.v1_post(function() ran = ran + 1 end, 3, 1))
    eq(dss.queuesize(), 3, "queued before fd()")
    local fd = dss.fd()
    check(readable(fd, 0.2), "3 items queued, fd() made after them: not readable")
    eq(dss.dispatch(), 3, "dispatched")
    eq(ran, 3, "ran")
    check(not readable(fd, 0), "readable after everything was taken")
end

cases.udp_after_posts = function()
    local rx = assert(socket.udp())
    assert(rx:setsockname("127.0.0.1", 0))
    local _, port = rx:getsockname()
    rx:settimeout(2)
    u.join(u.v1_post(function() end, 3, 1))
    eq(dss.queuesize(), 3, "queued before setport()")
    dss.setport(tonumber(port))
    check(rx:receive(), "3 items queued, setport() after them: no datagram")
    eq(dss.dispatch(), 3, "dispatched")
end

cases.udp_before_posts = function()
    local rx = assert(socket.udp())
    assert(rx:setsockname("127.0.0.1", 0))
    local _, port = rx:getsockname()
    rx:settimeout(2)
    dss.setport(tonumber(port))
    u.join(u.v1_post(function() end, 3, 1))
    check(rx:receive(), "no datagram for fire-and-forget deliveries")
    eq(dss.dispatch(), 3, "dispatched")
end

cases.luv_attached_after_posts = function()
    local uv = require "luv"
    local dssluv = require "darksidesync.luv"
    local ran = 0
    u.join(u.v1_post(function() ran = ran + 1 end, 3, 1))
    dssluv.attach()
    local timer = uv.new_timer()
    local ticks = 0
    timer:start(10, 10, function()
        ticks = ticks + 1
        if ran == 3 or ticks > 200 then
            timer:stop()
            timer:close()
            dssluv.detach()
        end
    end)
    uv.run()
    eq(ran, 3, "items run by the luv loop attached after the posts")
end

-- 4 threads deliver fire-and-forget into capacity `cap` while this thread
-- dispatches one at a time: the bound and the stats identity hold in every
-- snapshot.
local function bounded(cap)
    return function()
        dss.setcapacity(cap)
        local ran = 0
        local job = u.v1_post(function() ran = ran + 1 end, 2000, 4)
        local snapshots = 0
        until_(function()
            local s = dss.stats()
            snapshots = snapshots + 1
            check(dss.queuesize() <= cap, "queuesize above capacity " .. cap)
            check(s.depth <= cap, "depth " .. s.depth .. " above capacity " .. cap)
            check(s.posted == s.delivered + s.cancelled + s.depth,
                ("identity: posted %d delivered %d cancelled %d depth %d"):format(
                    s.posted, s.delivered, s.cancelled, s.depth))
            dss.dispatch(1)
            return u.done(job) and dss.queuesize() == 0
        end, "the deliveries")
        local r = u.join(job)
        eq(r.accepted + r.refused, 8000, "every delivery answered")
        eq(ran, r.accepted, "every accepted item ran")
        check(r.refused > 0, "a full queue refuses fire-and-forget deliveries")
        local s = dss.stats()
        check(s.peak_depth <= cap, "peak_depth " .. s.peak_depth .. " above capacity " .. cap)
        check(snapshots > 0, "no snapshot")
    end
end
cases.capacity_1 = bounded(1)
cases.capacity_20 = bounded(20)

local names = {}
for name in pairs(cases) do names[#names + 1] = name end
table.sort(names)

local only = arg[2]
if only then
    -- One case in a fresh process (the runner starts one per case).
    local ok, err = pcall(assert(cases[only], "no case " .. only))
    io.stderr:write(ok and "ok   " or "FAIL ", only, ok and "" or (": " .. tostring(err)), "\n")
    os.exit(ok and 0 or 1)
end
-- Without a case: print the case names for the runner.
for _, name in ipairs(names) do print(name) end
