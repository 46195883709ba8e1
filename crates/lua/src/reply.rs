//! The callable reply userdata that `poll()` puts in `args[1]` for a
//! blocking delivery (DSS's `"DSS.queueitem.mt"`).
//!
//! * Calling it hands its arguments to the delivery's [`ReplySink`],
//!   returns what the sink returns, and releases the waiting thread.
//! * Later calls do nothing and return nothing.
//! * Collected uncalled (or dropped at `lua_close`), it drops the sink,
//!   which releases the waiter as garbage.

use std::cell::RefCell;

use mlua::{Lua, MetaMethod, MultiValue, UserData, UserDataMethods};

use crate::item::ReplySink;

/// The reply userdata. Holds the sink until the first call.
pub(crate) struct ReplyHandle {
    sink: RefCell<Option<Box<dyn ReplySink>>>,
}

impl ReplyHandle {
    pub(crate) fn new(sink: Box<dyn ReplySink>) -> ReplyHandle {
        ReplyHandle {
            sink: RefCell::new(Some(sink)),
        }
    }

    fn answer(&self, lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue> {
        // Take the sink before calling it, so a re-entrant call (from
        // inside a return callback) finds it gone and does nothing.
        let sink = self.sink.borrow_mut().take();
        match sink {
            Some(sink) => sink.send(lua, values),
            None => Ok(MultiValue::new()),
        }
    }
}

impl UserData for ReplyHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Call, |lua, this, values: MultiValue| {
            this.answer(lua, values)
        });
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(if this.sink.borrow().is_some() {
                "darksidesync.reply (pending)"
            } else {
                "darksidesync.reply (answered)"
            })
        });
    }
}
