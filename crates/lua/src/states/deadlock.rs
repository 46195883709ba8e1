//! Would-deadlock detection between states: who waits for whom.
//!
//! A state blocked in a call, a join or a post to a full queue serves no
//! messages until that wait ends. Each such wait is an edge "state A waits
//! for state B" in one process-wide table; a wait that would close a cycle
//! of waits none of which can end is refused at once, so the states fail
//! with "would deadlock" instead of hanging.
//!
//! Every state has at most one outgoing edge (it is blocked in one wait) and
//! no cycle is ever inserted, so the walks below always end.
//!
//! Whether a waiting state is stuck, looked at under the table's lock:
//! * a call or a join ([`wait_for`]) needs the other state to run (answer,
//!   end): it is stuck while that state is. Its edge must not outlive the
//!   wait, or a state that just answered would see its caller still
//!   waiting and refuse a call back: whoever ends the wait removes it —
//!   the answering state before it wakes the caller ([`WaitKey::clear`]),
//!   the caller on a timeout, the joiner once the child ended (an ended
//!   child waits for nobody, so no cycle runs through its joiner).
//! * a post waiting for room ([`post_when_room`]) takes the room itself,
//!   marking its edge `trying` first and removing it (or clearing `trying`)
//!   after, all under the lock: an edge not `trying` means its item is not
//!   queued. Such a poster is stuck when the other queue is full too: the
//!   other state is in the cycle, so it drains nothing, and only a drain
//!   gives room. When that queue has room the poster is moving (being
//!   woken to take it), and so is one that is `trying`.
//!
//! A cycle with a moving edge is looked at again a moment later: its
//! poster takes the room or finds the queue full again (stuck) within
//! microseconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use darksidesync_core::{Port, PostErrorKind};

use crate::item::Item;

/// How long a look at a moving cycle waits before the next.
const PAUSE: Duration = Duration::from_micros(100);

/// How long a poster waits for room before it looks again without a
/// wake-up (room given back with none: a discarded item of a closed port).
const RECHECK: Duration = Duration::from_millis(50);

/// waiting state → its edge.
static WAITS_FOR: Mutex<Option<Table>> = Mutex::new(None);

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// What a waiting state waits for.
enum On {
    /// The other state's answer or end (a call, a join).
    Run,
    /// Room in the other state's queue, reached through `port`.
    Room { port: Port<Item>, trying: bool },
}

struct Edge {
    target: u64,
    token: u64,
    on: On,
}

impl Edge {
    /// False when the wait may end without the other state running.
    fn stuck(&self) -> bool {
        match &self.on {
            On::Run => true,
            On::Room { port, trying } => !trying && !port.has_room(),
        }
    }
}

/// What a wait of `me` for `target` would close.
#[derive(Debug, PartialEq)]
enum Cycle {
    None,
    /// A cycle of waits that cannot end: a deadlock.
    Stuck,
    /// A cycle with a wait about to end: look again.
    Moving,
}

#[derive(Default)]
struct Table(HashMap<u64, Edge>);

impl Table {
    /// The cycle the edge `me → target` (stuck or not) would close.
    fn cycle(&self, me: u64, target: u64, stuck: bool) -> Cycle {
        let mut moving = !stuck;
        let mut cur = target;
        while cur != me {
            let Some(edge) = self.0.get(&cur) else {
                return Cycle::None;
            };
            moving |= !edge.stuck();
            cur = edge.target;
        }
        if moving {
            Cycle::Moving
        } else {
            Cycle::Stuck
        }
    }

    /// Inserts the edge `me → target` unless it closes a cycle.
    fn enter(&mut self, me: u64, target: u64, on: On) -> Result<WaitKey, Cycle> {
        let edge = Edge {
            target,
            token: NEXT_TOKEN.fetch_add(1, Ordering::Relaxed),
            on,
        };
        match self.cycle(me, target, edge.stuck()) {
            Cycle::None => {}
            found => return Err(found),
        }
        let token = edge.token;
        self.0.insert(me, edge);
        Ok(WaitKey { me, token })
    }

    /// The edge of `key`'s wait, if it is still there.
    fn edge(&mut self, key: WaitKey) -> Option<&mut Edge> {
        self.0.get_mut(&key.me).filter(|e| e.token == key.token)
    }
}

fn table() -> MutexGuard<'static, Option<Table>> {
    WAITS_FOR.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the table, under its lock.
fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    f(table().get_or_insert_with(Table::default))
}

/// Names one wait's edge, so that only that wait's end removes it.
#[derive(Clone, Copy)]
pub(crate) struct WaitKey {
    me: u64,
    token: u64,
}

impl WaitKey {
    /// Removes the edge if it is still this wait's.
    pub(crate) fn clear(self) {
        let gone = with_table(|t| {
            t.edge(self)?;
            t.0.remove(&self.me)
        });
        drop(gone); // a port it holds is dropped outside the lock
    }

    /// Marks a post's edge as taking room now, or not any more.
    fn set_trying(self, now: bool) {
        with_table(|t| {
            if let Some(Edge {
                on: On::Room { trying, .. },
                ..
            }) = t.edge(self)
            {
                *trying = now;
            }
        });
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

/// Records that state `me` is about to wait for state `target` to run (a
/// call, a join); `None` when `target` waits for `me`, directly or through
/// other states, and none of these waits can end.
pub(crate) fn wait_for(me: u64, target: u64) -> Option<Waiting> {
    loop {
        match with_table(|t| t.enter(me, target, On::Run)) {
            Ok(key) => return Some(Waiting(key)),
            Err(Cycle::Stuck) => return None,
            Err(_) => std::thread::sleep(PAUSE),
        }
    }
}

/// Queues `item` through `port` on the full queue of state `target`,
/// waiting for room as a post does, unless waiting would close a cycle
/// that cannot end (`WouldDeadlock`, the item dropped). Fails as a post
/// does otherwise (`Closed`, `Unregistered`).
pub(crate) fn post_when_room(
    me: u64,
    target: u64,
    port: &Port<Item>,
    mut item: Item,
) -> Result<(), PostErrorKind> {
    // This post's edge while it waits, removed on every way out.
    let mut waiting: Option<Waiting> = None;
    loop {
        // The queue was full at the last try.
        match &waiting {
            Some(w) => w.key().set_trying(false),
            None => {
                let on = On::Room {
                    port: port.clone(),
                    trying: false,
                };
                match with_table(|t| t.enter(me, target, on)) {
                    Ok(key) => waiting = Some(Waiting(key)),
                    Err(Cycle::Stuck) => return Err(PostErrorKind::WouldDeadlock),
                    Err(_) => std::thread::sleep(PAUSE),
                }
            }
        }
        if let Some(w) = &waiting {
            port.wait_room(Some(RECHECK))?;
            w.key().set_trying(true);
        }
        match port.post_if_room(item) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind == PostErrorKind::Full => item = e.item,
            Err(e) => return Err(e.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darksidesync_core::Hub;

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

    #[test]
    fn a_post_waiting_for_room_is_stuck_only_while_the_queue_is_full() {
        // A table of its own: the process-wide one is not involved.
        let hub: Hub<Item> = Hub::with_capacity(1);
        let port = hub.register("test", |_| {}).expect("a port");
        let mut t = Table::default();
        let (a, b) = (1, 2);
        let room = |trying| On::Room {
            port: port.clone(),
            trying,
        };
        // b's queue has room: a's post to it is about to end.
        t.enter(a, b, room(false)).expect("a waits for room in b");
        assert_eq!(t.cycle(b, a, true), Cycle::Moving);
        port.try_post(Item::from_fn(|_| unreachable!()))
            .expect("room");
        // Full now, and not taking room: a cannot go on unless b drains.
        assert_eq!(t.cycle(b, a, true), Cycle::Stuck);
        assert!(t.enter(b, a, On::Run).is_err());
        // A post taking room may have queued its item already.
        t.0.get_mut(&a).unwrap().on = room(true);
        assert_eq!(t.cycle(b, a, true), Cycle::Moving);
        // The new edge itself: b's post to a queue that has room.
        t.0.get_mut(&a).unwrap().on = On::Run;
        assert_eq!(t.cycle(b, a, false), Cycle::Moving);
        assert_eq!(t.cycle(b, a, true), Cycle::Stuck);
        assert_eq!(t.cycle(b, 3, true), Cycle::None);
    }
}
