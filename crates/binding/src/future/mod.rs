//! Async Rust on the Lua thread: [`Dss::create_async_function`] and
//! [`Dss::spawn_local`]. A *task* is one future polled on the Lua thread
//! (so it may hold [`Lua`] and Lua values); its waker posts to the state's
//! queue, so whatever loop runs the state (`darksidesync.run()`, luv,
//! cqueues, Copas, a `wait`/`dispatch` loop) drives it.
//!
//! # Design
//!
//! mlua's own async functions (`Lua::create_async_function`, its `async`
//! feature) are a Lua wrapper that polls the future and, while it is
//! pending, yields a sentinel (`Lua::poll_pending()`) to whoever resumes
//! the coroutine, expecting an mlua `AsyncThread` there to poll again when
//! its waker fires. In a stock interpreter nobody is there: a cqueues or
//! Copas scheduler does not know the sentinel, and nothing wakes the loop.
//! Here the same shape (a Lua wrapper around a Rust `start` that polls
//! once) parks the caller in the way its context understands, and the
//! wake is a darksidesync post:
//!
//! * **Ready at once**: `start` polls the future once on the call; if it
//!   finished, its results are returned directly (no task, no yield).
//! * **In a coroutine** under the cqueues or Copas adapter
//!   (`lua/darksidesync/{cqueues,copas}.lua`, registered with
//!   `darksidesync.async`): the coroutine parks the loop's own way (a
//!   cqueues condition; a Copas wait on a socket-like object that turns
//!   ready), so it mixes with that loop's sockets and sleeps.
//! * **In any other coroutine** (a plain `coroutine.wrap`, a luv-driven
//!   one, a callback of `darksidesync.dispatch(max, spawn)`): it yields
//!   nothing, and darksidesync resumes it (no arguments) on the Lua thread
//!   when the future finished, from the dispatch that ran the last poll.
//!   For a callback of `dispatch(max, spawn)` it resumes the handler's
//!   coroutine, which forwards to the callback. Until then the task holds
//!   the coroutine, so a fire-and-forget `coroutine.wrap(f)()` completes.
//!   An error raised by the resumed coroutine goes to the state's error
//!   handler (with that coroutine's traceback).
//! * **Not in a yieldable coroutine** (the main thread; Lua 5.3+ inside a
//!   C call): it runs `darksidesync.wait()`/`dispatch()` until the future
//!   finished, so a plain script just calls it. Inside a darksidesync
//!   callback outside a coroutine that loop cannot run: the call raises
//!   `cannot wait for an async function here (call it from a coroutine)`.
//!   Lua 5.1 cannot yield across `pcall` or a C call: there a parked call
//!   under `pcall` raises 5.1's "attempt to yield across metamethod/C-call
//!   boundary" (LuaJIT and 5.2+ yield across `pcall`).
//!
//! # Waking
//!
//! The waker is `Send + Sync`; waking posts one poll of the task to the
//! state (2v0 `post`, like [`Dss::try_post`]). Wakes coalesce: while a
//! poll is queued and has not begun, further wakes post nothing; a wake
//! during the poll queues the next one. A pending task costs no CPU and
//! no post until its waker fires. A wake that finds the queue full does
//! not block the waking thread: a helper thread waits for room.
//!
//! # Keeping `run()` alive
//!
//! Each pending task holds a keep-alive reference of its library (a
//! [`Hold`](crate::Hold)), also after [`Dss::unref`]: `darksidesync.run()`
//! returns once the last task finished (or was dropped).
//!
//! # Cancellation
//!
//! A task is dropped (its future's destructors run on the Lua thread)
//! when nobody can wait for it any more:
//!
//! * its coroutine parked under a scheduler (cqueues, Copas) is collected:
//!   the task goes with it, at the garbage collection;
//! * on Lua 5.4, its coroutine is closed (`coroutine.close`): at once,
//!   through a to-be-closed variable of the wrapper;
//! * a blocking main-thread wait raises (inside a callback);
//! * a detached task ([`Dss::spawn_local`]) finished.
//!
//! # Teardown
//!
//! `lua_close` collects every task: their futures are dropped then,
//! during the close, on the closing thread, without running Lua (the
//! destructors must not use the state). A waker fired after the close
//! posts to a closed state, which refuses: it does nothing.
//!
//! A library that unregisters ([`Dss::unregister`]) refuses its tasks'
//! later wakes, so they are not polled again; a main-thread wait notices
//! within a second and raises `cancelled`; a parked coroutine stays
//! parked and its task is dropped when the coroutine is collected or the
//! state closes.
//!
//! # Errors
//!
//! A future's `Err` (a Rust error, or a Lua error raised by Lua code it
//! called) is raised in the caller as a string: the message, the
//! caller's traceback, and the traceback of the failing Lua code inside
//! the future when there was one. A panic in a poll is caught, the future
//! is dropped, and the caller gets `panic in a future: <text>`. Errors of
//! detached tasks go to the state's error handler.
//!
//! # Reactors
//!
//! With the `tokio` feature, every poll enters a process-wide tokio
//! runtime (`darksidesync_binding::tokio_runtime()`) whose one worker
//! thread drives tokio's timers and I/O: `tokio::time::sleep`,
//! `tokio::net`, `tokio::fs`, `tokio::process` just work in a task. The
//! feature builds tokio with its runtime and timer only; enable `net`,
//! `fs`, `process` ... on your own `tokio` dependency (which you need to
//! call them anyway) and Cargo builds, and the runtime drives, those too.
//!
//! Without it, bring a reactor that runs on its own thread and wakes
//! through the waker: `async-io` does (its `Async<T>` sockets and `Timer`
//! are driven by its "async-io" thread; nothing to enter), as does
//! `futures-timer`; or hand work to your own thread and complete a
//! `futures::channel::oneshot` (or any waker-aware cell) from there. What
//! a task must not do is block the Lua thread (a `std::thread::sleep`, a
//! blocking read): the whole state waits.
//!
//! # Threads
//!
//! A task is polled only on the Lua thread, so its future need not be
//! `Send` (mlua's `send` feature is not supported here).

mod reactor;
mod task;
mod waker;

use std::future::Future;

use mlua::{FromLuaMulti, Function, IntoLuaMulti, Lua, MaybeSend};

use crate::handle::Dss;

#[cfg(feature = "tokio")]
pub use reactor::runtime as tokio_runtime;

/// The compiled `await.lua` of this copy of the crate in this state.
fn maker(lua: &Lua) -> mlua::Result<Function> {
    const NAME: &str = "darksidesync-binding.await";
    static COPY: u8 = 0;
    let name = format!("{NAME}.{:x}", &COPY as *const u8 as usize);
    if let mlua::Value::Function(f) = lua.named_registry_value::<mlua::Value>(&name)? {
        return Ok(f);
    }
    let drivers = match lua.named_registry_value::<mlua::Value>("darksidesync.drivers")? {
        mlua::Value::Table(t) => t,
        _ => lua.create_table()?,
    };
    let traceback =
        lua.create_function(|lua, (msg, level): (String, usize)| lua.traceback(Some(&msg), level))?;
    let f: Function = lua
        .load(include_str!("await.lua"))
        .set_name("=darksidesync-binding.await")
        .call((drivers, traceback))?;
    lua.set_named_registry_value(&name, &f)?;
    Ok(f)
}

impl Dss {
    /// A Lua function that runs the future `func` returns, on the Lua
    /// thread, and returns its results to the caller when it finished;
    /// the same signature and bounds as mlua's
    /// `Lua::create_async_function`. While the future is pending the
    /// calling coroutine is suspended (the loop keeps running), or, outside
    /// a coroutine, darksidesync's loop runs until it finished. See the
    /// [`future`](crate::future) docs for waking, cancellation,
    /// teardown and errors.
    ///
    /// ```
    /// use darksidesync_binding::{Dss, LibId};
    /// use mlua::Lua;
    /// static LIB: LibId = LibId::new();
    /// # fn main() -> mlua::Result<()> {
    /// let lua = Lua::new();
    /// # let m = darksidesync::open(&lua)?;
    /// # lua.globals().get::<mlua::Table>("package")?.get::<mlua::Table>("loaded")?.set("darksidesync", m)?;
    /// let dss = Dss::register(&lua, &LIB, "mylib")?;
    /// let add = dss.create_async_function(&lua, |_lua, (a, b): (i64, i64)| async move {
    ///     Ok(a + b)
    /// })?;
    /// assert_eq!(add.call::<i64>((2, 3))?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_async_function<F, A, FR, R>(&self, lua: &Lua, func: F) -> mlua::Result<Function>
    where
        F: Fn(Lua, A) -> FR + MaybeSend + 'static,
        A: FromLuaMulti,
        FR: Future<Output = mlua::Result<R>> + MaybeSend + 'static,
        R: IntoLuaMulti,
    {
        let dss = self.clone();
        let start = lua.create_function(move |lua, args: A| {
            let fut = task::boxed(lua, func(lua.clone(), args));
            task::start(lua, &dss, fut)
        })?;
        maker(lua)?.call(start)
    }

    /// Runs `fut` on the Lua thread, detached: first polled from the loop
    /// (not here), then at each wake, until it finished; it keeps
    /// `darksidesync.run()` alive meanwhile. Its error (or panic) goes to
    /// the state's error handler. Lua thread only (`lua` is the state).
    pub fn spawn_local<FR>(&self, lua: &Lua, fut: FR) -> mlua::Result<()>
    where
        FR: Future<Output = mlua::Result<()>> + MaybeSend + 'static,
    {
        task::spawn(lua, self, task::boxed(lua, fut))
    }
}
