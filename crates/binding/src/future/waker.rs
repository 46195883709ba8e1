//! The waker of a task: a wake is one post through the state's queue
//! that polls the task on the Lua thread. Coalesced: while such a post is
//! queued and its poll has not begun, further wakes post nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;

use crate::error::Error;
use crate::handle::Dss;

/// Wakes the task `id` of the state `dss` belongs to.
pub(crate) struct TaskWaker {
    dss: Dss,
    id: u64,
    /// A poll of the task is queued and has not begun. Cleared by the
    /// poll before it polls, so a wake during the poll posts again.
    queued: AtomicBool,
}

impl TaskWaker {
    pub(crate) fn new(dss: Dss, id: u64) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            dss,
            id,
            queued: AtomicBool::new(false),
        })
    }

    /// Called by the queued poll on the Lua thread, before it polls.
    pub(crate) fn begin_poll(&self) {
        self.queued.store(false, Ordering::Release);
    }

    fn post(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let poll = move |lua: &mlua::Lua| super::task::poll_queued(lua, &me);
        match self.dss.try_post(poll) {
            Ok(()) => {}
            // A wake must not be lost to a full queue, and must not block
            // the Lua thread (or a reactor thread) waiting for room: a
            // helper thread waits instead. Rare: the queue holds 65536.
            Err(Error::Full) => {
                let me = self.clone();
                std::thread::spawn(move || {
                    let again = me.clone();
                    let poll = move |lua: &mlua::Lua| super::task::poll_queued(lua, &again);
                    let _ = me.dss.post(poll);
                });
            }
            // Closed or unregistered: nothing will poll the task again
            // (its state dropped it, or drops it; see mod.rs, "Teardown").
            Err(_) => {}
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn dss(&self) -> &Dss {
        &self.dss
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.post();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.post();
    }
}
