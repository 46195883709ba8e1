//! [`Node`]: what `darksidesync.states` keeps per Lua state — its id, the
//! port its parent and children send to, its message handlers, its
//! children — and the close path that stops and joins those children.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use darksidesync_core::Port;
use mlua::{Function, Lua, MultiValue, Value};

use super::child::{self, Child, Outcome};
use super::deadlock::WaitKey;
use super::portable::Portable;
use crate::item::{Item, Prepared, ReplySink};
use crate::state::StateHub;
use darksidesync_core::Reply;

/// Ids of states, process-wide: the first state to load the module (the
/// main one, as a rule) gets 0.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The next state id.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A child's way to its parent.
#[derive(Clone)]
pub(crate) struct ParentLink {
    pub(crate) id: u64,
    pub(crate) port: Port<Item>,
}

/// Per Lua state (mlua app data), dropped when the state closes.
pub(crate) struct Node {
    pub(crate) id: u64,
    /// Where this state's parent and children send to.
    pub(crate) port: Port<Item>,
    /// `onmessage` handlers, by the sending state's id.
    pub(crate) handlers: RefCell<HashMap<u64, Function>>,
    /// `onexit` handlers, by child id.
    pub(crate) exit_handlers: RefCell<HashMap<u64, Function>>,
    /// Children started from this state that may still run.
    pub(crate) children: RefCell<Vec<Arc<Child>>>,
    pub(crate) parent: Option<ParentLink>,
}

impl Node {
    /// This state's node; a state that was not started by `spawn` becomes a
    /// root on first use.
    pub(crate) fn get(lua: &Lua) -> mlua::Result<Rc<Node>> {
        if let Some(node) = lua.app_data_ref::<Rc<Node>>() {
            return Ok(Rc::clone(&node));
        }
        Node::install(lua, next_id(), None)
    }

    /// Sets up the node of a new state.
    pub(crate) fn install(
        lua: &Lua,
        id: u64,
        parent: Option<ParentLink>,
    ) -> mlua::Result<Rc<Node>> {
        let port = StateHub::get(lua)?
            .register("darksidesync.states", |_| {})
            .map_err(|e| {
                mlua::Error::runtime(format!("darksidesync.states: cannot register: {e}"))
            })?;
        let node = Rc::new(Node {
            id,
            port,
            handlers: RefCell::default(),
            exit_handlers: RefCell::default(),
            children: RefCell::default(),
            parent,
        });
        lua.set_app_data(Rc::clone(&node));
        Ok(node)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Children blocked calling this state are released ("closed") and
        // nothing more can be queued here; then the children stop.
        self.port.unregister();
        child::stop_all(std::mem::take(&mut *self.children.borrow_mut()));
    }
}

/// The item that tells a parent that child `id` ended: its `onexit`
/// handler gets `true` and the results, or `false` and the error. The
/// child's handlers go with it (nothing more can come from it).
pub(crate) fn exited(id: u64, outcome: Outcome) -> Item {
    Item::from_fn(move |lua| {
        let node = Node::get(lua)?;
        node.handlers.borrow_mut().remove(&id);
        let handler = node.exit_handlers.borrow_mut().remove(&id);
        let Some(f) = handler else {
            return Ok(Prepared {
                call: None,
                reply: None,
            });
        };
        let args = match outcome {
            Ok(values) => {
                let mut args = Portable::to_multi(&values, lua)?;
                args.push_front(Value::Boolean(true));
                args
            }
            Err(e) => {
                MultiValue::from_iter([Value::Boolean(false), Value::String(lua.create_string(e)?)])
            }
        };
        Ok(Prepared {
            call: Some((Value::Function(f), args)),
            reply: None,
        })
    })
}

/// The answer path of a call: the caller's reply and its wait's edge.
pub(crate) type CallReply = (Reply<Vec<Portable>>, WaitKey);

/// The item that carries one message from state `from` to the state that
/// drains it. With `reply`, the handler's return values answer a call.
pub(crate) fn message(from: u64, values: Vec<Portable>, reply: Option<CallReply>) -> Item {
    Item::from_fn(move |lua| deliver(lua, from, values, reply))
}

fn deliver(
    lua: &Lua,
    from: u64,
    values: Vec<Portable>,
    reply: Option<CallReply>,
) -> mlua::Result<Prepared> {
    let node = Node::get(lua)?;
    let handler = node.handlers.borrow().get(&from).cloned();
    let call = match handler {
        Some(f) => (Value::Function(f), Portable::to_multi(&values, lua)?),
        None => {
            // Raised as the callback: the error handler sees it, or the
            // caller gets it as the handler error.
            let error: Function = lua.globals().get("error")?;
            let text = format!(
                "darksidesync.states: a message from state {from} arrived but no onmessage handler is set for it"
            );
            (
                Value::Function(error),
                MultiValue::from_iter([Value::String(lua.create_string(text)?), Value::Integer(0)]),
            )
        }
    };
    Ok(Prepared {
        call: Some(call),
        reply: reply.map(|(r, key)| Box::new(MessageReply(Some(r), key)) as Box<dyn ReplySink>),
    })
}

/// The answer path of a call between states. The caller's edge in the
/// would-deadlock table goes before the caller wakes (see `deadlock.rs`),
/// also when the reply is dropped unanswered.
struct MessageReply(Option<Reply<Vec<Portable>>>, WaitKey);

impl ReplySink for MessageReply {
    fn send(mut self: Box<Self>, _lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue> {
        let copied = Portable::from_multi(&values, "darksidesync.states: the reply");
        self.1.clear();
        if let Some(reply) = self.0.take() {
            // A caller that already timed out gets nothing; not an error.
            let _ = match copied {
                Ok(copied) => reply.send(copied).is_ok(),
                Err(e) => reply.fail(e),
            };
        }
        Ok(MultiValue::new())
    }

    fn fail(mut self: Box<Self>, _lua: &Lua, message: String) {
        self.1.clear();
        if let Some(reply) = self.0.take() {
            let _ = reply.fail(message);
        }
    }
}

impl Drop for MessageReply {
    fn drop(&mut self) {
        self.1.clear(); // then the unanswered reply releases the caller
    }
}
