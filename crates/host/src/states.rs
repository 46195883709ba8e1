//! `darksidesync.host`: the host's conventions for more states, as a thin
//! Lua layer over the module's `darksidesync.states` (one implementation of
//! states, threads, copying, calls and close; see `doc/states.md`).
//!
//! ```lua
//! local host = require "darksidesync.host"
//! local child = host.spawn("worker.lua", "an", "argument")   -- or host.spawn({ source = "...", name = "w" }, ...)
//! child:onmessage(function(...) end)   -- what the child sends (the return values answer host.parent:call)
//! child:onexit(function(ok, err) end)  -- after the child's state closed
//! child:send(value, ...)               --> true, or false and "closed"
//! child:close()                        -- no more messages: the child may end
//! child:id()                           --> a number
//! -- in the child:
//! host.onmessage(function(...) end)    -- what the parent sends
//! host.parent:send(value, ...)         --> true, or false and "closed"
//! host.parent:call(value, ...)         --> the parent handler's return values (raises on failure)
//! host.id                              --> this state's id (0 in the root state)
//! ```
//!
//! What the layer adds to `darksidesync.states`:
//!
//! * a child runs its script, then `darksidesync.run()`, with the host's
//!   error handling (an error in a callback ends the child with that error);
//! * `onexit` without a handler: a failed child is raised in the parent as
//!   a callback error;
//! * a child whose main chunk returns without `host.onmessage` asks its
//!   parent to drop its hold (nothing the parent sends could be handled), so
//!   it ends once its own work is done;
//! * the host's names and error texts (`send`, `host.spawn: ...`).

use mlua::{Lua, Table};

/// The layer, evaluated once per state that requires it.
const LAYER: &str = include_str!("host.lua");

/// Builds the `darksidesync.host` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    lua.load(LAYER).set_name("=darksidesync.host").call(())
}
