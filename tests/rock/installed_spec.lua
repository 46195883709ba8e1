-- Runs against a LuaRocks tree made by `luarocks make`, with the paths that
-- `luarocks path` prints and nothing else (see xtask/src/rocks.rs).
local tree = assert(os.getenv("DSS_ROCK_TREE"), "DSS_ROCK_TREE is not set")

local function in_tree(file)
  return file ~= nil and file:sub(1, #tree) == tree
end

describe("the installed rock", function()
  it("finds the module in the tree through the default searchers", function()
    local file = package.searchpath("darksidesync", package.cpath)
    assert.is_true(in_tree(file), tostring(file))
    assert.is_truthy(file:match("/darksidesync%.so$"))
    local dss = require "darksidesync"
    assert.are.equal("string", type(dss._VERSION))
    assert.is_truthy(dss._VERSION:match("^darksidesync %d+%.%d+%.%d+"))
  end)

  it("dispatches work in the installed module", function()
    local dss = require "darksidesync"
    assert.are.equal(-1, dss.poll())
    assert.are.equal(0, dss.dispatch())
    assert.is_false(dss.wait(0))
  end)

  it("loads the example libraries from the same shared object", function()
    local timer = require "darksidesync.timer"
    assert.are.equal("function", type(timer.after))
  end)

  it("installs every Lua file of lua/ where require finds it", function()
    local listing = assert(io.popen("cd lua && find . -name '*.lua' | sort"))
    local n = 0
    for path in listing:lines() do
      local name = path:gsub("^%./", ""):gsub("%.lua$", ""):gsub("/", ".")
      local file = package.searchpath(name, package.path)
      assert.is_true(in_tree(file), name .. " -> " .. tostring(file))
      n = n + 1
    end
    listing:close()
    assert.is_true(n >= 2)
    -- dss.lua needs LuaSocket only when used; loading it must work.
    assert.are.equal("table", type(require "dss"))
  end)
end)
