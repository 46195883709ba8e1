//! The Rust API for binding authors: a Rust library built as its **own**
//! cdylib with mlua finds the Lua state's darksidesync instance through the
//! registry table of the C ABI (**DSS API 2v0**, `include/darksidesync.h`),
//! and gets a [`Dss`] handle — `Send + Sync + Clone` — whose
//!
//! * [`post`](Dss::post) queues a closure that runs **on the Lua thread**
//!   with `&Lua`, when the Lua side dispatches (`darksidesync.dispatch()`,
//!   `run()`, `yield()`, `poll()` ...), in FIFO order with every other
//!   library's deliveries;
//! * [`call`](Dss::call) does the same and blocks the calling thread until
//!   the closure ran, returning its typed result, or a typed [`Error`]:
//!   closed, cancelled, timed out, full, would-deadlock, or the Lua error
//!   ([`LuaError`]: message and traceback apart).
//!
//! * [`post_callback`](Dss::post_callback) and
//!   [`call_callback`](Dss::call_callback) hand darksidesync a Lua function
//!   and its arguments (prepared on the Lua thread) which it delivers
//!   exactly like its own items: `dispatch()` calls it under the state's
//!   error handler, `poll()` returns it to the Lua caller (with the reply
//!   userdata for a call), and a call's answer is the callback's results.
//! * [`LuaCallback`] ([`Dss::callback`]) keeps a Lua function that any
//!   thread [posts](LuaCallback::post) values to (integers, floats,
//!   booleans, strings and byte strings, nil, small [`ArgTable`]s): the
//!   cheapest delivery, with no closure and no
//!   mlua call per item, for the bulk of a library's traffic (a timer
//!   fired, a line read, a process ended).
//! * [`create_async_function`](Dss::create_async_function) makes a Lua
//!   function of an `async` Rust closure (mlua's signature): its future
//!   is polled on the Lua thread and woken by a post, and the calling
//!   coroutine is suspended until it finished, whatever loop runs the
//!   state; [`spawn_local`](Dss::spawn_local) runs a detached future.
//!   With the `tokio` feature, tokio's timers, sockets, files and
//!   processes work in them ([`future`] has the semantics).
//!
//! No Rust types cross between your library and darksidesync: they are
//! compiled separately and share only the C ABI. A closure travels as a
//! monomorphised `extern "C"` trampoline compiled into *your* library,
//! which the module calls back on the Lua thread, plus the closure itself:
//! copied into the queued item when it is at most 24 bytes (a handle or two
//! and a value; 2v0 `post_inline`), so posting it allocates nothing, or
//! boxed behind a `void *` when it is larger.
//!
//! # Getting started
//!
//! A library is a cdylib that picks its Lua version and mlua's `module`
//! feature itself (mlua's convention; this crate adds none). `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "hello"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! darksidesync-binding = "0.1"
//! mlua = { version = "0.11", features = ["lua54", "module"] }
//! ```
//!
//! Until `darksidesync-binding` 0.1 is on crates.io, depend on a checkout
//! of darksidesync instead: `darksidesync-binding = { path =
//! "../darksidesync/crates/binding" }`, or `{ git = "<the repository's
//! URL>" }` (Cargo finds the crate in the workspace). `cargo xtask binding`
//! builds this page's example that way, as a fresh crate.
//!
//! `src/lib.rs`: `hello.count(n, f, done)` starts a thread that calls
//! `f(i)` on the Lua thread for `i = 1..n`, adds up the answers and posts
//! `done(sum)`. darksidesync calls both functions itself, as it calls its
//! own deliveries, so they may yield under the coroutine adapters
//! ([Yielding](#yielding-callbacks)).
//!
//! ```rust,ignore
//! use std::sync::Arc;
//!
//! use darksidesync_binding::{Dss, LibId};
//! use mlua::{FromLuaMulti, Function, Lua, MultiValue, Table, Value};
//!
//! static LIB: LibId = LibId::new();
//!
//! #[mlua::lua_module]
//! fn hello(lua: &Lua) -> mlua::Result<Table> {
//!     // Loads darksidesync into this state if the script has not.
//!     let dss = Dss::register(lua, &LIB, "hello")?;
//!     // Idle, the library lets `darksidesync.run()` return; each job
//!     // holds it until the job's last delivery is queued.
//!     dss.unref();
//!     let exports = lua.create_table()?;
//!     let count = move |lua: &Lua, (n, f, done): (i64, Function, Function)| {
//!         let f = Arc::new(lua.create_registry_value(f)?);
//!         // Plain values for one function: the cheapest delivery.
//!         let done = dss.callback(lua, done)?;
//!         let hold = dss.hold().map_err(mlua::Error::external)?;
//!         let dss = dss.clone();
//!         std::thread::spawn(move || {
//!             let mut sum = 0;
//!             for i in 1..=n {
//!                 let f = f.clone();
//!                 // On the Lua thread: the function and its arguments,
//!                 // which darksidesync calls; blocks here for the answer.
//!                 let got = dss.call_callback(
//!                     move |lua| Ok((lua.registry_value(&f)?, MultiValue::from_iter([Value::Integer(i)]))),
//!                     |lua, answer| i64::from_lua_multi(answer, lua),
//!                     None,
//!                     false,
//!                 );
//!                 match got {
//!                     Ok(v) => sum += v,
//!                     Err(e) => return eprintln!("hello: {e}"),
//!                 }
//!             }
//!             // Fire and forget: done(sum) on the Lua thread, later.
//!             let _ = done.post(sum);
//!             drop(hold);
//!         });
//!         Ok(())
//!     };
//!     exports.set("count", lua.create_function(count)?)?;
//!     Ok(exports)
//! }
//! ```
//!
//! And in Lua (`lua5.4` with `hello.so` and `darksidesync.so` on
//! `package.cpath`):
//!
//! ```lua
//! local hello = require "hello"     -- loads darksidesync itself
//! local dss = require "darksidesync"
//! hello.count(3, function(i) return i * 10 end, function(sum) print("sum", sum) end)
//! dss.run()                         -- returns once the job is done
//! --> sum 60
//! ```
//!
//! `cargo xtask binding` builds exactly these two files as a fresh crate
//! outside the workspace and runs that script with stock `lua5.4`.
//!
//! # In-process (tests)
//!
//! With a vendored Lua the module can be linked in and driven from Rust:
//!
//! ```
//! use std::time::Duration;
//! use darksidesync_binding::{Dss, Error, LibId};
//! use mlua::{Function, Lua};
//!
//! static MY_LIB: LibId = LibId::new();
//!
//! # fn main() -> mlua::Result<()> {
//! let lua = Lua::new();
//! // The module linked in; a real library lets `Dss::register` require it.
//! let dssmod = darksidesync::open(&lua)?;
//! let dss = Dss::register(&lua, &MY_LIB, "mylib")?;
//! lua.globals().set("double", lua.create_function(|_, x: i64| Ok(x * 2))?)?;
//!
//! let worker = {
//!     let dss = dss.clone();
//!     std::thread::spawn(move || {
//!         dss.post(|lua| lua.globals().set("greeting", "hello from a thread")).unwrap();
//!         let doubled: i64 = dss
//!             .call(|lua| lua.globals().get::<Function>("double")?.call(21), Some(Duration::from_secs(60)))
//!             .unwrap();
//!         // A Lua error comes back with its message and traceback apart.
//!         let err = dss.call(|lua| lua.load("error('nope')").exec(), None).unwrap_err();
//!         // Done: the registration stops keeping run() alive.
//!         dss.unregister();
//!         (doubled, err)
//!     })
//! };
//!
//! // Runs deliveries until the library unregisters.
//! dssmod.get::<Function>("run")?.call::<()>(())?;
//! let (doubled, err) = worker.join().unwrap();
//! assert_eq!(doubled, 42);
//! assert!(matches!(err, Error::Lua(ref e) if e.message().ends_with("nope")), "{err}");
//! assert_eq!(lua.globals().get::<String>("greeting")?, "hello from a thread");
//!
//! // On the Lua thread itself a blocking call would wait for itself.
//! let again = Dss::register(&lua, &MY_LIB, "mylib")?;
//! assert_eq!(again.call(|_| Ok(()), None), Err(Error::WouldDeadlock));
//! # Ok(())
//! # }
//! ```
//!
//! # Async functions
//!
//! ```rust,ignore
//! let dss = Dss::register(lua, &LIB, "net")?;
//! // darksidesync-binding = { version = "0.1", features = ["tokio"] }
//! let fetch = dss.create_async_function(lua, |lua, (host, port): (String, u16)| async move {
//!     let mut s = tokio::net::TcpStream::connect((host.as_str(), port)).await.into_lua_err()?;
//!     let mut buf = Vec::new();
//!     s.read_to_end(&mut buf).await.into_lua_err()?;
//!     lua.create_string(&buf)
//! })?;
//! ```
//!
//! From Lua, `net.fetch(host, port)` in a coroutine (a plain one, a luv,
//! cqueues or Copas one, a callback of `dispatch(max, spawn)`) suspends
//! that coroutine only; on the main thread it runs darksidesync's loop
//! until the result is in. See [`future`] for waking, cancellation,
//! teardown, errors and reactors.
//!
//! # Registration
//!
//! [`Dss::register`] runs on the Lua thread (typically in your
//! `#[mlua::lua_module]` function). It loads darksidesync with
//! `require "darksidesync"` when the state has not loaded it yet, and fails
//! with a Lua error naming your library when it cannot be found, or when
//! the published API is not 2v0-compatible. Registering the same [`LibId`]
//! again in the same state returns the same handle.
//!
//! # Keeping `run()` alive
//!
//! `darksidesync.run()` dispatches until no library holds a keep-alive
//! reference and the queue is empty. Like Neon's `Channel` and Node-API's
//! thread-safe functions, a registration holds one by default: work
//! posted from your threads is never silently left unrun because `run()`
//! returned. A library that is idle between jobs calls
//! [`Dss::unref`] once and takes a [`Hold`] ([`Dss::hold`]) per job
//! instead, dropping it after the job's last post; [`Dss::unregister`]
//! and the state's close drop every reference.
//!
//! # Errors for your library's users
//!
//! [`function`] makes a Lua function whose errors are plain strings (as
//! `luaL_error` gives in C), so `pcall(mylib.start, "soon")` returns
//! `false, "mylib.start: seconds must be a number"` rather than mlua's
//! error userdata; an argument that does not convert keeps its position
//! and the name it was called by (`"bad argument #2 to 'watch': error
//! converting Lua nil to function"`).
//!
//! # Yielding callbacks
//!
//! Under the coroutine adapters (`darksidesync.cqueues`,
//! `darksidesync.copas`: `dispatch(max, spawn)`) darksidesync runs each
//! Lua callback **it calls itself** in a coroutine of its own, so the
//! callback may yield on the loop's I/O (`cqueues.sleep`, a Copas socket)
//! before it returns. That holds for every delivery kind that hands
//! darksidesync a Lua function:
//!
//! | delivery | the Lua callback may yield |
//! |---|---|
//! | [`LuaCallback::post`] | yes |
//! | [`post_callback`](Dss::post_callback), [`call_callback`](Dss::call_callback) | yes (the `prepare` closure itself may not) |
//! | [`post`](Dss::post), [`call`](Dss::call) closures | **no** |
//!
//! A closure runs inside `dispatch()` and calls Lua through mlua, a C
//! call no coroutine can yield across: a callback it calls that yields
//! fails (`attempt to yield across a C-call boundary`, or `from outside a
//! coroutine`: mlua may run it on the main state), which reaches the
//! state's error handler (a post) or the caller as [`Error::Lua`] (a
//! call); a loop library that polls synchronously outside its coroutines
//! (cqueues) blocks the whole loop instead. Deliver the callbacks of your
//! library's users with [`LuaCallback`] or `post_callback` (the libraries
//! `darksidesync.timer`, `.process` and `.signal` do), and keep closures
//! for work that stays in Rust.
//!
//! # Close notification
//!
//! [`Dss::on_close`] runs once when the registration ends (the state
//! closes, or the library unregisters): stop the library's threads there.
//!
//! # Lifetime
//!
//! Handles stay safe after the state closed: every use then returns
//! [`Error::Closed`]. Queued closures of a closed state (or of an
//! [unregistered](Dss::unregister) handle) are dropped unrun, on the
//! thread that closed it, so whatever they captured is freed. A call
//! blocked at that moment returns `Closed` (or `Cancelled`).
//!
//! # Threads
//!
//! Closures run on the Lua thread; they must be `Send` because they are
//! built on (and may be dropped on) another thread. The closure of
//! [`call`](Dss::call) may borrow from the caller's stack: it runs while
//! the caller is blocked, or never.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

// Source layout (for maintainers; not rendered):
//
// | file | concept |
// | --- | --- |
// | `handle.rs` | `Dss`: registration through the 2v0 API, status, stats, waits, unregister |
// | `discovery.rs` | finding the published 2v0 API in the registry |
// | `ffi.rs` | the DSS API 2v0 (the C ABI of `include/darksidesync.h`), from `darksidesync-sys` |
// | `post.rs`, `call.rs`, `trampoline.rs` | closures posted and called, and the `extern "C"` functions that carry them |
// | `callback.rs` | `post_callback`, `call_callback`: deliveries darksidesync calls itself |
// | `lua_callback.rs`, `args.rs`, `arg_table.rs` | `LuaCallback` and the values it is posted |
// | `notice.rs`, `finalizer.rs`, `keep_alive.rs` | `on_close`, `on_finalize`, keeping `run()` alive (`Hold`) |
// | `error.rs`, `plain_error.rs` | `Error`, `LuaError`; functions that raise plain string errors |
// | `stats.rs`, `waits.rs` | `Stats`, `Waits` |
// | `future/` | tasks: `create_async_function`, `spawn_local` |
// | `raw/` | all raw Lua C API work (the only `mlua::ffi` calls), each helper with its stack contract |

mod arg_table;
mod args;
mod call;
mod callback;
mod discovery;
mod error;
mod ffi;
mod finalizer;
pub mod future;
mod handle;
mod keep_alive;
mod lua_callback;
mod notice;
mod plain_error;
mod post;
mod raw;
mod stats;
mod trampoline;
mod waits;

pub use arg_table::ArgTable;
pub use args::{Arg, Args};
pub use callback::Prepared;
pub use error::{Error, LuaError};
#[cfg(feature = "tokio")]
pub use future::tokio_runtime;
pub use handle::{Dss, LibId};
pub use keep_alive::Hold;
pub use lua_callback::LuaCallback;
pub use plain_error::function;
pub use stats::Stats;
pub use waits::Waits;
