-- Callbacks of the libraries (timer, process, signal) and of a Rust
-- library's LuaCallback (testlib.post_values) under the coroutine
-- adapters: each runs in a coroutine of its own and may yield on the
-- loop's I/O (a real cqueues.sleep, a loopback TCP round trip) before it
-- returns; an error after a yield reaches the error handler.
--
-- Debian's Copas (1.1.7) has no copas.sleep: under Copas the yield is the
-- round trip (the echo server is another Copas thread, which runs only
-- while the callback is suspended).
local dss = require "darksidesync"
local timer = require "darksidesync.timer"
local process = require "darksidesync.process"
local signal = require "darksidesync.signal"
local testlib = require "darksidesync.testlib"
local H = require "helper"

-- The three libraries, each asked to call `f(tag)` once from its thread.
local LIBS = {
  timer = function(f)
    timer.after(0, function() f("timer") end)
  end,
  process = function(f)
    assert(process.spawn({ "sh", "-c", "echo out" }, {
      stdout = function(line) f("process " .. line) end,
    }))
  end,
  signal = function(f)
    local h
    h = signal.on("USR1", function(name)
      h:cancel()
      f("signal " .. name)
    end)
    assert.is_true(signal.raise("USR1"))
  end,
  -- post_values posts twice; the first call does the I/O.
  luacallback = function(f)
    local n = 0
    testlib.post_values(function()
      n = n + 1
      if n == 1 then f("luacallback") end
    end)
  end,
}

local EXPECTED = {
  timer = "timer",
  process = "process out",
  signal = "signal SIGUSR1",
  luacallback = "luacallback",
}

-- Runs `body(sleep, roundtrip, done)` under a cqueues controller with the
-- adapter attached and a loopback echo server (each line back in upper
-- case), until `done()` is true; fails after H.PATIENCE.
local function under_cqueues(body, done)
  local cqueues = require "cqueues"
  local csocket = require "cqueues.socket"
  local dsscq = require "darksidesync.cqueues"
  local cq = cqueues.new()
  local srv = csocket.listen("127.0.0.1", 0)
  assert(srv:listen())
  local _, _, port = srv:localname()
  local stop = false
  cq:wrap(function()
    while not stop do
      local c = srv:accept(0.05)
      if c then
        cq:wrap(function()
          local line = c:read("*l")
          if line then c:write(line:upper() .. "\n") end
          c:close()
        end)
      end
    end
    srv:close()
  end)
  local function roundtrip(text)
    local c = assert(csocket.connect("127.0.0.1", port))
    assert(c:write(text .. "\n"))
    local answer = c:read("*l")
    c:close()
    return answer
  end
  local watcher = dsscq.attach(cq)
  local timed_out = false
  cq:wrap(function()
    local deadline = os.time() + H.PATIENCE
    while not done() do
      if os.time() > deadline then timed_out = true break end
      cqueues.sleep(0.01)
    end
    stop = true
    watcher.detach()
  end)
  body(cqueues.sleep, roundtrip)
  assert(cq:loop())
  assert.is_false(timed_out, "gave up waiting under cqueues")
end

-- The same under a Copas loop driven with copas.step.
local function under_copas(body, done)
  local copas = require "copas"
  local socket = require "socket"
  local dsscopas = require "darksidesync.copas"
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  copas.addserver(server, function(skt)
    local line = copas.receive(skt, "*l")
    if line then copas.send(skt, line:upper() .. "\n") end
  end)
  local function roundtrip(text)
    local c = socket.tcp()
    c:settimeout(0)
    copas.connect(c, "127.0.0.1", port)
    copas.send(c, text .. "\n")
    local answer = copas.receive(c, "*l")
    c:close()
    return answer
  end
  local watcher = dsscopas.attach()
  body(nil, roundtrip)
  H.until_true(done, function() copas.step(0.01) end, "the callbacks under Copas")
  watcher:detach()
  for _ = 1, 3 do copas.step(0) end
  server:close()
end

local LOOPS = { cqueues = under_cqueues, copas = under_copas }

describe("library callbacks under the coroutine adapters", function()
  before_each(H.reset)
  after_each(H.reset)

  for _, loop in ipairs({ "cqueues", "copas" }) do
    for _, lib in ipairs({ "timer", "process", "signal", "luacallback" }) do
      it(loop .. ": a " .. lib .. " callback sleeps and does a socket round trip before it returns", function()
        local errors = H.collect_errors()
        local steps = {}
        LOOPS[loop](function(sleep, roundtrip)
          LIBS[lib](function(tag)
            steps[#steps + 1] = "start " .. tag
            if sleep then sleep(0.05) end
            steps[#steps + 1] = roundtrip(tag)
            steps[#steps + 1] = "end"
          end)
        end, function() return steps[3] ~= nil or #errors > 0 end)
        assert.same({}, errors)
        assert.same({ "start " .. EXPECTED[lib], EXPECTED[lib]:upper(), "end" }, steps)
      end)
    end

    it(loop .. ": an error after a yield reaches the error handler", function()
      local errors = H.collect_errors()
      local answered
      LOOPS[loop](function(sleep, roundtrip)
        timer.after(0, function()
          if sleep then sleep(0.01) end
          answered = roundtrip("x")
          error("after the round trip")
        end)
      end, function() return #errors > 0 end)
      assert.equal("X", answered)
      assert.equal(1, #errors)
      assert.matches("after the round trip", errors[1])
    end)

    -- The adapters reuse the coroutines of callbacks that returned: a
    -- callback still waiting keeps its own, the ones queued after it run
    -- at once, in order, on reused ones, and each blocking call gets its
    -- own answer (reply() too) whichever coroutine ran it before.
    it(loop .. ": callbacks that wait, then ones that do not: FIFO starts, all complete, own replies", function()
      local errors = H.collect_errors()
      local started, finished = {}, {}
      local calls = {}
      LOOPS[loop](function(_, roundtrip)
        -- Six items queued before the loop runs: one batch. 1 and 4 wait
        -- (a round trip through the loop), 3 raises before any wait.
        H.join(testlib.post(function(_, seq)
          started[#started + 1] = seq
          if seq == 1 or seq == 4 then roundtrip("w" .. seq) end
          if seq == 3 then error("item 3 fails") end
          finished[#finished + 1] = seq
        end, 6, 1))
        for i = 1, 6 do
          calls[i] = testlib.call(function(x)
            if x % 2 == 1 then
              -- Odd calls wait first; 5 answers through reply().
              local answer = roundtrip("c" .. x)
              if x == 5 then
                local r = dss.reply()
                r(answer, x * 100)
                return "not the answer"
              end
              return answer, x * 10
            end
            return "C" .. x, x * 10
          end, nil, i)
        end
      end, function()
        if #finished < 5 or #errors < 1 then return false end
        for _, c in ipairs(calls) do
          if not c:done() then return false end
        end
        return true
      end)
      assert.same({ 1, 2, 3, 4, 5, 6 }, started)
      assert.same({ 2, 5, 6 }, { finished[1], finished[2], finished[3] })
      local waited = { finished[4], finished[5] }
      table.sort(waited)
      assert.same({ 1, 4 }, waited)
      assert.equal(5, #finished)
      assert.equal(1, #errors)
      assert.matches("item 3 fails", errors[1])
      for i, c in ipairs(calls) do
        assert.same({ "replied", { "C" .. i, i * (i == 5 and 100 or 10), n = 2 } }, { c:result() })
      end
    end)
  end
end)
