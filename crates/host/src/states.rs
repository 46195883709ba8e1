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

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::runtime::{self, Failure, Script};
use darksidesync::states::Portable;

/// The layer, evaluated once per state that requires it.
const LAYER: &str = include_str!("host.lua");

/// Builds the `darksidesync.host` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let run_child = lua.create_function(run_child)?;
    lua.load(LAYER)
        .set_name("=darksidesync.host")
        .call(run_child)
}

/// In a state started by `host.spawn`: runs the script as the host runs
/// its main script (its error handling and tracebacks, then `run()`).
/// Returns `true`, or `false` and the failure's text: the failure is the
/// result, not an error, so that its traceback is not wrapped in another.
fn run_child(
    lua: &Lua,
    (source, chunkname, arg0, args): (mlua::String, String, String, MultiValue),
) -> mlua::Result<MultiValue> {
    runtime::install_error_handling(lua)?;
    let script = Script {
        source: source.as_bytes().to_vec(),
        chunkname,
        arg0,
        args: Portable::from_multi(&args, "host.spawn").map_err(mlua::Error::runtime)?,
    };
    let failed = |text: String| -> mlua::Result<MultiValue> {
        Ok(MultiValue::from_iter([
            Value::Boolean(false),
            Value::String(lua.create_string(text)?),
        ]))
    };
    match runtime::run(lua, &script) {
        Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(Failure::Syntax(m)) => failed(format!("syntax error: {m}")),
        Err(Failure::Runtime(m)) => failed(m),
    }
}

/// After a state's main chunk: a state started by `host.spawn` that set no
/// `host.onmessage` tells its parent to let go (see `host.lua`).
pub fn after_main_chunk(lua: &Lua) {
    let hook = lua
        .load("local h = package.loaded['darksidesync.host'] return type(h) == 'table' and h._after_main_chunk")
        .eval::<Option<Function>>();
    if let Ok(Some(f)) = hook {
        let _ = f.call::<()>(());
    }
}
