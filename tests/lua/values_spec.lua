-- What a Rust library's LuaCallback::post carries, seen from Lua on every
-- interpreter: nil, byte strings that are not UTF-8, integers, tables
-- with named fields, a list and nesting.
local dss = require "darksidesync"
local testlib = require "darksidesync.testlib"
local H = require "helper"

describe("LuaCallback values", function()
  before_each(H.reset)
  after_each(H.reset)

  it("arrive as nil, byte strings, numbers and fresh tables", function()
    local got = {}
    testlib.post_values(function(...) got[#got + 1] = { n = select("#", ...), ... } end)
    H.dispatch_until(function() return #got == 2 end, "the two posts")
    local first = got[1]
    assert.equal(3, first.n)
    assert.is_nil(first[1])
    assert.equal("\255\0", first[2])
    assert.equal(2 ^ 40, first[3])
    local t = got[2][1]
    assert.equal(1, got[2].n)
    assert.equal("e", t.name)
    assert.equal("/\254", t.path)
    assert.same({ 1, 2.5, true }, t.list)
    assert.is_nil(getmetatable(t))
  end)
end)
