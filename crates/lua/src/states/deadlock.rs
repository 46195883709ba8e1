//! Would-deadlock detection between states: who waits for whom.
//!
//! A state blocked in a call, a join or a post to a full queue serves no
//! messages until that wait ends. Each such wait is an edge "state A waits
//! for state B" in one process-wide table; a wait that would close a cycle
//! (B already waits, directly or through others, for A) is refused, so the
//! states fail with "would deadlock" instead of hanging.
//!
//! Every state has at most one outgoing edge (it is blocked in one wait) and
//! no cycle is ever inserted, so the walk below always ends.
//!
//! An edge must not outlive its wait, or a state that just answered a call
//! would see the caller still "waiting" and refuse a call back. So a call's
//! edge is removed by whoever ends the wait: the answering state, before it
//! wakes the caller ([`WaitKey::clear`]), or the caller on a timeout. Other
//! waits (a post waiting for room) end without the other side knowing; for
//! them a cycle must persist for [`SETTLE`] before it counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cycle must last to be a deadlock (a woken waiter removes its
/// edge within microseconds; a deadlocked one never does).
const SETTLE: Duration = Duration::from_millis(100);

/// waiting state → (the state it waits for, the wait's token).
static WAITS_FOR: Mutex<Option<HashMap<u64, (u64, u64)>>> = Mutex::new(None);

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Names one wait's edge, so that only that wait's end removes it.
#[derive(Clone, Copy)]
pub(crate) struct WaitKey {
    me: u64,
    token: u64,
}

impl WaitKey {
    /// Removes the edge if it is still this wait's.
    pub(crate) fn clear(self) {
        let mut guard = WAITS_FOR.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(map) = guard.as_mut() {
            if map.get(&self.me).is_some_and(|&(_, t)| t == self.token) {
                map.remove(&self.me);
            }
        }
    }
}

/// An edge of the table, removed when the wait ends (on drop at the latest).
pub(crate) struct Waiting(WaitKey);

impl Waiting {
    pub(crate) fn key(&self) -> WaitKey {
        self.0
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// Records that state `me` is about to wait for state `target`; `None` when
/// `target` waits for `me`, directly or through other states, for longer
/// than [`SETTLE`].
pub(crate) fn wait_for(me: u64, target: u64) -> Option<Waiting> {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(w) = try_wait_for(me, target) {
            return Some(w);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn try_wait_for(me: u64, target: u64) -> Option<Waiting> {
    let mut guard = WAITS_FOR.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let mut cur = target;
    loop {
        if cur == me {
            return None;
        }
        match map.get(&cur) {
            Some(&(next, _)) => cur = next,
            None => break,
        }
    }
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    map.insert(me, (target, token));
    Some(Waiting(WaitKey { me, token }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_edge_that_closes_a_cycle() {
        // Ids far from those real states get.
        let (a, b, c) = (u64::MAX - 3, u64::MAX - 2, u64::MAX - 1);
        let ab = wait_for(a, b).expect("a waits for b");
        let bc = wait_for(b, c).expect("b waits for c");
        assert!(wait_for(c, a).is_none(), "c -> a closes a cycle");
        assert!(wait_for(a, a).is_none(), "waiting for oneself");
        drop(ab);
        let ca = wait_for(c, a).expect("no cycle once a stopped waiting");
        drop((bc, ca));
    }

    #[test]
    fn a_cleared_key_leaves_a_newer_wait_alone() {
        let (a, b) = (u64::MAX - 6, u64::MAX - 5);
        let first = wait_for(a, b).expect("a waits for b");
        let key = first.key();
        key.clear(); // the answering side ended the wait
        assert!(wait_for(b, a).is_some(), "the edge is gone");
        let second = wait_for(a, b).expect("a waits again");
        key.clear(); // a late clear of the first wait
        drop(first);
        assert!(wait_for(b, a).is_none(), "the second edge stays");
        drop(second);
    }
}
