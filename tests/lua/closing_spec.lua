-- What happens at lua_close, seen from outside: runs scripts in a fresh
-- interpreter (the one running this spec) and checks their exit status
-- and output.
local H = require "helper"

describe("lua_close", function()
  it("a finaliser set before require gets 'state is closing' from every function", function()
    local out, status = H.run_script("tests/lua/scripts/finalise_at_close.lua")
    assert.equal(0, status, out)
    local n = tonumber(out:match("functions\t(%d+)\n"))
    assert.is_true(n and n >= 17, out)
    local lines = 0
    for name, ok, err in out:gmatch("([%w_.()]+)\t(%a+)\t([^\n]*)\n") do
      if name ~= "functions" then
        lines = lines + 1
        assert.equal("false", ok, name)
        assert.equal("darksidesync: state is closing", err, name)
      end
    end
    assert.equal(n + 2, lines, out)
    assert.truthy(out:find("finaliser done\n", 1, true), out)
  end)
end)
