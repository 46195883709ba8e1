//! `darksidesync.host`: more Lua states, each on its own OS thread with its
//! own hub, exchanging messages through the same queues as every other
//! background library (LuaVortex's "many interpreters, each with its own
//! lock", done with one FIFO per state instead of a shared lock).
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
//! Values are copied as plain data ([`Msg`]): nil, booleans, numbers,
//! strings and tables of them.
//!
//! # Lifetimes (who keeps whom running)
//!
//! * A running child holds a keep-alive reference on its parent's hub until
//!   its exit is queued there: the parent's `run()` waits for its children
//!   and always sees `onexit`.
//! * The parent's handle holds a keep-alive reference on the child's hub
//!   (the *link*) until `child:close()`, the handle is collected, or the
//!   child's main chunk returns without having set `host.onmessage` (then
//!   nothing the parent sends could be handled). A worker that waits for
//!   messages therefore runs until its parent closes it.
//! * Only children call their parent (`host.parent:call`); a parent never
//!   blocks on a child, so calls cannot form a cycle and deadlock.
//!
//! A child whose script fails reports `onexit(false, message)`; without an
//! `onexit` handler the failure is raised in the parent as a callback error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use darksidesync::{Item, Prepared, ReplySink, StateHub};
use darksidesync_core::{KeepAlive, Port, Reply};
use mlua::{AnyUserData, Function, Lua, MultiValue, Table, UserData, UserDataFields, Value};

use crate::message::Msg;
use crate::runtime::{self, Script};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How long `host.spawn` waits for the new state to come up. Creating a
/// Lua state takes microseconds; this only bounds a broken system.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// What a child state knows about its parent.
pub struct ParentInfo {
    /// The parent's host port.
    port: Port<Item>,
    /// This child's id.
    id: u64,
}

/// The keep-alive reference the parent's handle holds on the child's hub.
#[derive(Default)]
struct Link {
    keep: Mutex<Option<KeepAlive<Item>>>,
}

impl Link {
    fn is_open(&self) -> bool {
        self.keep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
    fn close(&self) -> bool {
        let k = self.keep.lock().unwrap_or_else(|p| p.into_inner()).take();
        k.is_some() // released here, outside the lock
    }
}

/// A child's callbacks in its parent.
#[derive(Default)]
struct ChildSlot {
    onmessage: Option<Function>,
    onexit: Option<Function>,
}

/// Per state (app data).
struct HostState {
    id: u64,
    /// This state's port: messages from its parent and its children.
    port: Port<Item>,
    children: RefCell<HashMap<u64, ChildSlot>>,
    /// The handler of messages from the parent.
    onmessage: RefCell<Option<Function>>,
    parent: Option<ParentInfo>,
    /// The parent's link to this state (children only).
    link: Option<Arc<Link>>,
}

fn host_state(lua: &Lua) -> mlua::Result<Rc<HostState>> {
    lua.app_data_ref::<Rc<HostState>>()
        .map(|s| Rc::clone(&s))
        .ok_or_else(|| {
            mlua::Error::runtime(
                "darksidesync.host: this state was not created by darksidesync-host",
            )
        })
}

/// Sets up the host state of a new Lua state.
pub fn install(lua: &Lua, parent: Option<ParentInfo>) -> mlua::Result<()> {
    let st = StateHub::get(lua)?;
    let port = st
        .register("darksidesync.host", |_| {})
        .map_err(|e| mlua::Error::runtime(format!("darksidesync.host: cannot register: {e}")))?;
    let link = match parent {
        None => None,
        Some(_) => {
            let keep = port
                .keep_alive()
                .map_err(|e| mlua::Error::runtime(format!("darksidesync.host: {e}")))?;
            Some(Arc::new(Link {
                keep: Mutex::new(Some(keep)),
            }))
        }
    };
    let id = parent.as_ref().map_or(0, |p| p.id);
    lua.set_app_data(Rc::new(HostState {
        id,
        port,
        children: Default::default(),
        onmessage: RefCell::new(None),
        parent,
        link,
    }));
    Ok(())
}

/// After the main chunk: a child with no message handler cannot use its
/// parent's messages, so it stops waiting for them.
pub fn after_main_chunk(lua: &Lua) {
    if let Ok(hs) = host_state(lua) {
        if let Some(link) = &hs.link {
            if hs.onmessage.borrow().is_none() {
                link.close();
            }
        }
    }
}

// ----- items ---------------------------------------------------------------

/// An error raised as the callback of an item: goes to the error handler
/// (fire-and-forget) or becomes the caller's handler error (calls).
fn raise(lua: &Lua, text: String) -> mlua::Result<Prepared> {
    let error: Function = lua.globals().get("error")?;
    Ok(Prepared {
        call: Some((
            Value::Function(error),
            MultiValue::from_iter([Value::String(lua.create_string(text)?), Value::Integer(0)]),
        )),
        reply: None,
    })
}

/// The answer path of `host.parent:call`.
struct MsgReply(Reply<Vec<Msg>>);

impl ReplySink for MsgReply {
    fn send(self: Box<Self>, _lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue> {
        let _ = match Msg::from_multi(&values, "host: the reply") {
            Ok(m) => self.0.send(m).is_ok(),
            Err(e) => self.0.fail(e),
        };
        Ok(MultiValue::new())
    }

    fn fail(self: Box<Self>, _lua: &Lua, message: String) {
        let _ = self.0.fail(message);
    }
}

/// A message from child `id` to its parent (this state).
fn from_child(
    lua: &Lua,
    id: u64,
    msg: Vec<Msg>,
    reply: Option<Reply<Vec<Msg>>>,
) -> mlua::Result<Prepared> {
    let hs = host_state(lua)?;
    let handler = hs
        .children
        .borrow()
        .get(&id)
        .and_then(|s| s.onmessage.clone());
    let mut prepared = match handler {
        Some(f) => Prepared { call: Some((Value::Function(f), Msg::to_multi(&msg, lua)?)), reply: None },
        None => raise(lua, format!("darksidesync.host: state {id} sent a message but its handle has no onmessage handler"))?,
    };
    prepared.reply = reply.map(|r| Box::new(MsgReply(r)) as Box<dyn ReplySink>);
    Ok(prepared)
}

/// A message from the parent to this state.
fn from_parent(lua: &Lua, msg: Vec<Msg>) -> mlua::Result<Prepared> {
    let hs = host_state(lua)?;
    let handler = hs.onmessage.borrow().clone();
    match handler {
        Some(f) => Ok(Prepared {
            call: Some((Value::Function(f), Msg::to_multi(&msg, lua)?)),
            reply: None,
        }),
        None => raise(
            lua,
            "darksidesync.host: a message arrived from the parent but host.onmessage is not set"
                .into(),
        ),
    }
}

/// Child `id` ended (its state is closed).
fn child_exit(lua: &Lua, id: u64, result: Result<(), String>) -> mlua::Result<Prepared> {
    let hs = host_state(lua)?;
    let slot = hs.children.borrow_mut().remove(&id).unwrap_or_default();
    match (slot.onexit, result) {
        (Some(f), Ok(())) => Ok(Prepared {
            call: Some((
                Value::Function(f),
                MultiValue::from_iter([Value::Boolean(true)]),
            )),
            reply: None,
        }),
        (Some(f), Err(e)) => Ok(Prepared {
            call: Some((
                Value::Function(f),
                MultiValue::from_iter([
                    Value::Boolean(false),
                    Value::String(lua.create_string(e)?),
                ]),
            )),
            reply: None,
        }),
        (None, Ok(())) => Ok(Prepared {
            call: None,
            reply: None,
        }),
        (None, Err(e)) => raise(lua, format!("state {id} failed: {e}")),
    }
}

// ----- handles -------------------------------------------------------------

/// The parent's handle on a child.
struct ChildHandle {
    id: u64,
    /// The child's host port.
    port: Port<Item>,
    link: Arc<Link>,
}

impl Drop for ChildHandle {
    fn drop(&mut self) {
        self.link.close();
    }
}

fn closed(lua: &Lua) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Boolean(false),
        Value::String(lua.create_string("closed")?),
    ]))
}

impl UserData for ChildHandle {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            method_table::<ChildHandle>(
                lua,
                "child",
                &[
                    ("send", child_send),
                    ("onmessage", child_onmessage),
                    ("onexit", child_onexit),
                    ("close", child_close),
                    ("id", child_id),
                ],
            )
        });
        fields.add_meta_field("__name", "darksidesync.host.child");
    }
}

fn arg_function(a: &MultiValue, i: usize, what: &str) -> mlua::Result<Option<Function>> {
    match a.get(i) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Function(f)) => Ok(Some(f.clone())),
        Some(other) => Err(mlua::Error::runtime(format!(
            "{what}: expected a function or nil, got {}",
            crate::message::lua_type(other)
        ))),
    }
}

/// `child:send(...)` → true, or false and "closed".
fn child_send(lua: &Lua, this: &ChildHandle, values: MultiValue) -> mlua::Result<MultiValue> {
    let msg = Msg::from_multi(&values, "child:send").map_err(mlua::Error::runtime)?;
    if !this.link.is_open() {
        return closed(lua);
    }
    match this
        .port
        .post(Item::from_fn(move |lua| from_parent(lua, msg)))
    {
        Ok(_) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(_) => closed(lua),
    }
}

/// `child:onmessage(fn)`.
fn child_onmessage(lua: &Lua, this: &ChildHandle, a: MultiValue) -> mlua::Result<MultiValue> {
    let f = arg_function(&a, 0, "child:onmessage")?;
    set_slot(lua, this.id, |s| s.onmessage = f)?;
    Ok(MultiValue::new())
}

/// `child:onexit(fn)`.
fn child_onexit(lua: &Lua, this: &ChildHandle, a: MultiValue) -> mlua::Result<MultiValue> {
    let f = arg_function(&a, 0, "child:onexit")?;
    set_slot(lua, this.id, |s| s.onexit = f)?;
    Ok(MultiValue::new())
}

/// `child:close()` → true when the link was open.
fn child_close(_lua: &Lua, this: &ChildHandle, _a: MultiValue) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([Value::Boolean(this.link.close())]))
}

/// `child:id()` → the child's id.
fn child_id(_lua: &Lua, this: &ChildHandle, _a: MultiValue) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([Value::Integer(this.id as i64)]))
}

fn set_slot(lua: &Lua, id: u64, set: impl FnOnce(&mut ChildSlot)) -> mlua::Result<()> {
    let hs = host_state(lua)?;
    let mut children = hs.children.borrow_mut();
    match children.get_mut(&id) {
        Some(slot) => {
            set(slot);
            Ok(())
        }
        None => Err(mlua::Error::runtime(format!(
            "darksidesync.host: state {id} has already exited"
        ))),
    }
}

/// A child's handle on its parent (`host.parent`).
struct ParentHandle {
    id: u64,
    port: Port<Item>,
}

impl UserData for ParentHandle {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            method_table::<ParentHandle>(
                lua,
                "host.parent",
                &[("send", parent_send), ("call", parent_call)],
            )
        });
        fields.add_meta_field("__name", "darksidesync.host.parent");
    }
}

/// `host.parent:send(...)` → true, or false and "closed".
fn parent_send(lua: &Lua, this: &ParentHandle, values: MultiValue) -> mlua::Result<MultiValue> {
    let msg = Msg::from_multi(&values, "host.parent:send").map_err(mlua::Error::runtime)?;
    let id = this.id;
    match this
        .port
        .post(Item::from_fn(move |lua| from_child(lua, id, msg, None)))
    {
        Ok(_) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(_) => closed(lua),
    }
}

/// `host.parent:call(...)` → the parent handler's return values.
fn parent_call(lua: &Lua, this: &ParentHandle, values: MultiValue) -> mlua::Result<MultiValue> {
    let msg = Msg::from_multi(&values, "host.parent:call").map_err(mlua::Error::runtime)?;
    let id = this.id;
    match this.port.call(
        |reply| Item::from_fn(move |lua| from_child(lua, id, msg, Some(reply))),
        None,
    ) {
        Ok(values) => Msg::to_multi(&values, lua),
        Err(e) => Err(mlua::Error::runtime(format!("host.parent:call: {e}"))),
    }
}

// ----- plain string errors -------------------------------------------------

/// Wraps a Rust function so that its errors reach Lua as plain strings
/// (as the module's own functions raise them), not as mlua error objects.
const PLAIN_ERRORS: &str = r#"
local pcall, error, tostring, type = pcall, error, tostring, type
local function check(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) ~= "string" then e = tostring(e) end
  -- mlua's error objects read "runtime error: <text>", with a traceback
  -- appended when raised from inside a callback; the caller's own
  -- traceback is what matters.
  e = e:gsub("^runtime error: ", ""):gsub("\nstack traceback:.*$", "")
  error(e, 0)
end
return function(f) return function(...) return check(pcall(f, ...)) end end
"#;

fn plain(lua: &Lua, f: Function) -> mlua::Result<Function> {
    let wrap: Function =
        match lua.named_registry_value::<Option<Function>>("darksidesync-host.plain")? {
            Some(w) => w,
            None => {
                let w: Function = lua
                    .load(PLAIN_ERRORS)
                    .set_name("=darksidesync.host")
                    .eval()?;
                lua.set_named_registry_value("darksidesync-host.plain", w.clone())?;
                w
            }
        };
    wrap.call(f)
}

type Method<T> = fn(&Lua, &T, MultiValue) -> mlua::Result<MultiValue>;

/// The `__index` table of a handle type: its methods, raising plain errors.
fn method_table<T: 'static>(
    lua: &Lua,
    kind: &'static str,
    methods: &[(&'static str, Method<T>)],
) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for &(name, m) in methods {
        let f = lua.create_function(move |lua, mut a: MultiValue| {
            let this = match a.pop_front() {
                Some(Value::UserData(ud)) => ud.borrow::<T>().ok(),
                _ => None,
            };
            let Some(this) = this else {
                return Err(mlua::Error::runtime(format!(
                    "{kind}:{name}: expected a handle as self (use the colon syntax)"
                )));
            };
            m(lua, &this, a)
        })?;
        t.set(name, plain(lua, f)?)?;
    }
    Ok(t)
}

// ----- spawn ---------------------------------------------------------------

fn load_script(lua: &Lua, script: &Value) -> mlua::Result<Script> {
    let (source, chunkname, arg0) = match script {
        Value::String(path) => {
            let path = path.to_string_lossy();
            let source = std::fs::read(&*path).map_err(|e| {
                mlua::Error::runtime(format!("host.spawn: cannot read {path}: {e}"))
            })?;
            (source, format!("@{path}"), path)
        }
        Value::Table(t) => {
            let source: mlua::String =
                t.get::<Option<mlua::String>>("source")?.ok_or_else(|| {
                    mlua::Error::runtime("host.spawn: a table script needs a source string")
                })?;
            let name = t
                .get::<Option<String>>("name")?
                .unwrap_or_else(|| "host.spawn".into());
            (source.as_bytes().to_vec(), format!("={name}"), name)
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "host.spawn: expected a script path or {{source = ...}}, got {}",
                crate::message::lua_type(other)
            )))
        }
    };
    // Compile here too, so a syntax error is the caller's error right away.
    lua.load(&source[..])
        .set_name(&chunkname)
        .into_function()
        .map_err(|e| mlua::Error::runtime(format!("host.spawn: {e}")))?;
    Ok(Script {
        source,
        chunkname,
        arg0,
        args: Vec::new(),
    })
}

type Started = Result<(Port<Item>, Arc<Link>), String>;

fn spawn(lua: &Lua, (script, rest): (Value, MultiValue)) -> mlua::Result<AnyUserData> {
    let mut script = load_script(lua, &script)?;
    script.args = Msg::from_multi(&rest, "host.spawn").map_err(mlua::Error::runtime)?;
    let hs = host_state(lua)?;
    let parent_keep = hs
        .port
        .keep_alive()
        .map_err(|e| mlua::Error::runtime(format!("host.spawn: {e}")))?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let parent = ParentInfo {
        port: hs.port.clone(),
        id,
    };
    let (tx, rx) = mpsc::sync_channel::<Started>(1);
    std::thread::Builder::new()
        .name(format!("darksidesync-state-{id}"))
        .spawn(move || child_main(script, parent, parent_keep, tx))
        .map_err(|e| mlua::Error::runtime(format!("host.spawn: cannot start a thread: {e}")))?;
    let (port, link) = match rx.recv_timeout(START_PATIENCE) {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            return Err(mlua::Error::runtime(format!(
                "host.spawn: the new state failed to start: {e}"
            )))
        }
        Err(_) => {
            return Err(mlua::Error::runtime(
                "host.spawn: the new state did not start",
            ))
        }
    };
    hs.children.borrow_mut().insert(id, ChildSlot::default());
    lua.create_userdata(ChildHandle { id, port, link })
}

/// The child state's thread.
fn child_main(
    script: Script,
    parent: ParentInfo,
    parent_keep: KeepAlive<Item>,
    tx: mpsc::SyncSender<Started>,
) {
    let parent_port = parent.port.clone();
    let id = parent.id;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lua = match runtime::new_state(Some(parent)) {
            Ok(lua) => lua,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return Err(format!("cannot create the state: {e}"));
            }
        };
        let started = host_state(&lua).map(|hs| {
            (
                hs.port.clone(),
                hs.link.clone().expect("a child has a link"),
            )
        });
        let _ = tx.send(started.map_err(|e| e.to_string()));
        let result = runtime::run(&lua, &script).map_err(|e| e.to_string());
        drop(lua); // close the state (and its hub) before telling the parent
        result
    }));
    let result = outcome.unwrap_or_else(|_| Err("the state's thread panicked".into()));
    let _ = parent_port.post(Item::from_fn(move |lua| child_exit(lua, id, result)));
    drop(parent_keep); // after the exit is queued: the parent's run() sees it
}

/// Builds the `darksidesync.host` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let hs = host_state(lua)?;
    let t = lua.create_table()?;
    t.set("spawn", plain(lua, lua.create_function(spawn)?)?)?;
    let onmessage = lua.create_function(|lua, a: MultiValue| {
        let f = arg_function(&a, 0, "host.onmessage")?;
        let hs = host_state(lua)?;
        if hs.parent.is_none() {
            return Err(mlua::Error::runtime(
                "host.onmessage: the root state has no parent to receive from",
            ));
        }
        hs.onmessage.replace(f);
        Ok(())
    })?;
    t.set("onmessage", plain(lua, onmessage)?)?;
    t.set("id", hs.id)?;
    if let Some(p) = &hs.parent {
        t.set(
            "parent",
            ParentHandle {
                id: p.id,
                port: p.port.clone(),
            },
        )?;
    }
    Ok(t)
}
