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
//! per process, reads the pipe and this library posts one delivery per
//! subscribed callback to each subscribing Lua state, through
//! `darksidesync-binding` like any third-party library. The callback runs
//! on the Lua thread, like any other delivery: a
//! [`post_callback`](Dss::post_callback_timeout) that darksidesync calls
//! itself, so under the coroutine adapters (cqueues, Copas) it runs in a
//! coroutine of its own and may yield on their I/O.
//!
//! Once a signal was subscribed in the process, its handler stays
//! installed. While no callback is subscribed to it, a signal arriving
//! gets its default action (emulated by `signal-hook`), so Ctrl-C still
//! ends a program whose handlers were all cancelled.
//!
//! A handler does not keep `run()` going unless `keepalive = true` (then
//! it holds a [`Hold`]): a program that only handles Ctrl-C ends when its
//! other work does.

pub mod names;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use darksidesync_binding::{function, Dss, Hold, LibId, Prepared};
use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataFields, Value,
};
use signal_hook::iterator::{Handle, Signals};

use names::{name as signal_name, number as signal_number, type_name};

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

static LIB: LibId = LibId::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

// ----- the process-wide signal thread ------------------------------------

/// A subscription, as the signal thread sees it.
struct Sub {
    id: u64,
    owner: u64,
    dss: Dss,
    _keep: Option<Hold>,
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

/// On the signal thread: one delivery per subscription, or the default
/// action.
fn deliver(sig: libc::c_int) {
    let targets: Vec<(u64, Dss)> = match registry() {
        Ok(r) => r
            .subs
            .get(&sig)
            .map(|v| v.iter().map(|s| (s.id, s.dss.clone())).collect())
            .unwrap_or_default(),
        Err(_) => return,
    };
    if targets.is_empty() {
        // Nobody listens: behave as if we had never installed a handler.
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        return;
    }
    for (id, dss) in targets {
        // A closed or unregistered state just misses it: it is gone.
        let _ = dss.post_callback_timeout(move |lua| call_back(lua, id, sig), POST_PATIENCE);
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
    dss: Dss,
    live: RefCell<HashMap<u64, Function>>,
}

fn existing_state(lua: &Lua) -> Option<Rc<SignalState>> {
    lua.app_data_ref::<Rc<SignalState>>().map(|s| Rc::clone(&s))
}

/// On the Lua thread: the subscription's callback and its arguments, or
/// one that does nothing once it was cancelled (darksidesync calls it).
fn call_back(lua: &Lua, id: u64, sig: libc::c_int) -> mlua::Result<Prepared> {
    let callback = existing_state(lua).and_then(|s| s.live.borrow().get(&id).cloned());
    match callback {
        Some(f) => Ok((f, (signal_name(sig), i64::from(sig)).into_lua_multi(lua)?)),
        None => Ok((lua.create_function(|_, ()| Ok(()))?, MultiValue::new())),
    }
}

/// A subscription handle.
struct Subscription {
    id: u64,
}

impl UserData for Subscription {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            let t = lua.create_table()?;
            t.set("cancel", function(lua, cancel)?)?;
            Ok(t)
        });
        fields.add_meta_field("__name", "darksidesync.signal");
    }
}

fn fail<T>(message: String) -> mlua::Result<T> {
    Err(mlua::Error::runtime(message))
}

fn allowed(a: &MultiValue, what: &str) -> mlua::Result<libc::c_int> {
    let sig =
        signal_number(a.front().unwrap_or(&Value::Nil), what).map_err(mlua::Error::runtime)?;
    if !ALLOWED.contains(&sig) {
        let names: Vec<String> = ALLOWED.iter().map(|&s| signal_name(s)).collect();
        return fail(format!(
            "{what}: {} cannot be handled; use one of {}",
            signal_name(sig),
            names.join(", ")
        ));
    }
    Ok(sig)
}

/// `on(signal, fn [, {keepalive = bool}])` → handle.
fn on(lua: &Lua, a: MultiValue) -> mlua::Result<AnyUserData> {
    let sig = allowed(&a, "signal.on")?;
    let callback = match a.get(1) {
        Some(Value::Function(f)) => f.clone(),
        other => {
            return fail(format!(
                "signal.on: callback must be a function, got {}",
                other.map_or("no value", type_name)
            ))
        }
    };
    let keepalive = match a.get(2) {
        None | Some(Value::Nil) => false,
        Some(Value::Table(t)) => t.get::<Option<bool>>("keepalive")?.unwrap_or(false),
        Some(other) => {
            return fail(format!(
                "signal.on: options must be a table or nil, got {}",
                type_name(other)
            ))
        }
    };
    let Some(ss) = existing_state(lua) else {
        return fail("signal: not opened in this Lua state".into());
    };
    let keep = if keepalive {
        match ss.dss.hold() {
            Ok(k) => Some(k),
            Err(e) => return fail(format!("signal.on: the state is closing: {e}")),
        }
    } else {
        None
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    {
        let mut r = registry().map_err(mlua::Error::runtime)?;
        let subs = r.subs.entry(sig).or_default();
        if subs.is_empty() {
            // `add_signal` is idempotent: registering twice is harmless.
            if let Err(e) = r.handle.add_signal(sig) {
                return fail(format!(
                    "signal.on: cannot handle {}: {e}",
                    signal_name(sig)
                ));
            }
        }
        r.subs.entry(sig).or_default().push(Sub {
            id,
            owner: ss.owner,
            dss: ss.dss.clone(),
            _keep: keep,
        });
    }
    ss.live.borrow_mut().insert(id, callback);
    lua.create_userdata(Subscription { id })
}

/// `h:cancel()` → true when it was active.
fn cancel(lua: &Lua, a: MultiValue) -> mlua::Result<bool> {
    let id = match a.front() {
        Some(Value::UserData(ud)) if ud.is::<Subscription>() => ud.borrow::<Subscription>()?.id,
        other => {
            return fail(format!(
                "signal:cancel: expected a handle as self (use the colon syntax), got {}",
                other.map_or("no value", type_name)
            ))
        }
    };
    let was = existing_state(lua).is_some_and(|s| s.live.borrow_mut().remove(&id).is_some());
    unsubscribe(id);
    Ok(was)
}

/// `raise(signal)` → true: sends the signal to this process.
fn raise(_lua: &Lua, a: MultiValue) -> mlua::Result<bool> {
    let sig = signal_number(a.front().unwrap_or(&Value::Nil), "signal.raise")
        .map_err(mlua::Error::runtime)?;
    // SAFETY: kill(2) with our own pid and a validated signal number has no
    // memory-safety preconditions.
    let rc = unsafe { libc::kill(libc::getpid(), sig) };
    if rc != 0 {
        return fail(format!("signal.raise: {}", std::io::Error::last_os_error()));
    }
    Ok(true)
}

/// `pid()` → this process's id (what `kill` needs).
fn pid(_lua: &Lua, (): ()) -> mlua::Result<i64> {
    Ok(i64::from(std::process::id()))
}

/// Builds the `darksidesync.signal` table: registers with the state's
/// darksidesync (loading it if need be) on first use in that state.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    if existing_state(lua).is_none() {
        let dss = Dss::register(lua, &LIB, "darksidesync.signal")?;
        // Idle, the library does not keep run() waiting; `keepalive = true`
        // subscriptions hold it.
        dss.unref();
        let owner = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        dss.on_close(move || unsubscribe_owner(owner));
        lua.set_app_data(Rc::new(SignalState {
            owner,
            dss,
            live: RefCell::default(),
        }));
    }
    let t = lua.create_table()?;
    t.set("on", function(lua, on)?)?;
    t.set("raise", function(lua, raise)?)?;
    t.set("pid", function(lua, pid)?)?;
    Ok(t)
}
