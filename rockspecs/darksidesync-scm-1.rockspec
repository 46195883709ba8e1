-- Builds the module with cargo for the Lua that LuaRocks targets and
-- installs it with the helper modules and the event-loop adapters:
--   luarocks --lua-version 5.4 make rockspecs/darksidesync-scm-1.rockspec
-- Needs Rust (cargo) and a C compiler; no network once cargo's
-- dependencies are in its cache (or vendored).
--
-- LuaJIT and Lua 5.1 share LuaRocks' lib/lua/5.1, and each needs its own
-- build: give LuaJIT a tree of its own and point luajit at it:
--   luarocks --lua-version 5.1 make rockspecs/darksidesync-scm-1.rockspec          (lua5.1)
--   luarocks --lua-version 5.1 --tree ~/.luarocks-jit make \
--     rockspecs/darksidesync-scm-1.rockspec LUA=/usr/bin/luajit                    (luajit)
--   eval "$(luarocks --lua-version 5.1 --tree ~/.luarocks-jit path)"             (in luajit's shell)
-- A build loaded by the other interpreter refuses with one line naming both
-- and the command that builds the right one.
rockspec_format = "3.0"
package = "darksidesync"
version = "scm-1"
source = {
   url = "git+https://example.invalid/darksidesync",
}
description = {
   summary = "Carries work from native background threads into a Lua state's thread",
   detailed = [[
A per-state FIFO that background threads (in C, through a versioned C ABI
compatible with DarkSideSync 1.0, or in Rust) fill and the Lua thread drains:
poll/dispatch/run, a pollable descriptor for luv, cqueues, LuaSocket and
Copas, blocking calls with replies, bounded capacity and statistics.
]],
   homepage = "https://example.invalid/darksidesync",
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.5",
}
build = {
   type = "command",
   -- `--lua-interpreter` asks $(LUA) which Lua (5.1..5.4 or LuaJIT) to build for.
   build_command = [[cargo xtask module --lua-interpreter "$(LUA)"]],
   -- The module as $(LIBDIR)/darksidesync.so (the name `require` looks
   -- for), dss.lua and darksidesync/*.lua under $(LUADIR).
   install_command = [[cargo xtask module --lua-interpreter "$(LUA)" --out "$(LIBDIR)" --lua-dir "$(LUADIR)"]],
}
