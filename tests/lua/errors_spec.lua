-- Bad input from Lua raises clear errors; misuse is refused, never hangs.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"
local H = require "helper"

local PORT_ERROR = "Invalid UDP port number, use an integer value from 1 to 65535, or 0 to disable UDP notification"

describe("bad input", function()
  before_each(H.reset)
  after_each(H.reset)

  describe("setport()", function()
    for _, bad in ipairs { -1, 65536, 1.5, 1e10, "80x", true } do
      it("rejects " .. tostring(bad) .. " with the DSS 1.0 message", function()
        assert.has_error(function() dss.setport(bad) end, PORT_ERROR)
      end)
    end
    it("rejects a missing port", function()
      assert.has_error(function() dss.setport() end, PORT_ERROR)
    end)
    it("accepts 0..65535 and returns 1", function()
      assert.equal(1, dss.setport(50999))
      assert.equal(50999, dss.getport())
      assert.equal(1, dss.setport(0))
      assert.equal(0, dss.getport())
    end)
  end)

  describe("setcapacity()", function()
    for _, bad in ipairs { 0, -1, 2.5, 1e12, 2 ^ 53, "10", {} } do
      it("rejects " .. tostring(bad), function()
        assert.has_error(function() dss.setcapacity(bad) end)
        local ok, err = pcall(dss.setcapacity, bad)
        assert.is_false(ok)
        assert.matches("^darksidesync.setcapacity: capacity must be an integer from 1 to %d+", err)
        assert.equal(65536, dss.capacity())
      end)
    end
    it("rejects nil", function()
      assert.has_error(function() dss.setcapacity() end)
    end)
    it("accepts an integral float", function()
      dss.setcapacity(8.0)
      assert.equal(8, dss.capacity())
    end)
  end)

  describe("timeouts", function()
    for _, f in ipairs { "wait", "wait_events", "yield" } do
      it(f .. "() rejects negative, NaN and non-numbers", function()
        for _, bad in ipairs { -1, 0 / 0, "1", {} } do
          local ok, err = pcall(dss[f], bad)
          assert.is_false(ok)
          assert.matches("^darksidesync%." .. f .. ": timeout must be", err)
        end
      end)
    end
    it("a huge timeout is no limit, and still returns when work comes", function()
      local job = testlib.post(function() end, 1, 1)
      assert.is_true(dss.wait(1e300))
      dss.dispatch()
      H.join(job)
    end)
  end)

  it("dispatch() rejects a negative or fractional max", function()
    for _, bad in ipairs { -1, 1.5, "x" } do
      local ok, err = pcall(dss.dispatch, bad)
      assert.is_false(ok)
      assert.matches("^darksidesync.dispatch: expected a non%-negative integer", err)
    end
  end)

  it("shows huge and tiny numbers short in messages", function()
    local cases = {
      { dss.setcapacity, 1e308, "^darksidesync%.setcapacity: capacity must be an integer from 1 to 16777216, got 1e%+308$" },
      { dss.dispatch, 1e-300, "^darksidesync%.dispatch: expected a non%-negative integer or nil, got 1e%-300$" },
      { dss.dispatch, -1e300, "got %-1e%+300$" },
      { dss.wait, -1e-300, "got %-1e%-300$" },
      { dss.setcapacity, 2.5, "got 2%.5$" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1], c[2])
      assert.is_false(ok)
      assert.is_true(#err < 120, err)
      assert.matches(c[3], err)
    end
  end)

  it("require in a state without the base library raises a string error", function()
    local out, status = H.run_script("tests/lua/scripts/require_without_base.lua")
    assert.equal(0, status, out)
    assert.equal("false\tstring\tdarksidesync: needs Lua's base library"
      .. " (error, select, tostring, xpcall, pairs, setmetatable or newproxy)\n", out)
  end)

  it("seterrorhandler() rejects a non-function", function()
    for _, bad in ipairs { 1, "f", {}, true } do
      local ok, err = pcall(dss.seterrorhandler, bad)
      assert.is_false(ok)
      assert.matches("^darksidesync.seterrorhandler: expected a function or nil", err)
    end
  end)

  describe("re-entrancy", function()
    for _, f in ipairs { "run", "wait", "wait_events", "yield", "dispatch" } do
      it(f .. "() raises inside a dispatched callback, and other items still run", function()
        local errors = H.collect_errors()
        local ran = 0
        H.join(testlib.post(function(_, seq)
          ran = ran + 1
          if seq == 1 then dss[f](0) end
        end, 3, 1))
        assert.equal(3, dss.dispatch())
        assert.equal(3, ran)
        assert.equal(1, #errors)
        assert.matches("darksidesync." .. f .. ": cannot be called from inside a dispatched callback", errors[1])
      end)
    end

    it("a blocking caller whose callback misuses the API gets the error text", function()
      local job = testlib.call(function() dss.run() end)
      H.dispatch_until(function() return job:done() end)
      local status, text = job:result()
      assert.equal("error", status)
      assert.matches("cannot be called from inside a dispatched callback", text)
    end)
  end)

  it("calling a reply twice does nothing the second time", function()
    local job = testlib.call(function() end)
    H.until_true(function() return dss.queuesize() > 0 end, function() dss.wait(0.05) end)
    local _, _, args = dss.poll()
    args[1](1)
    args[1](2)
    H.join(job)
    assert.same({ "replied", { 1, n = 1 } }, { job:result() })
  end)

  it("a non-callable callback is an error, not a crash", function()
    local errors = H.collect_errors()
    H.join(testlib.post(function() local x = 1; x() end, 1, 1))
    assert.equal(1, dss.dispatch())
    assert.equal(1, #errors)
    assert.matches("attempt to call", errors[1])
  end)
end)
