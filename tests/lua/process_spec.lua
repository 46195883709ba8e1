-- darksidesync.process: child processes with per-line callbacks, exit
-- status, stdin and kill.
local dss = require "darksidesync"
local process = require "darksidesync.process"
local H = require "helper"

local function spawn_collect(argv, opts)
  local r = { out = {}, err = {}, order = {} }
  opts = opts or {}
  opts.stdout = function(line) r.out[#r.out + 1] = line; r.order[#r.order + 1] = "out" end
  opts.stderr = function(line) r.err[#r.err + 1] = line; r.order[#r.order + 1] = "err" end
  opts.exit = function(code, sig) r.code, r.sig, r.exited = code, sig, true; r.order[#r.order + 1] = "exit" end
  r.p = assert(process.spawn(argv, opts))
  return r
end

describe("darksidesync.process", function()
  before_each(H.reset)
  after_each(H.reset)

  it("delivers each line of stdout, the last one without newline, then the exit", function()
    local r = spawn_collect { "sh", "-c", "printf 'a\\nb\\n\\nc'" }
    H.dispatch_until(function() return r.exited end, "the exit")
    assert.same({ "a", "b", "", "c" }, r.out)
    assert.equal(0, r.code)
    assert.is_nil(r.sig)
    assert.equal("exit", r.order[#r.order])
    assert.is_false(r.p:running())
  end)

  it("separates stderr and reports the exit code", function()
    local r = spawn_collect { "sh", "-c", "echo out; echo err >&2; exit 3" }
    H.dispatch_until(function() return r.exited end, "the exit")
    assert.same({ "out" }, r.out)
    assert.same({ "err" }, r.err)
    assert.equal(3, r.code)
  end)

  it("writes to stdin and closes it", function()
    local r = spawn_collect({ "cat" }, { stdin = true })
    assert.is_true(r.p:write("hello\n"))
    assert.is_true(r.p:write("world\n"))
    assert.is_true(r.p:close())
    assert.is_false(r.p:close())
    H.dispatch_until(function() return r.exited end, "cat's exit")
    assert.same({ "hello", "world" }, r.out)
    assert.equal(0, r.code)
    local ok, msg = r.p:write("late")
    assert.is_nil(ok)
    assert.equal("stdin is closed", msg)
  end)

  it("kills a child and reports the signal", function()
    local r = spawn_collect { "sleep", "30" }
    assert.is_true(r.p:running())
    assert.is_number(r.p:pid())
    assert.is_true(r.p:kill())
    H.dispatch_until(function() return r.exited end, "the killed child")
    assert.is_nil(r.code)
    assert.equal("SIGTERM", r.sig)
    assert.is_false(r.p:kill("KILL"))
  end)

  it("passes env and cwd", function()
    local r = spawn_collect({ "sh", "-c", 'echo "$DSS_TEST"; pwd' }, { env = { DSS_TEST = "bar" }, cwd = "/" })
    H.dispatch_until(function() return r.exited end, "the exit")
    assert.same({ "bar", "/" }, r.out)
  end)

  it("keeps every line in order through a small queue", function()
    dss.setcapacity(4)
    local r = spawn_collect { "sh", "-c", "i=1; while [ $i -le 2000 ]; do echo $i; i=$((i+1)); done" }
    H.dispatch_until(function() return r.exited end, "the exit")
    assert.equal(2000, #r.out)
    for i = 1, 2000 do assert.equal(tostring(i), r.out[i]) end
  end)

  it("keeps run() going until every child has exited", function()
    local a = spawn_collect { "sh", "-c", "echo one" }
    local b = spawn_collect { "sh", "-c", "sleep 0.1; echo two" }
    dss.run()
    assert.is_true(a.exited and b.exited)
    assert.same({ "one" }, a.out)
    assert.same({ "two" }, b.out)
  end)

  it("returns nil and a message for a program that cannot start", function()
    local p, msg = process.spawn { "/nonexistent/program" }
    assert.is_nil(p)
    assert.matches("^process.spawn: cannot start /nonexistent/program: ", msg)
  end)

  it("rejects bad arguments with clear errors", function()
    assert.has_error(function() process.spawn("ls") end,
      "process.spawn: expected an array of program and arguments, got string")
    assert.has_error(function() process.spawn({}) end, "process.spawn: argv must name a program (argv[1])")
    assert.has_error(function() process.spawn({ "ls", {} }) end, "process.spawn: argv[2] must be a string, got table")
    assert.has_error(function() process.spawn({ "ls" }, { stdout = 1 }) end,
      "process.spawn: option stdout must be a function, got number")
    assert.has_error(function() process.spawn({ "ls" }, 5) end, "process.spawn: options must be a table or nil, got number")
    local r = spawn_collect { "true" }
    assert.has_error(function() r.p:write("x") end, "process:write: stdin was not opened (spawn with stdin = true)")
    assert.has_error(function() r.p:kill("NOPE") end, 'process:kill: unknown signal name "NOPE"')
    H.dispatch_until(function() return r.exited end, "the exit")
  end)
end)

-- The async face (process.start, on tokio::process): methods that
-- suspend the calling coroutine.
describe("darksidesync.process.start", function()
  before_each(H.reset)
  after_each(H.reset)

  it("reads lines and waits in a coroutine, which only it suspends", function()
    -- The child writes only once `go` exists: until then the coroutine
    -- is suspended (a child already done would make the calls ready at once).
    local go = os.tmpname()
    os.remove(go)
    local got
    coroutine.wrap(function()
      local p = process.start { "sh", "-c", "while [ ! -e \"$1\" ]; do sleep 0.01; done; echo one; echo two; echo warn >&2; exit 3", "sh", go }
      local r = { p:read_line(), p:read_line(), p:read_line(), p:read_line("stderr") }
      r[5], r[6] = p:wait()
      got = r
    end)()
    assert.is_nil(got, "suspended, not finished inside the call")
    assert(io.open(go, "w")):close()
    H.dispatch_until(function() return got ~= nil end, "the coroutine")
    os.remove(go)
    assert.same({ "one", "two", nil, "warn", 3, nil }, got)
  end)

  it("runs darksidesync's loop on the main thread", function()
    local p = process.start({ "sh", "-c", "echo $X; pwd" }, { env = { X = "from env" }, cwd = "/" })
    assert.equal("from env", p:read_line())
    assert.equal("/", p:read_line())
    assert.same({ 0 }, { p:wait() })
    assert.equal("number", type(p:pid()))
  end)

  it("kills: wait() reports the signal; kill() after the exit is false", function()
    local p = process.start { "sleep", "30" }
    assert.is_true(p:kill())
    assert.same({ nil, "SIGTERM" }, { p:wait() })
    assert.is_false(p:kill("KILL"))
  end)

  it("raises a clear error for a program that cannot start", function()
    local ok, err = pcall(process.start, { "/nonexistent/program" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("process.start: cannot start /nonexistent/program", 1, true), err)
  end)

  it("holds a keep-alive reference (run() waits) while a coroutine waits for a child", function()
    local before = dss.stats().keep_alive
    local code
    coroutine.wrap(function() code = process.start({ "sh", "-c", "sleep 0.1; exit 7" }):wait() end)()
    assert.equal(before + 1, dss.stats().keep_alive)
    H.dispatch_until(function() return code ~= nil end, "the exit")
    assert.equal(7, code)
    assert.equal(before, dss.stats().keep_alive)
  end)
end)
