//! The callable reply userdata that `poll()` puts in `args[1]` for a
//! blocking delivery (DSS's `"DSS.queueitem.mt"`).
//!
//! * Calling it hands its arguments to the delivery's [`ReplySink`],
//!   returns what the sink returns, and releases the waiting thread.
//! * Later calls do nothing and return nothing.
//! * Collected uncalled (or dropped at `lua_close`), it drops the sink,
//!   which releases the waiter as garbage.
//!
//! It is a plain full userdata (see [`raw::new_userdata_with`]), not an mlua
//! one: its `__gc` needs nothing of mlua, and its `__call`/`__tostring`
//! are Lua functions from `prelude.lua` that check the state's closing
//! flag first, so a finaliser that calls it during `lua_close` gets the
//! error "darksidesync: state is closing" instead of reaching mlua's
//! machinery after mlua has torn it down.

use std::ffi::CStr;

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::item::ReplySink;
use crate::raw::{self, RawUserdata};

/// The reply userdata's block. Holds the sink until the first call.
#[derive(Default)]
pub(crate) struct ReplyHandle {
    sink: Option<Box<dyn ReplySink>>,
}

impl RawUserdata for ReplyHandle {
    const METATABLE: &'static CStr = c"darksidesync.reply";
}

/// [`ReplyHandle::METATABLE`] as a `&str`.
const METATABLE_NAME: &str = "darksidesync.reply";

/// Creates a reply userdata holding `sink`.
pub(crate) fn create(lua: &Lua, sink: Box<dyn ReplySink>) -> mlua::Result<Value> {
    raw::new_userdata_with(lua, ReplyHandle { sink: Some(sink) })
}

/// `fail(reply, text)`: answers a reply object with an error text, as a
/// failing dispatched callback does; nothing when already answered.
pub(crate) fn make_fail(lua: &Lua) -> mlua::Result<Function> {
    lua.create_function(|lua, (this, text): (Value, String)| {
        if let Some(Some(sink)) =
            raw::with_userdata(lua, &this, |h: &mut ReplyHandle| h.sink.take())
        {
            sink.fail(lua, text);
        }
        Ok(())
    })
}

/// Creates the reply metatable and stores it in the registry. `guard`
/// (from `prelude.lua`) wraps a raw function with the closing check.
pub(crate) fn register_metatable(lua: &Lua, guard: &Function) -> mlua::Result<()> {
    let mt: Table = lua.create_table()?;
    let answer = lua.create_function(|lua, (this, values): (Value, MultiValue)| {
        // Take the sink before calling it, so a re-entrant call (from
        // inside a return callback) finds it gone and does nothing.
        let Some(sink) = raw::with_userdata(lua, &this, |h: &mut ReplyHandle| h.sink.take()) else {
            return Err(mlua::Error::runtime(
                "darksidesync.reply: expected a reply object",
            ));
        };
        match sink {
            Some(sink) => sink.send(lua, values),
            None => Ok(MultiValue::new()),
        }
    })?;
    let describe = lua.create_function(|lua, this: Value| {
        let pending =
            raw::with_userdata(lua, &this, |h: &mut ReplyHandle| h.sink.is_some()).unwrap_or(false);
        Ok(if pending {
            "darksidesync.reply (pending)"
        } else {
            "darksidesync.reply (answered)"
        })
    })?;
    mt.raw_set("__call", guard.call::<Function>(answer)?)?;
    mt.raw_set("__tostring", guard.call::<Function>(describe)?)?;
    mt.raw_set("__metatable", "darksidesync.reply")?;
    mt.raw_set("__gc", raw::gc_metamethod::<ReplyHandle>(lua)?)?;
    lua.set_named_registry_value(METATABLE_NAME, mt)
}
