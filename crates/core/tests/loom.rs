//! Model checks of the hand-offs, run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=4 cargo test -p darksidesync-core --test loom --release`
//! (`cargo xtask test` does). loom explores every interleaving of the
//! modelled threads; a lost wake-up shows up as a deadlock it reports.
#![cfg(loom)]

use loom::thread;

use darksidesync_core::{Batch, CallError, Hub, PostErrorKind, Reply, Slots};

/// Post → wait → drain never loses a wake-up, and order is kept.
#[test]
fn post_and_drain_hand_off() {
    loom::model(|| {
        let hub: Hub<u8> = Hub::with_capacity(4);
        let port = hub.register("p", |_| {}).unwrap();
        let producer = thread::spawn(move || {
            port.post(1).unwrap();
            port.post(2).unwrap();
        });
        let mut got = Vec::new();
        let mut batch = Batch::new();
        while got.len() < 2 {
            assert!(hub.wait(None));
            hub.drain(usize::MAX, &mut batch);
            got.extend(&mut batch);
        }
        producer.join().unwrap();
        assert_eq!(got, vec![1, 2]);
    });
}

/// A producer blocked on a full queue is released by the drain.
#[test]
fn full_queue_hand_off() {
    loom::model(|| {
        let hub: Hub<u8> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        let producer = thread::spawn(move || {
            port.post(1).unwrap();
            port.post(2).unwrap();
        });
        let mut got = Vec::new();
        let mut batch = Batch::new();
        while got.len() < 2 {
            hub.wait(None);
            hub.drain(usize::MAX, &mut batch);
            got.extend(&mut batch);
        }
        producer.join().unwrap();
        assert_eq!(got, vec![1, 2]);
    });
}

/// A call's reply reaches the waiter in every interleaving.
#[test]
fn call_round_trip() {
    loom::model(|| {
        let hub: Hub<(u8, Reply<u8>)> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (20, r), None));
        let mut batch = Batch::new();
        while batch.is_empty() {
            hub.wait(None);
            hub.drain(1, &mut batch);
        }
        let (v, reply) = batch.pop().unwrap();
        reply.send(v + 1).unwrap();
        assert_eq!(caller.join().unwrap(), Ok(21));
    });
}

/// Close racing a call: the caller always returns, with Closed (the item
/// was dropped unanswered) — never a hang.
#[test]
fn close_races_a_call() {
    loom::model(|| {
        let hub: Hub<(u8, Reply<u8>)> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (1, r), None));
        hub.close();
        assert_eq!(caller.join().unwrap(), Err(CallError::Closed));
    });
}

/// Close racing a producer blocked on a full queue releases it.
#[test]
fn close_races_a_blocked_post() {
    loom::model(|| {
        let hub: Hub<u8> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        port.try_post(0).unwrap();
        let producer = thread::spawn(move || port.post(1).map_err(|e| e.kind));
        hub.close();
        assert_eq!(producer.join().unwrap(), Err(PostErrorKind::Closed));
        assert_eq!(hub.stats().cancelled, 1);
    });
}

/// Releasing the last keep-alive wakes a consumer waiting for work.
#[test]
fn keep_alive_release_wakes_wait() {
    loom::model(|| {
        let hub: Hub<u8> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let keep = port.keep_alive().unwrap();
        let t = thread::spawn(move || drop(keep));
        while !hub.is_idle() {
            hub.wait(None);
        }
        t.join().unwrap();
    });
}

/// Unregister racing a call whose item the consumer already drained: the
/// caller always ends (Cancelled), and the consumer either answered first
/// (Ok) or finds the call ended (cannot claim it) — never both, never a
/// hang.
#[test]
fn unregister_races_a_drained_call() {
    loom::model(|| {
        let hub: Hub<(u8, Reply<u8>)> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let p2 = port.clone();
        let caller = thread::spawn(move || p2.call(|r| (1, r), None));
        let mut batch = Batch::new();
        while batch.is_empty() {
            hub.wait(None);
            hub.drain(1, &mut batch);
        }
        let unreg = thread::spawn(move || port.unregister());
        let (v, reply) = batch.pop().unwrap();
        let answered = reply.claim() && reply.send(v).is_ok();
        assert!(unreg.join().unwrap());
        let got = caller.join().unwrap();
        if answered {
            assert_eq!(got, Ok(1));
        } else {
            assert_eq!(got, Err(CallError::Cancelled));
        }
    });
}

/// Unregister racing a claim of a drained call that ends without the
/// answer: the cancellation either ends the call before the claim (which
/// then fails) or waits for the claim to end and is woken by it; the
/// caller ends Cancelled either way, never hangs.
#[test]
fn unregister_waits_out_a_claim() {
    loom::model(|| {
        let hub: Hub<(u8, Reply<u8>)> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let p2 = port.clone();
        let caller = thread::spawn(move || p2.call(|r| (1, r), None));
        let mut batch = Batch::new();
        while batch.is_empty() {
            hub.wait(None);
            hub.drain(1, &mut batch);
        }
        let unreg = thread::spawn(move || port.unregister());
        let (v, reply) = batch.pop().unwrap();
        if reply.claim() {
            reply.unclaim();
        }
        assert!(unreg.join().unwrap());
        assert_eq!(reply.send(v), Err(v), "cancelled: the answer is refused");
        assert_eq!(caller.join().unwrap(), Err(CallError::Cancelled));
    });
}

/// No-wait posts racing the consumer's drains: each item comes out exactly
/// once and in order, whether it went through the lock or the side ring
/// (the queue starts without a buffer, so the first post takes the ring).
#[test]
fn nowait_posts_exactly_once() {
    loom::model(|| {
        let hub: Hub<u8> = Hub::with_capacity(4);
        let port = hub.register("p", |_| {}).unwrap();
        let producer = thread::spawn(move || {
            port.post_nowait(1).unwrap();
            port.post_nowait(2).unwrap();
        });
        let mut got = Vec::new();
        let mut batch = Batch::new();
        while got.len() < 2 {
            if hub.drain(usize::MAX, &mut batch) == 0 {
                thread::yield_now();
            }
            got.extend(&mut batch);
        }
        producer.join().unwrap();
        assert_eq!(hub.drain(usize::MAX, &mut batch), 0);
        assert_eq!(got, vec![1, 2]);
        let stats = hub.stats();
        assert_eq!((stats.posted, stats.delivered), (2, 2));
    });
}

/// Two no-wait posts racing into a hub of capacity 1 with nobody
/// draining: at most one is accepted, whichever path (lock or side ring)
/// each took, and a `stats()` snapshot racing them keeps the bound and the
/// accounting identity (the ring's entries used to count beyond the
/// capacity and in `depth` before they counted as posted).
#[test]
fn nowait_posts_race_within_capacity() {
    loom::model(|| {
        let hub: Hub<u8> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        let producers: Vec<_> = (0..2)
            .map(|i| {
                let port = port.clone();
                thread::spawn(move || port.post_nowait(i).is_ok())
            })
            .collect();
        let s = hub.stats();
        assert!(s.depth <= 1, "{s:?}");
        assert_eq!(
            s.posted,
            s.delivered + s.cancelled + s.depth as u64,
            "{s:?}"
        );
        let accepted = producers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(accepted, 1, "capacity 1, nothing drained");
        let s = hub.stats();
        assert_eq!((s.posted, s.depth, s.refused), (1, 1, 1), "{s:?}");
    });
}

/// A descriptor made while a no-wait post goes through the side ring is
/// readable afterwards: either the post saw the descriptor and wrote it,
/// or `fd()` saw the ring's reservation (the wake-up was lost before).
#[test]
fn fd_made_during_a_ring_post_is_readable() {
    loom::model(|| {
        let hub: Hub<u8> = Hub::with_capacity(4);
        let port = hub.register("p", |_| {}).unwrap();
        let producer = thread::spawn(move || port.post_nowait(1).unwrap());
        hub.fd().unwrap();
        producer.join().unwrap();
        assert_eq!(hub.fd_readable(), Some(true));
    });
}

/// A no-wait post racing close is either refused (`Closed`) or accepted and
/// then discarded by the close, never both, never neither.
#[test]
fn nowait_post_races_close() {
    loom::model(|| {
        let discarded = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hub: Hub<u8> = Hub::with_discard(4, {
            let d = discarded.clone();
            move |_, _| {
                d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let port = hub.register("p", |_| {}).unwrap();
        let producer = thread::spawn(move || port.post_nowait(7).map_err(|e| e.kind));
        hub.close();
        let result = producer.join().unwrap();
        let n = discarded.load(std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(_) => assert_eq!(n, 1, "accepted, so discarded by close"),
            Err(kind) => {
                assert_eq!(kind, PostErrorKind::Closed);
                assert_eq!(n, 0);
            }
        }
    });
}

/// A slot-table lookup racing the removal and reuse of its key gets the
/// record its key named or nothing, never the next one's, and no record is
/// freed while a lookup takes it (loom checks the accesses and the leaks).
#[test]
fn slot_lookup_races_remove_and_reuse() {
    use loom::sync::Arc;
    loom::model(|| {
        let table: Arc<Slots<u8>> = Arc::new(Slots::new());
        let old = table.insert(Arc::new(1)).unwrap();
        let reader = thread::spawn({
            let table = table.clone();
            move || table.get(old).map(|v| *v)
        });
        assert_eq!(table.remove(old).as_deref(), Some(&1));
        let new = table.insert(Arc::new(2)).unwrap();
        assert_eq!(new.index(), old.index(), "the slot is reused");
        assert_ne!(new, old);
        let got = reader.join().unwrap();
        assert!(got.is_none() || got == Some(1), "{got:?}");
        assert!(table.get(old).is_none());
    });
}

/// A borrow racing the removal and reuse of its key derefs to the record
/// its key named or finds nothing; the removal waits while it lasts, so the
/// record and a reference taken from it stay valid (loom checks the
/// accesses and the leaks).
#[test]
fn slot_borrow_races_remove_and_reuse() {
    use loom::sync::Arc;
    loom::model(|| {
        let table: Arc<Slots<u8>> = Arc::new(Slots::new());
        let old = table.insert(Arc::new(1)).unwrap();
        let reader = thread::spawn({
            let table = table.clone();
            move || {
                table.borrow(old).map(|b| {
                    let kept = b.to_arc();
                    drop(b);
                    (*kept, Arc::strong_count(&kept) >= 1)
                })
            }
        });
        assert_eq!(table.remove(old).as_deref(), Some(&1));
        let new = table.insert(Arc::new(2)).unwrap();
        assert_eq!(new.index(), old.index(), "the slot is reused");
        let got = reader.join().unwrap();
        assert!(got.is_none() || got == Some((1, true)), "{got:?}");
        assert!(table.borrow(old).is_none());
    });
}
