-- darksidesync-binding, seen from Lua: `dssrust` is a Rust library built
-- as its own cdylib (examples/rust), loaded by this stock
-- interpreter next to darksidesync.so. It reaches darksidesync only
-- through the DSS API 2v0 registry table, and loads it itself.
local dssrust = require "dssrust"
local dss = require "darksidesync"

local PATIENCE = 60 -- a hang watchdog, not a timing assertion

local function dispatch_until(cond, what)
  local deadline = os.time() + PATIENCE
  while not cond() do
    if os.time() > deadline then error("gave up waiting for " .. what, 2) end
    if dss.wait(0.05) then dss.dispatch() end
  end
end

describe("a Rust cdylib using darksidesync-binding", function()
  after_each(function()
    dss.seterrorhandler(nil)
    while dss.poll() ~= -1 do end
  end)

  -- Leave nothing that keeps run() waiting (dssrust's registration holds
  -- it): inside darksidesync-host, where `cargo xtask binding` runs these
  -- specs too, a run() follows the script's end.
  teardown(function()
    dssrust.post(function() end, 1, true)
    dss.run()
  end)

  it("posts closures that run on the Lua thread, in order", function()
    local got = {}
    local counted = 0
    dssrust.post(function(i) got[#got + 1] = i end, 200)
    local deadline = os.time() + PATIENCE
    while #got < 200 do
      if os.time() > deadline then error("gave up waiting for 200 posts") end
      if dss.wait(0.05) then counted = counted + dss.dispatch() end
    end
    for i = 1, 200 do assert.equal(i, got[i]) end
    assert.equal(200, counted, "dispatch() counts each closure it ran")
  end)

  it("names a bad argument's position and the function (darksidesync_binding::function)", function()
    local ok, e = pcall(function() dssrust.post(nil, 1) end)
    assert.is_false(ok)
    assert.equal("bad argument #1 to 'post': error converting Lua nil to function", e)
  end)

  it("a callback that a closure calls cannot yield under cqueues: the error reaches the handler", function()
    -- Closures (Dss::post) are documented as not yieldable; LuaCallback
    -- and post_callback deliveries are (tests/lua/yielding_spec.lua).
    -- A plain coroutine.yield: cqueues.sleep itself would not yield here
    -- but block (the closure's mlua call runs on the main state, where
    -- cqueues polls synchronously).
    local cqueues = require "cqueues"
    local dsscq = require "darksidesync.cqueues"
    local errors = {}
    dss.seterrorhandler(function(e) errors[#errors + 1] = tostring(e) end)
    local cq = cqueues.new()
    local watcher = dsscq.attach(cq)
    local reached
    dssrust.post(function() reached = "before"; coroutine.yield(); reached = "after" end, 1)
    cq:wrap(function()
      local deadline = os.time() + PATIENCE
      while #errors == 0 and os.time() <= deadline do cqueues.sleep(0.01) end
      watcher.detach()
    end)
    assert(cq:loop())
    assert.equal("before", reached)
    assert.equal(1, #errors)
    assert.matches("yield", errors[1])
  end)

  it("returns a call's typed result to the waiting thread", function()
    local job = dssrust.call(function(s) return s .. "!" end, "hi")
    dispatch_until(function() return job:done() end, "the call")
    assert.same({ "ok", "hi!" }, { job:result() })
  end)

  it("returns the Lua error message of a failing call", function()
    local job = dssrust.call(function() error("boom") end, "x")
    dispatch_until(function() return job:done() end, "the call")
    local kind, msg = job:result()
    assert.equal("lua", kind)
    assert.matches("boom", msg)
  end)

  it("keeps the message and the traceback of a failing call apart", function()
    local before = dssrust.stats().errors
    local job = dssrust.call(function() error("filter failed") end, "x")
    dispatch_until(function() return job:done() end, "the call")
    local kind, msg, traceback = job:result()
    assert.equal("lua", kind)
    assert.matches("binding_spec.lua:%d+: filter failed$", msg)
    assert.matches("^stack traceback:", traceback)
    assert.equal(before + 1, dssrust.stats().errors, "a failed closure counts in errors")
  end)

  it("times out when nobody dispatches, and the closure never runs after", function()
    local ran = false
    local job = dssrust.call(function() ran = true; return "late" end, "x", 0.05)
    local deadline = os.time() + PATIENCE
    while not job:done() do
      assert(os.time() <= deadline, "the call never timed out")
    end
    assert.equal("timed out", (job:result()))
    dss.dispatch()
    assert.is_false(ran)
  end)

  it("refuses a blocking call from the Lua thread itself", function()
    assert.equal("would deadlock", dssrust.callhere(function() return "never" end))
  end)

  it("hands a posted closure's error to the error handler", function()
    local errors = {}
    dss.seterrorhandler(function(e) errors[#errors + 1] = tostring(e) end)
    local after = false
    dssrust.post(function() error("bad post") end, 1)
    dispatch_until(function() return #errors == 1 end, "the error")
    assert.matches("bad post", errors[1])
    dssrust.post(function() after = true end, 1)
    dispatch_until(function() return after end, "the next post")
  end)

  it("counts its deliveries", function()
    local s = dssrust.stats()
    assert.is_true(s.posted >= 200)
    assert.is_true(s.ran >= 200)
    assert.is_true(s.timeouts >= 1)
  end)

  it("keeps run() waiting while registered, until the library lets go", function()
    local got = {}
    assert.equal(1, dssrust.stats().keep_alive, "the registration's reference")
    dssrust.post(function(i) got[#got + 1] = i end, 50, true)
    dss.run()
    assert.equal(50, #got)
    assert.equal(0, dssrust.stats().keep_alive)
    dssrust.reference()
    assert.equal(1, dssrust.stats().keep_alive)
  end)

  -- #stock: a stock interpreter, where darksidesync is not preloaded and
  -- no run loop follows the script (not the embedded host).
  local function run_lua(code)
    local lua = assert(os.getenv("DSS_LUA"), "DSS_LUA names the interpreter")
    local p = assert(io.popen(lua .. " -e '" .. code .. "' 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("loads darksidesync itself when the script did not #stock", function()
    local out = run_lua([[
      local dssrust = require "dssrust"
      print(type(package.loaded.darksidesync), type(package.loaded.darksidesync.run))]])
    assert.equal("table\tfunction\n", out)
  end)

  it("runs the bundled libraries without a require of darksidesync first #stock", function()
    -- darksidesync.timer is built on darksidesync-binding: it loads the module itself.
    local out = run_lua([[
      local timer = require "darksidesync.timer"
      timer.after(0, function() print("tick") end)
      print("ran", package.loaded.darksidesync.run())]])
    assert.equal("tick\nran\t1\n", out, "run() counts a delivery of a library on the binding")
  end)

  it("fails with a clear Lua error when darksidesync cannot be found #stock", function()
    local out = run_lua([[
      local so = os.getenv("LUA_CPATH"):match("^(.-)%?%.so") .. "dssrust.so"
      package.cpath = ""
      local open = assert(package.loadlib(so, "luaopen_dssrust"))
      print(pcall(open))]])
    assert.matches("^false", out)
    assert.matches('dssrust: cannot load darksidesync (require "darksidesync" failed): '
      .. "module 'darksidesync' not found", out, 1, true)
  end)
end)
