-- darksidesync.signal: POSIX signals delivered to Lua callbacks through
-- the queue (the handler itself only writes to a self-pipe).
local dss = require "darksidesync"
local signal = require "darksidesync.signal"
local H = require "helper"

describe("darksidesync.signal", function()
  before_each(H.reset)
  after_each(H.reset)

  it("delivers a raised signal to the callback with its name and number", function()
    local got
    local h = signal.on("USR1", function(name, number) got = { name, number } end)
    assert.is_true(signal.raise("USR1"))
    H.dispatch_until(function() return got end, "SIGUSR1")
    assert.equal("SIGUSR1", got[1])
    assert.is_number(got[2])
    assert.is_true(h:cancel())
  end)

  it("accepts names with or without SIG, in any case", function()
    local n = 0
    local h = signal.on("sigusr2", function() n = n + 1 end)
    signal.raise("SIGUSR2")
    H.dispatch_until(function() return n == 1 end, "SIGUSR2")
    h:cancel()
  end)

  it("calls every subscriber, and no cancelled one", function()
    local a, b = 0, 0
    local ha = signal.on("USR2", function() a = a + 1 end)
    local hb = signal.on("USR2", function() b = b + 1 end)
    signal.raise("USR2")
    H.dispatch_until(function() return a == 1 and b == 1 end, "both callbacks")
    assert.is_true(ha:cancel())
    assert.is_false(ha:cancel())
    signal.raise("USR2")
    H.dispatch_until(function() return b == 2 end, "the remaining callback")
    assert.equal(1, a)
    hb:cancel()
  end)

  it("holds a keep-alive reference only when asked", function()
    local before = dss.stats().keep_alive
    local plain = signal.on("HUP", function() end)
    assert.equal(before, dss.stats().keep_alive)
    local kept = signal.on("HUP", function() end, { keepalive = true })
    assert.equal(before + 1, dss.stats().keep_alive)
    kept:cancel()
    plain:cancel()
    assert.equal(before, dss.stats().keep_alive)
  end)

  it("lets a keep-alive handler end run() by stopping it", function()
    local h
    h = signal.on("USR1", function() h:cancel() end, { keepalive = true })
    signal.raise("USR1")
    dss.run() -- returns once the handler cancelled itself
    assert.is_false(h:cancel())
  end)

  it("rejects bad arguments with clear errors", function()
    assert.has_error(function() signal.on("KILL", print) end,
      "signal.on: SIGKILL cannot be handled; use one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH")
    assert.has_error(function() signal.on("NOPE", print) end, 'signal.on: unknown signal name "NOPE"')
    assert.has_error(function() signal.on(12345, print) end, "signal.on: unknown signal number 12345")
    assert.has_error(function() signal.on({}, print) end,
      'signal.on: signal must be a name such as "TERM" or a number, got table')
    assert.has_error(function() signal.on("INT", "f") end, "signal.on: callback must be a function, got string")
    assert.has_error(function() signal.on("INT", print, 1) end, "signal.on: options must be a table or nil, got number")
    assert.has_error(function() signal.raise("NOPE") end, 'signal.raise: unknown signal name "NOPE"')
  end)
end)
