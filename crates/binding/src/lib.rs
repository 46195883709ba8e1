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
//!   with its message.
//!
//! No Rust types cross between your library and darksidesync: they are
//! compiled separately and share only the C ABI. A closure travels as a
//! `void *` plus a monomorphised `extern "C"` trampoline compiled into
//! *your* library, which the module calls back on the Lua thread.
//!
//! # Example
//!
//! A library's `luaopen` registers once per state; its threads keep clones
//! of the handle.
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
//! // In a real program this is `require "darksidesync"` in Lua, before
//! // `require "mylib"`; here the module is linked in for the doc test.
//! let dssmod = darksidesync::open(&lua)?;
//!
//! // In mylib's `luaopen_mylib(lua)`:
//! let dss = Dss::register(&lua, &MY_LIB, "mylib")?;
//!
//! // Lua code the library will call back.
//! lua.globals().set("double", lua.create_function(|_, x: i64| Ok(x * 2))?)?;
//!
//! // A background thread of the library:
//! let worker = {
//!     let dss = dss.clone();
//!     std::thread::spawn(move || {
//!         // Fire-and-forget: runs on the Lua thread, later.
//!         dss.post(|lua| lua.globals().set("greeting", "hello from a thread")).unwrap();
//!         // Blocking call with a typed answer.
//!         let doubled: i64 = dss
//!             .call(|lua| lua.globals().get::<Function>("double")?.call(21), Some(Duration::from_secs(60)))
//!             .unwrap();
//!         // A Lua error comes back with its message.
//!         let err = dss.call(|lua| lua.load("error('nope')").exec(), None).unwrap_err();
//!         (doubled, err)
//!     })
//! };
//!
//! // The Lua side dispatches until the worker is done.
//! let dispatch: Function = dssmod.get("dispatch")?;
//! let wait: Function = dssmod.get("wait")?;
//! while !worker.is_finished() {
//!     if wait.call::<bool>(0.01)? {
//!         dispatch.call::<()>(())?;
//!     }
//! }
//! let (doubled, err) = worker.join().unwrap();
//! assert_eq!(doubled, 42);
//! assert!(matches!(err, Error::Lua(ref m) if m.contains("nope")), "{err}");
//! assert_eq!(lua.globals().get::<String>("greeting")?, "hello from a thread");
//!
//! // On the Lua thread itself a blocking call would wait for itself:
//! assert_eq!(dss.call(|_| Ok(()), None), Err(Error::WouldDeadlock));
//! # Ok(())
//! # }
//! ```
//!
//! # Registration
//!
//! [`Dss::register`] runs on the Lua thread (typically in your
//! `#[mlua::lua_module]` function). It fails with a clear Lua error when
//! darksidesync was not required first in that state, or when the
//! published API is not 2v0-compatible. Registering the same [`LibId`] again
//! in the same state returns the same handle.
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

mod ffi;
mod handle;

pub use handle::{Dss, Error, Hold, LibId, Stats};
