//! `darksidesync.signal`: POSIX signals delivered to Lua callbacks.
//!
//! ```lua
//! local signal = require "darksidesync.signal"
//! local h = signal.on("INT", function(name, number) print("got", name) end)
//! local d = signal.on("TERM", on_term, { keepalive = true }) -- run() waits for it
//! h:cancel()           --> true when it was active
//! signal.raise("USR1") -- sends a signal to this process
//! signal.pid()         --> this process's id
//! ```
//!
//! DarkSideSync's `luaexit` ran Lua from a signal handler; here the signal
//! handler does only what is async-signal-safe. The `signal-hook` crate's
//! handler writes to a self-pipe; its iterator, on one background thread
//! per process, reads the pipe and this library posts one item per
//! subscribed callback to each subscribing Lua state's hub. The callback
//! runs on the Lua thread, like any other delivery.
//!
//! Once a signal was subscribed in the process, its handler stays
//! installed. While no callback is subscribed to it, a signal arriving
//! gets its default action (emulated by `signal-hook`), so Ctrl-C still
//! ends a program whose handlers were all cancelled.
//!
//! A handler does not keep `run()` going unless `keepalive = true`: a
//! program that only handles Ctrl-C ends when its other work does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use darksidesync_core::{KeepAlive, Port};
use mlua::{Function, Lua, MultiValue, Table, UserData, UserDataFields, Value};
use signal_hook::iterator::{Handle, Signals};

use super::{function, lib_state, methods, one, signal_name, signal_number, this};
use crate::item::{Item, Prepared};
use crate::state::StateHub;
use crate::{args, make_table, ApiError, ApiResult};

/// Signals that can be subscribed to.
const ALLOWED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// How long the signal thread waits for room in a full queue before it
/// gives up on that one delivery (it must not stall the other states).
const POST_PATIENCE: Duration = Duration::from_millis(500);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

// ----- the process-wide signal thread ------------------------------------

/// A subscription, as the signal thread sees it.
struct Sub {
    id: u64,
    owner: u64,
    port: Port<Item>,
    _keep: Option<KeepAlive<Item>>,
}

struct Registry {
    /// Adds signals to the running iterator.
    handle: Handle,
    /// Subscriptions per signal, in order of subscription.
    subs: HashMap<libc::c_int, Vec<Sub>>,
}

fn registry() -> Result<MutexGuard<'static, Registry>, String> {
    static R: OnceLock<Result<Mutex<Registry>, String>> = OnceLock::new();
    let r = R.get_or_init(|| {
        let mut signals = Signals::new::<[libc::c_int; 0], libc::c_int>([])
            .map_err(|e| format!("signal: cannot set up signal handling: {e}"))?;
        let handle = signals.handle();
        std::thread::Builder::new()
            .name("darksidesync-signal".into())
            .spawn(move || {
                for sig in signals.forever() {
                    deliver(sig);
                }
            })
            .map_err(|e| format!("signal: cannot start the signal thread: {e}"))?;
        Ok(Mutex::new(Registry {
            handle,
            subs: HashMap::new(),
        }))
    });
    match r {
        Ok(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner())),
        Err(e) => Err(e.clone()),
    }
}

/// On the signal thread: one item per subscription, or the default action.
fn deliver(sig: libc::c_int) {
    let targets: Vec<(u64, Port<Item>)> = match registry() {
        Ok(r) => r
            .subs
            .get(&sig)
            .map(|v| v.iter().map(|s| (s.id, s.port.clone())).collect())
            .unwrap_or_default(),
        Err(_) => return,
    };
    if targets.is_empty() {
        // Nobody listens: behave as if we had never installed a handler.
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        return;
    }
    for (id, port) in targets {
        let item = Item::from_fn(move |lua| prepare(lua, id, sig));
        // A closed or unregistered state just misses it: it is gone.
        let _ = port.post_timeout(item, POST_PATIENCE);
    }
}

fn unsubscribe(id: u64) -> bool {
    let Ok(mut r) = registry() else { return false };
    let mut gone = None;
    for subs in r.subs.values_mut() {
        if let Some(i) = subs.iter().position(|s| s.id == id) {
            gone = Some(subs.remove(i));
            break;
        }
    }
    drop(r);
    gone.is_some() // the keep-alive is released here, outside the lock
}

fn unsubscribe_owner(owner: u64) {
    let Ok(mut r) = registry() else { return };
    let mut gone = Vec::new();
    for subs in r.subs.values_mut() {
        let (drop_, keep): (Vec<Sub>, Vec<Sub>) = std::mem::take(subs)
            .into_iter()
            .partition(|s| s.owner == owner);
        *subs = keep;
        gone.extend(drop_);
    }
    drop(r);
    drop(gone);
}

// ----- the Lua side -------------------------------------------------------

struct SignalState {
    owner: u64,
    port: Port<Item>,
    live: RefCell<HashMap<u64, Function>>,
}

fn state(lua: &Lua) -> Result<Rc<SignalState>, ApiError> {
    lib_state(lua, |st: &StateHub| {
        let owner = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let port = st
            .hub
            .register("darksidesync.signal", move |_| unsubscribe_owner(owner))
            .map_err(|e| format!("signal: cannot register: {e}"))?;
        Ok(SignalState {
            owner,
            port,
            live: Default::default(),
        })
    })
}

fn prepare(lua: &Lua, id: u64, sig: libc::c_int) -> mlua::Result<Prepared> {
    let callback =
        super::existing_state::<SignalState>(lua).and_then(|s| s.live.borrow().get(&id).cloned());
    Ok(Prepared {
        call: callback.map(|f| {
            let args = MultiValue::from_iter([
                Value::String(lua.create_string(signal_name(sig)).expect("a short string")),
                Value::Integer(i64::from(sig)),
            ]);
            (Value::Function(f), args)
        }),
        reply: None,
    })
}

/// A subscription handle.
struct Subscription {
    id: u64,
}

impl UserData for Subscription {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| methods(lua, &[("cancel", cancel)]));
        fields.add_meta_field("__name", "darksidesync.signal");
    }
}

fn allowed(a: &MultiValue, what: &str) -> Result<libc::c_int, ApiError> {
    let sig = signal_number(a.front().unwrap_or(&Value::Nil), what)?;
    if !ALLOWED.contains(&sig) {
        let names: Vec<String> = ALLOWED.iter().map(|&s| signal_name(s)).collect();
        return Err(format!(
            "{what}: {} cannot be handled; use one of {}",
            signal_name(sig),
            names.join(", ")
        )
        .into());
    }
    Ok(sig)
}

/// `on(signal, fn [, {keepalive = bool}])` → handle.
fn on(lua: &Lua, _st: &StateHub, a: MultiValue) -> ApiResult {
    let sig = allowed(&a, "signal.on")?;
    let callback = function(a.get(1), "signal.on")?;
    let keepalive = match a.get(2) {
        None | Some(Value::Nil) => false,
        Some(Value::Table(t)) => t.get::<Option<bool>>("keepalive")?.unwrap_or(false),
        Some(other) => {
            return Err(format!(
                "signal.on: options must be a table or nil, got {}",
                args::type_name(other)
            )
            .into())
        }
    };
    let ss = state(lua)?;
    let keep = if keepalive {
        Some(
            ss.port
                .keep_alive()
                .map_err(|e| format!("signal.on: the state is closing: {e}"))?,
        )
    } else {
        None
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    {
        let mut r = registry()?;
        let subs = r.subs.entry(sig).or_default();
        if subs.is_empty() {
            // `add_signal` is idempotent: registering twice is harmless.
            r.handle
                .add_signal(sig)
                .map_err(|e| format!("signal.on: cannot handle {}: {e}", signal_name(sig)))?;
        }
        r.subs.entry(sig).or_default().push(Sub {
            id,
            owner: ss.owner,
            port: ss.port.clone(),
            _keep: keep,
        });
    }
    ss.live.borrow_mut().insert(id, callback);
    Ok(one(Value::UserData(
        lua.create_userdata(Subscription { id })?,
    )))
}

/// `h:cancel()` → true when it was active.
fn cancel(lua: &Lua, _st: &StateHub, a: MultiValue) -> ApiResult {
    let id = this::<Subscription>(&a, "signal:cancel")?.id;
    let was = super::existing_state::<SignalState>(lua)
        .is_some_and(|s| s.live.borrow_mut().remove(&id).is_some());
    unsubscribe(id);
    Ok(one(Value::Boolean(was)))
}

/// `raise(signal)` → true: sends the signal to this process.
fn raise(_lua: &Lua, _st: &StateHub, a: MultiValue) -> ApiResult {
    let sig = signal_number(a.front().unwrap_or(&Value::Nil), "signal.raise")?;
    // SAFETY: kill(2) with our own pid and a validated signal number has no
    // memory-safety preconditions.
    let rc = unsafe { libc::kill(libc::getpid(), sig) };
    if rc != 0 {
        return Err(format!("signal.raise: {}", std::io::Error::last_os_error()).into());
    }
    Ok(one(Value::Boolean(true)))
}

/// `pid()` → this process's id (what `kill` needs).
fn pid(_lua: &Lua, _st: &StateHub, _a: MultiValue) -> ApiResult {
    Ok(one(Value::Integer(i64::from(std::process::id()))))
}

/// Builds the `darksidesync.signal` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let st = StateHub::get(lua)?;
    make_table(lua, &st, &[("on", on), ("raise", raise), ("pid", pid)])
}
