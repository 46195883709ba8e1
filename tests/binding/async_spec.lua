-- Async functions of a Rust cdylib (darksidesync-binding's
-- Dss::create_async_function, tokio feature; examples/rust/src/asyncfns.rs)
-- under every loop a script may run: the main thread, run(), a
-- dispatch(max, spawn) loop, luv, cqueues, Copas; errors, cancellation,
-- and a state closed with 1,000 pending futures.
local dssrust = require "dssrust"
local dss = require "darksidesync"

local PATIENCE = 60 -- a hang watchdog, not a timing assertion
local LUA = assert(os.getenv("DSS_LUA"), "DSS_LUA names the interpreter")
local PUC51 = _VERSION == "Lua 5.1" and not jit

local function deadline_passed(deadline, what)
  if os.time() > deadline then error("gave up waiting for " .. what, 2) end
end

describe("an async function of a Rust cdylib", function()
  setup(function() dssrust.unref() end)
  teardown(function() dssrust.reference() end)
  after_each(function()
    dss.seterrorhandler(nil)
    while dss.poll() ~= -1 do end
  end)

  it("on the main thread runs darksidesync's loop until its result is in", function()
    assert.same({ "a", 2 }, { dssrust.sleep(0.01, "a", 2) })
  end)

  it("suspends only its coroutine; run() returns once the last future settled", function()
    local got = {}
    for i = 1, 100 do
      coroutine.wrap(function()
        -- At least 0.1 s: none can finish while the loop starts them.
        local v = dssrust.sleep((100 + 101 - i) / 1000, i)
        got[i] = v
      end)()
    end
    assert.same({}, got, "nothing finished inside the calls")
    dss.run()
    for i = 1, 100 do assert.equal(i, got[i]) end
    assert.equal(0, dssrust.stats().keep_alive, "no task holds run() any more")
  end)

  it("raises the future's error with a traceback in its coroutine", function()
    local err
    if PUC51 then
      -- 5.1 cannot yield across pcall: the coroutine itself fails, and
      -- its error goes to the error handler from the resume.
      dss.seterrorhandler(function(e) err = tostring(e) end)
      coroutine.wrap(function() dssrust.fail(0.01, "nope") end)()
    else
      coroutine.wrap(function()
        local ok, e = pcall(dssrust.fail, 0.01, "nope")
        assert(not ok)
        err = e
      end)()
    end
    dss.run()
    assert.truthy(err and err:find("nope", 1, true), err)
    assert.truthy(err:find("stack traceback:", 1, true), err)
  end)

  it("under pcall in a coroutine: yields on LuaJIT and 5.2+, 5.1's own error on PUC 5.1", function()
    local ok, v
    coroutine.wrap(function() ok, v = pcall(dssrust.sleep, 0.01, "p") end)()
    dss.run()
    if PUC51 then
      assert.is_false(ok)
      assert.truthy(tostring(v):find("yield across", 1, true), v)
    else
      assert.is_true(ok)
      assert.equal("p", v)
    end
  end)

  it("resumes a callback of dispatch(max, spawn) through its handler", function()
    local done
    -- 0.2 s: not over before dispatch() returns (a sleep can be ready at
    -- its first poll when the thread was descheduled past its deadline).
    dssrust.post_callback(function(i) done = dssrust.sleep(0.2, i * 10) end, 1)
    local deadline = os.time() + PATIENCE
    while dss.dispatch(nil, function(h) coroutine.wrap(h)() end) == 0 do
      deadline_passed(deadline, "the post")
      dss.wait(0.05)
    end
    assert.is_nil(done)
    while done == nil do
      deadline_passed(deadline, "the sleep")
      if dss.wait(0.05) then dss.dispatch() end
    end
    assert.equal(10, done)
  end)

  it("does a tokio TCP round trip per coroutine", function()
    local port = dssrust.echo_server()
    local got = {}
    for i = 1, 20 do
      coroutine.wrap(function() got[i] = dssrust.echo(port, "line " .. i) end)()
    end
    dss.run()
    for i = 1, 20 do assert.equal("line " .. i, got[i]) end
  end)

  it("runs in a luv-driven coroutine", function()
    local uv = require "luv"
    local dssluv = require "darksidesync.luv"
    dssluv.attach()
    local got
    local watchdog = uv.new_timer()
    watchdog:start(PATIENCE * 1000, 0, function() uv.stop() end)
    coroutine.wrap(function()
      got = dssrust.sleep(0.02, "luv")
      dssluv.detach()
      watchdog:close()
    end)()
    uv.run()
    assert.equal("luv", got)
  end)

  it("parks a cqueues coroutine on a condition, mixed with cqueues sleeps", function()
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local watcher = require("darksidesync.cqueues").attach(cq)
    local events = {}
    cq:wrap(function()
      local v = dssrust.sleep(0.2, "async")
      events[#events + 1] = v
    end)
    cq:wrap(function()
      cqueues.sleep(0.01)
      events[#events + 1] = "cqueues sleep"
    end)
    local deadline = os.time() + PATIENCE
    while #events < 2 do
      deadline_passed(deadline, "the cqueues coroutines")
      assert(cq:step(0.1))
    end
    watcher:detach()
    assert.same({ "cqueues sleep", "async" }, events)
  end)

  it("parks a Copas thread, which the other Copas threads run beside", function()
    local copas = require "copas"
    local watcher = require("darksidesync.copas").attach()
    local events = {}
    copas.addthread(function()
      local v = dssrust.sleep(0.2, "async")
      events[#events + 1] = v
    end)
    -- darksidesync's own deliveries keep running in Copas meanwhile
    dssrust.post(function() events[#events + 1] = "posted" end, 1)
    local deadline = os.time() + PATIENCE
    while #events < 2 do
      deadline_passed(deadline, "the Copas threads")
      copas.step(0.1)
    end
    watcher:detach()
    copas.step(0)
    assert.same({ "posted", "async" }, events)
  end)

  it("drops the future of a cqueues coroutine that is collected mid-future", function()
    local cqueues = require "cqueues"
    local before = dssrust.live()
    local cq = cqueues.new()
    cq:wrap(function() dssrust.forever() end)
    assert(cq:step(0))
    assert.equal(before + 1, dssrust.live())
    cq = nil
    collectgarbage()
    collectgarbage()
    assert.equal(before, dssrust.live())
  end)

  if coroutine.close then
    it("drops the future of a coroutine closed mid-future (5.4)", function()
      local before = dssrust.live()
      local co = coroutine.create(dssrust.forever)
      assert(coroutine.resume(co))
      assert.equal(before + 1, dssrust.live())
      assert(coroutine.close(co))
      assert.equal(before, dssrust.live(), "at once")
    end)
  end

  it("lets lua_close drop 1,000 pending futures without hanging", function()
    -- A finaliser made before the futures runs after theirs (newest first).
    local script = [[
      local dssrust = require "dssrust"
      local function report() io.write("live at close: ", dssrust.live(), "\n") end
      if newproxy then
        _G.sentinel = newproxy(true)
        getmetatable(_G.sentinel).__gc = report
      else
        _G.sentinel = setmetatable({}, { __gc = report })
      end
      for i = 1, 1000 do coroutine.wrap(dssrust.forever)() end
      io.write("live before close: ", dssrust.live(), "\n")
      if _VERSION ~= "Lua 5.1" then os.exit(0, true) end
    ]]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local valgrind = _VERSION == "Lua 5.4" and os.execute("command -v valgrind >/dev/null")
    local prefix = (valgrind == true or valgrind == 0)
        and "valgrind -q --error-exitcode=99 --leak-check=no " or ""
    local p = assert(io.popen("timeout 120 " .. prefix .. LUA .. " " .. path .. " 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    os.remove(path)
    assert.truthy(out:find("live before close: 1000", 1, true), out)
    assert.truthy(out:find("live at close: 0", 1, true), out)
    assert.truthy(out:find("exit 0", 1, true), out)
  end)
end)
