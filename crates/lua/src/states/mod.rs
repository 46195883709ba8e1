//! `darksidesync.states`: more Lua states, each on its own native thread,
//! exchanging copied values through darksidesync's queues (LuaVortex's
//! "many states, each with its own lock", in any supported interpreter).
//!
//! ```lua
//! local states = require "darksidesync.states"
//! local h = states.spawn("return 6 * ...", 7)  -- or states.spawnfile(path, ...)
//! h:join([seconds])      --> the chunk's results | nil, error with traceback | nil, "timeout"
//! h:post(...)            --> true | nil, "closed"   (to the child's handler)
//! h:call(...)            --> the child's handler's results (raises on failure)
//! h:calltimeout(s, ...)  --> the same, raising "... timeout" after s seconds
//! h:onmessage(fn)        -- what the child posts and calls
//! h:close()              -- the child's darksidesync.run() stops waiting for us
//! h:id()
//! states.id, states.parent (a handle with post/call/calltimeout/onmessage/id)
//! states.count()         --> spawned states running in this process
//! ```
//!
//! Messages are darksidesync items on the receiving state's queue: they
//! run in `dispatch()`, `run()`, `poll()` like any library's callbacks. See
//! `doc/states.md`.
//!
//! | file | concept |
//! | --- | --- |
//! | `portable.rs` | [`Portable`], a Lua value copied as plain data |
//! | `node.rs` | a state's place among states: id, port, handlers, children, its close |
//! | `child.rs` | spawning a state on its thread, joining it, stopping it |
//! | `handle.rs` | the handle userdata and its methods |
//! | `interrupt.rs` | stopping a child's Lua code when its parent closes |
//! | `deadlock.rs` | who waits for whom, refusing waits that close a cycle |

mod child;
mod deadlock;
mod handle;
mod interrupt;
mod node;
mod portable;

pub use child::set_initializer;
pub use portable::{lua_type, Portable};

use mlua::{Lua, MultiValue, Table, Value};

use crate::state::StateHub;
use crate::{ApiFn, ApiResult};
use child::Script;
use handle::Peer;
use node::Node;

/// Builds the `darksidesync.states` table for `lua`.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let st = StateHub::get(lua)?;
    let node = Node::get(lua)?;
    let fns: &[(&str, ApiFn)] = &[("spawn", spawn), ("spawnfile", spawnfile), ("count", count)];
    let t = crate::make_table(lua, &st, fns)?;
    t.raw_set("id", node.id)?;
    if let Some(parent) = &node.parent {
        let handle = Peer {
            me: node.id,
            peer: parent.id,
            port: parent.port.clone(),
            child: None,
        };
        t.raw_set("parent", lua.create_userdata(handle)?)?;
    }
    Ok(t)
}

/// `states.spawn(source, ...)` → a handle.
fn spawn(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let source = match a.pop_front() {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        other => {
            let got = other.as_ref().map_or("no value", lua_type);
            return Err(format!(
                "darksidesync.states: spawn: expected the chunk's source (a string), got {got}"
            )
            .into());
        }
    };
    let script = Script {
        source,
        chunkname: "=darksidesync.states.spawn".into(),
    };
    start(lua, script, a, "spawn")
}

/// `states.spawnfile(path, ...)` → a handle.
fn spawnfile(lua: &Lua, _st: &StateHub, mut a: MultiValue) -> ApiResult {
    let path = match a.pop_front() {
        Some(Value::String(s)) => s.to_string_lossy(),
        other => {
            let got = other.as_ref().map_or("no value", lua_type);
            return Err(
                format!("darksidesync.states: spawnfile: expected a file name, got {got}").into(),
            );
        }
    };
    let source = std::fs::read(&path)
        .map_err(|e| format!("darksidesync.states: spawnfile: cannot read {path}: {e}"))?;
    let script = Script {
        source,
        chunkname: format!("@{path}"),
    };
    start(lua, script, a, "spawnfile")
}

fn start(lua: &Lua, script: Script, args: MultiValue, what: &str) -> ApiResult {
    // Compiled here too, so that a syntax error is the caller's at once.
    if let Err(e) = lua
        .load(&script.source[..])
        .set_name(&script.chunkname)
        .into_function()
    {
        let text = match e {
            mlua::Error::SyntaxError { message, .. } => message,
            other => other.to_string(),
        };
        return Err(format!("darksidesync.states: {what}: {text}").into());
    }
    let args = Portable::from_multi(&args, &format!("darksidesync.states: {what}"))?;
    let node = Node::get(lua)?;
    let c = child::spawn(lua, &node, script, args)
        .map_err(|e| format!("darksidesync.states: {what}: {e}"))?;
    let handle = Peer {
        me: node.id,
        peer: c.id,
        port: c.port.clone(),
        child: Some(c),
    };
    Ok(MultiValue::from_iter([Value::UserData(
        lua.create_userdata(handle)?,
    )]))
}

/// `states.count()` → how many spawned states' threads run now.
fn count(_lua: &Lua, _st: &StateHub, _a: MultiValue) -> ApiResult {
    Ok(MultiValue::from_iter([Value::Integer(
        child::running() as i64
    )]))
}
