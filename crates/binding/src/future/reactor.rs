//! The reactor a task's leaf futures need (timers, sockets, processes).
//!
//! With the `tokio` feature: one tokio runtime for the process, on a
//! background worker thread (`darksidesync-tokio`) that drives tokio's
//! timers and I/O; every poll of a task enters its context, so
//! `tokio::time::sleep`, `tokio::net`, `tokio::fs` and `tokio::process`
//! work in a task as in a tokio task (with those tokio features enabled
//! by the library's own tokio dependency). Their wake-ups come from that thread
//! and are posts to the state. The runtime is never shut down: it outlives
//! every state (a waker it fires after a state closed does nothing).
//!
//! Without it, nothing is entered: bring a reactor that runs on its own
//! threads (see the module docs of `future`).

/// What stays entered while a task is polled.
#[cfg(feature = "tokio")]
pub(crate) type Entered = tokio::runtime::EnterGuard<'static>;
/// What stays entered while a task is polled.
#[cfg(not(feature = "tokio"))]
pub(crate) type Entered = ();

/// Enters the reactor's context for one poll.
#[cfg(feature = "tokio")]
pub(crate) fn enter() -> Entered {
    runtime().enter()
}

/// Enters the reactor's context for one poll.
#[cfg(not(feature = "tokio"))]
#[allow(clippy::unused_unit)]
pub(crate) fn enter() -> Entered {}

/// The process's tokio runtime, started on first use.
#[cfg(feature = "tokio")]
pub fn runtime() -> &'static tokio::runtime::Runtime {
    use std::sync::OnceLock;
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("darksidesync-tokio")
            .enable_all()
            .build()
            .expect("darksidesync-binding: cannot start the tokio runtime")
    })
}
