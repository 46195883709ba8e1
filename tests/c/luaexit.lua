-- The luaexit test (issue 11.3): a utility whose SIGTERM handler delivers
-- (tests/c/luaexit.c), and this Lua process spinning in a tight poll() or
-- dispatch() loop while a thread of the utility sends it N signals.
--
--   lua5.4 tests/c/luaexit.lua DIR poll|dispatch 1|2 [N]
--
-- Every signal must be handled, and each one either accepted and then run
-- exactly once, or refused with a code; nothing cancelled. A handler that
-- waits for the queue's lock held by the poll() it interrupted hangs the
-- process: the caller's watchdog counts that as a failure.

local dir, loop, api, n = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4] or 50)
assert(dir and (loop == "poll" or loop == "dispatch") and (api == 1 or api == 2),
    "usage: luaexit.lua DIR poll|dispatch 1|2 [N]")
package.cpath = dir .. "/?.so;" .. package.cpath

local dss = require "darksidesync"
local ex = require "luaexit"
local unpack = table.unpack or unpack

local ran, seen = 0, {}
ex.install(function(seq)
    assert(not seen[seq], "signal delivery " .. tostring(seq) .. " ran twice")
    seen[seq] = true
    ran = ran + 1
end, api)
ex.fire(n, 2000)

local c = ex.counts()
if loop == "poll" then
    while not (c.done and ran == c.accepted) do
        local left, cb, args = dss.poll()
        if left ~= -1 and cb then cb(unpack(args, 1, args.n)) end
        c = ex.counts()
    end
else
    while not (c.done and ran == c.accepted) do
        dss.dispatch()
        c = ex.counts()
    end
end
ex.uninstall()
-- Nothing may arrive late.
dss.dispatch()
c = ex.counts()

io.stderr:write(string.format(
    "luaexit %s %dv0: sent %d handled %d accepted %d refused %d (last code %d) ran %d cancelled %d\n",
    loop, api, c.sent, c.handled, c.accepted, c.refused, c.last_refusal, ran, c.cancelled))
assert(c.sent == n, "sent")
assert(c.handled == n, "every signal handled")
assert(c.accepted + c.refused == n, "accepted or refused")
assert(ran == c.accepted, "every accepted delivery ran once")
assert(c.decoded == c.accepted, "decoder calls")
assert(c.cancelled == 0, "nothing cancelled")
if c.refused > 0 then
    local full = api == 1 and -104 or -8
    assert(c.last_refusal == full, "refusal code " .. tostring(c.last_refusal))
end
