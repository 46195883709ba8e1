//! The Lua module `darksidesync`: background threads hand work to a Lua
//! state, and the Lua side takes it when it is ready.
//!
//! `require "darksidesync"` returns the module table documented in
//! `doc/lua-api.md`. This crate is the glue between that table and the
//! Lua-agnostic core (`darksidesync-core`).
//!
//! # Layout
//!
//! | file | concept |
//! | --- | --- |
//! | `state.rs` | one [`StateHub`] per Lua state: the hub, the local batch, the error handler, closed at `lua_close` |
//! | `item.rs` | what the hub carries: an [`Item`] (a boxed [`Task`], an inline scalar call, an inline post); [`ReplySink`] for blocking deliveries |
//! | `post.rs` | inline posts: a producer's run function, its data and the port to count against (C utilities, Rust cdylibs) |
//! | `post_run.rs` | a run of inline posts in one protected call: a producer's error caught once per run, not per item |
//! | `item_loop.rs` | the one loop that runs items (`dispatch()`, `run()`, `yield()`) and the one way to take the front item (`poll()` too) |
//! | `poll.rs` | `poll()`, `queuesize()` (DSS 1.0) |
//! | `reply.rs` | the callable reply object of `poll()` and `reply()` (a plain userdata, see `raw/`) |
//! | `dispatch.rs` | `dispatch([max [, spawn]])`, `reply()`, `run()`, `stop()`, `seterrorhandler()` |
//! | `wait.rs` | `fd()`, `wait()`, `event_fd()`, `wait_events()`, `yield()` |
//! | `control.rs` | `setport()`, `getport()`, `setcapacity()`, `capacity()`, `stats()`, `timing()`, `waits()` |
//! | `raw/` | all raw Lua C API stack work, each helper with its stack contract, and the stack guard |
//! | `capi/` | the C ABI (DSS 1v0 and 2v0, `include/darksidesync.h`): a thin layer mapping utilities' callbacks, handles and codes onto items |
//! | `interpreter.rs` | each `luaopen_*` entry first checks the interpreter is the one the build is for (LuaJIT vs Lua 5.1 share LuaRocks' `lib/lua/5.1`) |
//! | `luajit_only.rs` | (LuaJIT build) stand-ins for LuaJIT-only symbols, so that Lua 5.1 can load the build and be told it is the wrong one |
//! | `args.rs` | argument checking |
//! | `counted.rs` | `Counted`, an `Arc` whose holder can give up several handles in one atomic operation (what a [`Callback`] is) |
//! | `sync.rs` | `std` or `loom` atomics for the hand-counted and hand-ordered types; their loom models are in `loom_models.rs` (`cargo xtask loom`) |
//! | `data.rs` | [`Data`], Lua scalars that can cross threads |
//! | `states/` | `darksidesync.states`: Lua states on their own threads, messages between them (see `doc/states.md`) |
//! | `libs/` | re-exports the example libraries `darksidesync.timer`, `.signal`, `.process`, own crates on `darksidesync-binding` (`crates/libs/*`, `doc/libs.md`), for the thin `luaopen` entries below |
//! | `prelude.lua` | Lua helpers compiled once per state |
//!
//! # Items and tasks
//!
//! The hub's item type is [`Item`]: a `Box<dyn Task>`, or a [`Callback`]
//! with one scalar argument carried inline ([`Item::call`]). A task is built on
//! any thread; on the Lua thread [`Task::prepare`] turns it into a callback,
//! its arguments and, for a blocking delivery, a [`ReplySink`]. `poll()`
//! hands these to Lua (the sink becomes the reply userdata in `args[1]`);
//! `dispatch()` calls the callback and feeds its results or error text to
//! the sink. A task dropped undelivered (state closed, port unregistered)
//! is told why ([`Task::discard`]); a sink dropped unanswered releases its
//! waiter. See `item.rs` for how C-ABI (DSS 1v0/2v0) deliveries and Rust
//! closures from other cdylibs plug in: fire-and-forget ones as inline
//! posts (`post.rs`), which the item loop runs like its own scalar calls.
//!
//! # Errors
//!
//! Bad arguments raise plain string errors (the raw Rust functions return
//! a sentinel and a message, and a thin Lua wrapper from `prelude.lua`
//! raises it with level 0, as `luaL_error` does from C). Panics never
//! cross into Lua's C frames: mlua catches them in every callback.
//!
//! # Lifetime
//!
//! The hub is created on the first `require` in a state and stored in
//! mlua's app data, so every later call from that state finds it. It is
//! closed when the state closes. The shared object is linked with
//! `-z nodelete` (see `build.rs`) so that Lua's `dlclose` at `lua_close`
//! cannot unmap code that foreign threads still reach through their ports.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod args;
mod capi;
/// The producer layer's per-state record, which the state's hub keeps
/// (`StateHub::producers`): the C ABI's, told when the state purges and
/// closes.
pub(crate) type Producers = capi::PerState;
mod control;
mod counted;
mod data;
mod dispatch;
#[cfg(feature = "module")]
mod interpreter;
mod item;
mod item_loop;
pub mod libs;
#[cfg(all(test, darksidesync_loom))]
mod loom_models;
#[cfg(all(feature = "module", feature = "luajit"))]
mod luajit_only;
mod poll;
mod post;
mod post_run;
mod raw;
mod reply;
mod state;
pub mod states;
mod sync;
mod wait;

use std::ffi::c_void;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

pub use control::MAX_CAPACITY;
pub use darksidesync_core::DEFAULT_CAPACITY;
pub use data::Data;
pub use item::{Callback, DataReply, Item, Prepared, ReplySink, Task};
pub use state::StateHub;

/// The module's version, also `darksidesync._VERSION`.
pub const VERSION: &str = concat!("darksidesync ", env!("CARGO_PKG_VERSION"));

/// Why a raw Lua-facing function did not return normally.
pub(crate) enum ApiError {
    /// Raise this text as a plain Lua error.
    Raise(String),
    /// A failure of the Lua machinery, propagated as mlua reports it.
    Lua(mlua::Error),
}

impl From<String> for ApiError {
    fn from(text: String) -> ApiError {
        ApiError::Raise(text)
    }
}

impl From<mlua::Error> for ApiError {
    fn from(e: mlua::Error) -> ApiError {
        ApiError::Lua(e)
    }
}

/// What every raw Lua-facing function returns.
pub(crate) type ApiResult = Result<MultiValue, ApiError>;

/// A module function before wrapping: gets the state's hub and its
/// arguments; [`make_table`] turns it into a Lua function.
pub(crate) type ApiFn = fn(&Lua, &StateHub, MultiValue) -> ApiResult;

/// The sentinel a raw function returns first to ask the Lua wrapper to
/// raise; its address is unique to this library.
static RAISE_TAG: u8 = 0;

fn raise_sentinel() -> Value {
    Value::LightUserData(LightUserData(&RAISE_TAG as *const u8 as *mut c_void))
}

/// Wraps raw functions into a table of Lua functions that raise plain
/// string errors.
pub(crate) fn make_table(lua: &Lua, st: &StateHub, fns: &[(&str, ApiFn)]) -> mlua::Result<Table> {
    let raw = lua.create_table()?;
    for &(name, f) in fns {
        let func = lua.create_function(move |lua, args: MultiValue| {
            let st = StateHub::get(lua)?;
            match f(lua, &st, args) {
                Ok(values) => Ok(values),
                Err(ApiError::Raise(text)) => Ok(MultiValue::from_iter([
                    raise_sentinel(),
                    Value::String(lua.create_string(text)?),
                ])),
                Err(ApiError::Lua(e)) => Err(e),
            }
        })?;
        raw.raw_set(name, func)?;
    }
    st.helpers.wrap.call((raw, raise_sentinel()))
}

/// Builds the module table for `lua`, creating the state's hub on first use.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let st = StateHub::get(lua)?;
    let fns: &[(&str, ApiFn)] = &[
        ("poll", poll::poll),
        ("queuesize", poll::queuesize),
        ("getport", control::getport),
        ("setport", control::setport),
        ("dispatch", dispatch::dispatch),
        ("fd", wait::fd),
        ("wait", wait::wait),
        ("event_fd", wait::fd),
        ("wait_events", wait::wait_events),
        ("yield", wait::yield_),
        ("run", dispatch::run),
        ("stop", dispatch::stop),
        ("setcapacity", control::setcapacity),
        ("capacity", control::capacity),
        ("stats", control::stats),
        ("timing", control::timing),
        ("waits", control::waits),
        ("seterrorhandler", dispatch::seterrorhandler),
        ("reply", dispatch::reply),
    ];
    let t = make_table(lua, &st, fns)?;
    let general: mlua::Function = t.raw_get("poll")?;
    t.raw_set(
        "poll",
        poll::make_fast_poll(lua, &st, general, st.helpers.closing.clone())?,
    )?;
    let raw_reply: mlua::Function = t.raw_get("reply")?;
    t.raw_set(
        "reply",
        st.helpers
            .coroutine_reply
            .call::<mlua::Function>(raw_reply)?,
    )?;
    t.raw_set("_VERSION", VERSION)?;
    capi::publish(lua)?;
    Ok(t)
}

/// A `luaopen_*` entry of the loadable module: checks that the interpreter
/// is the one this build is for (`interpreter.rs`), then runs `$open` in
/// protected mode with any failure raised as a plain string (a state
/// without the base library gets a message, not mlua's error object).
#[cfg(feature = "module")]
macro_rules! module_entry {
    ($entry:ident, $protected:ident, $open:path) => {
        #[no_mangle]
        unsafe extern "C-unwind" fn $entry(state: *mut mlua::lua_State) -> std::ffi::c_int {
            // SAFETY: Lua calls this as the module's C opener; no Rust
            // value is alive in this frame.
            unsafe {
                interpreter::check(state);
                raw::open_protected(state, $protected)
            }
        }

        /// The opener the entry runs in protected mode.
        unsafe extern "C-unwind" fn $protected(state: *mut mlua::lua_State) -> std::ffi::c_int {
            // SAFETY: called by Lua through lua_pcall as a C function.
            unsafe {
                Lua::entrypoint1(state, |lua| {
                    lua.skip_memory_check(true);
                    $open(lua)
                })
            }
        }
    };
}

// `require "darksidesync"` and the libraries linked into the same file
// (found by Lua's all-in-one loader as `darksidesync.timer`, ...).
#[cfg(feature = "module")]
module_entry!(luaopen_darksidesync, open_darksidesync, open);
#[cfg(feature = "module")]
module_entry!(luaopen_darksidesync_states, open_states, states::open);
#[cfg(feature = "module")]
module_entry!(luaopen_darksidesync_timer, open_timer, libs::timer::open);
#[cfg(feature = "module")]
module_entry!(luaopen_darksidesync_signal, open_signal, libs::signal::open);
#[cfg(feature = "module")]
module_entry!(
    luaopen_darksidesync_process,
    open_process,
    libs::process::open
);
