//! Each port's own counters: every outcome counted once, on the port it
//! happened to, with `posted == delivered + cancelled + queued` per port.
mod common;

use std::thread;
use std::time::Duration;

use common::{within, HANG};
use darksidesync_core::{Batch, CallError, Hub, PortStats, PostErrorKind, Reply};

#[test]
fn posts_refusals_deliveries_and_cancellations_count_on_their_own_port() {
    let hub: Hub<u8> = Hub::with_capacity(4);
    let a = hub.register("a", |_| {}).unwrap();
    let b = hub.register("b", |_| {}).unwrap();
    for i in 0..3 {
        a.post(i).unwrap();
    }
    b.post(9).unwrap();
    assert_eq!(a.try_post(3).unwrap_err().kind, PostErrorKind::Full);
    let mut batch = Batch::new();
    assert_eq!(hub.drain(2, &mut batch), 2);
    a.count_ran(2);
    let s = a.stats();
    assert_eq!(
        s,
        PortStats {
            posted: 3,
            delivered: 2,
            ran: 2,
            refused: 1,
            ..PortStats::default()
        }
    );
    let a_queued = 1;
    assert_eq!(s.posted, s.delivered + s.cancelled + a_queued);
    assert_eq!(b.stats().posted, 1, "b's own post only");
    assert_eq!(b.stats().refused, 0, "a's refusal is a's");

    // Unregistering cancels a's queued item; its counters stay readable.
    assert!(a.unregister());
    assert_eq!(a.post(4).unwrap_err().kind, PostErrorKind::Unregistered);
    let s = a.stats();
    assert_eq!(
        (s.posted, s.delivered, s.cancelled, s.refused),
        (3, 2, 1, 2)
    );
    assert_eq!(s.posted, s.delivered + s.cancelled, "nothing of a's queued");

    // A new port in a's slot starts from zero and does not count a's.
    let c = hub.register("c", |_| {}).unwrap();
    assert_eq!(c.key().index(), a.key().index(), "the slot is reused");
    c.post(5).unwrap();
    assert_eq!(c.stats().posted, 1);
    assert_eq!(a.stats().posted, 3);

    // Close cancels what is queued, per port, and later posts are refused.
    assert!(hub.close());
    assert_eq!(b.post(6).unwrap_err().kind, PostErrorKind::Closed);
    let s = b.stats();
    assert_eq!(
        (s.posted, s.delivered, s.cancelled, s.refused),
        (1, 0, 1, 1)
    );
    let s = c.stats();
    assert_eq!((s.posted, s.delivered, s.cancelled), (1, 0, 1));
    let h = hub.stats();
    assert_eq!(h.posted, 5);
    assert_eq!(h.refused, 3);
    assert_eq!(h.cancelled, 3);
}

#[test]
fn no_wait_posts_count_like_any_post() {
    let hub: Hub<u8> = Hub::with_capacity(8);
    let a = hub.register("a", |_| {}).unwrap();
    for i in 0..5 {
        a.post_nowait(i).unwrap();
    }
    let s = a.stats();
    assert_eq!(s.posted, 5);
    let mut batch = Batch::new();
    hub.drain(usize::MAX, &mut batch);
    assert_eq!(a.stats().delivered, 5);
}

type Job = Reply<u8>;

fn next_job(hub: &Hub<Job>) -> Job {
    let mut batch = Batch::new();
    loop {
        hub.wait(None);
        if hub.drain(1, &mut batch) == 1 {
            return batch.pop().unwrap();
        }
    }
}

#[test]
fn calls_count_replies_errors_timeouts_and_refusals_on_their_port() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let p = hub.register("p", |_| {}).unwrap();
        let other = hub.register("other", |_| {}).unwrap();
        let caller = thread::spawn({
            let p = p.clone();
            move || (p.call(|r| r, None), p.call(|r| r, None))
        });
        next_job(&hub).send(1).unwrap();
        assert!(next_job(&hub).fail("no"));
        let (ok, failed) = caller.join().unwrap();
        assert_eq!(ok, Ok(1));
        assert_eq!(failed, Err(CallError::Handler("no".into())));

        let timed_out = thread::spawn({
            let p = p.clone();
            move || p.call(|r| r, Some(Duration::from_millis(1)))
        });
        assert_eq!(timed_out.join().unwrap(), Err(CallError::TimedOut));
        // Its item is still queued: the consumer gets it late and drops it.
        drop(next_job(&hub));

        // From the consumer thread: refused before anything is queued.
        hub.bind_consumer();
        assert_eq!(p.call(|r| r, None), Err(CallError::WouldDeadlock));

        let s = p.stats();
        assert_eq!(
            s,
            PortStats {
                posted: 3,
                delivered: 3,
                refused: 1,
                replies: 1,
                errors: 1,
                timeouts: 1,
                ..PortStats::default()
            }
        );
        assert_eq!(other.stats(), PortStats::default());
        assert_eq!(hub.stats().replies, 2, "the hub counts both answers");
    });
}

#[test]
fn items_purged_from_the_consumers_batch_count_as_cancelled_not_delivered() {
    let hub: Hub<u8> = Hub::new();
    let a = hub.register("a", |_| {}).unwrap();
    let b = hub.register("b", |_| {}).unwrap();
    a.post(1).unwrap();
    b.post(2).unwrap();
    a.post(3).unwrap();
    let mut batch = Batch::new();
    assert_eq!(hub.drain(usize::MAX, &mut batch), 3);
    assert_eq!(a.stats().delivered, 2);
    assert!(a.unregister());
    hub.purge_stale(&mut batch);
    assert_eq!(batch.collect::<Vec<_>>(), vec![2]);
    let s = a.stats();
    assert_eq!((s.posted, s.delivered, s.cancelled), (2, 0, 2));
    let s = b.stats();
    assert_eq!((s.posted, s.delivered, s.cancelled), (1, 1, 0));
}

#[test]
fn post_if_room_hands_back_a_full_post_uncounted_and_counts_the_rest() {
    let hub: Hub<u8> = Hub::with_capacity(1);
    let a = hub.register("a", |_| {}).unwrap();
    a.post_if_room(1).unwrap();
    let back = a.post_if_room(2).unwrap_err();
    assert_eq!((back.kind, back.item), (PostErrorKind::Full, 2));
    let s = a.stats();
    assert_eq!((s.posted, s.refused), (1, 0), "handed back, not refused");
    let mut batch = Batch::new();
    assert_eq!(hub.drain(1, &mut batch), 1);
    assert_eq!(batch.pop(), Some(1));
    a.post_if_room(back.item).unwrap();
    assert_eq!(hub.drain(1, &mut batch), 1);
    assert_eq!(batch.pop(), Some(2), "the item handed back, posted again");

    // Final refusals are counted as any post's.
    assert!(a.unregister());
    assert_eq!(
        a.post_if_room(3).unwrap_err().kind,
        PostErrorKind::Unregistered
    );
    assert_eq!(a.stats().refused, 1);
}
