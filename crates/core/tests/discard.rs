//! The discard path: every accepted item that is not run is handed to the
//! hub's discard function exactly once, with the reason; a call pending
//! anywhere ends when its port is unregistered.
mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{within, HANG};
use darksidesync_core::{Batch, CallError, Discarded, Hub, PostErrorKind, Reply};

type Log = Arc<Mutex<Vec<(u32, Discarded)>>>;

fn logging_hub(capacity: usize) -> (Hub<u32>, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let hub = Hub::with_discard(capacity, move |item, why| {
        l.lock().unwrap().push((item, why))
    });
    (hub, log)
}

#[test]
fn unregister_and_close_tell_each_item_why() {
    let (hub, log) = logging_hub(16);
    let a = hub.register("a", |_| {}).unwrap();
    let b = hub.register("b", |_| {}).unwrap();
    a.post(1).unwrap();
    b.post(2).unwrap();
    a.post(3).unwrap();
    assert!(a.unregister());
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, Discarded::Unregistered), (3, Discarded::Unregistered)]
    );
    hub.close();
    assert_eq!(log.lock().unwrap()[2], (2, Discarded::Closed));
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[test]
fn a_refused_post_comes_back_and_is_not_discarded() {
    let (hub, log) = logging_hub(1);
    let p = hub.register("p", |_| {}).unwrap();
    p.post(1).unwrap();
    let e = p.try_post(2).unwrap_err();
    assert_eq!((e.kind, e.item), (PostErrorKind::Full, 2));
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn a_refused_call_item_is_discarded_as_refused() {
    let log: Arc<Mutex<Vec<Discarded>>> = Arc::default();
    let l = log.clone();
    let hub: Hub<Option<Reply<()>>> =
        Hub::with_discard(1, move |_, why| l.lock().unwrap().push(why));
    let p = hub.register("p", |_| {}).unwrap();
    p.post(None).unwrap();
    let caller = thread::spawn(move || p.try_call(Some, None));
    assert_eq!(caller.join().unwrap(), Err(CallError::Full));
    assert_eq!(
        *log.lock().unwrap(),
        vec![Discarded::Refused(PostErrorKind::Full)]
    );
}

#[test]
fn purge_stale_discards_drained_items_of_an_unregistered_port_only() {
    let (hub, log) = logging_hub(16);
    let a = hub.register("a", |_| {}).unwrap();
    let b = hub.register("b", |_| {}).unwrap();
    for i in 0..6 {
        if i % 2 == 0 { a.post(i) } else { b.post(i) }.unwrap();
    }
    let mut batch = Batch::new();
    hub.drain(usize::MAX, &mut batch);
    hub.purge_stale(&mut batch);
    assert_eq!(batch.len(), 6, "nothing stale yet");
    a.unregister();
    hub.purge_stale(&mut batch);
    assert_eq!(batch.collect::<Vec<_>>(), vec![1, 3, 5]);
    let discarded: Vec<_> = log.lock().unwrap().clone();
    assert_eq!(
        discarded,
        vec![
            (0, Discarded::Unregistered),
            (2, Discarded::Unregistered),
            (4, Discarded::Unregistered)
        ]
    );
}

#[test]
fn a_batch_given_up_after_close_is_discarded_as_closed() {
    let (hub, log) = logging_hub(16);
    let a = hub.register("a", |_| {}).unwrap();
    a.post(7).unwrap();
    let mut batch = Batch::new();
    hub.drain(usize::MAX, &mut batch);
    hub.close();
    hub.discard_batch(&mut batch);
    assert!(batch.is_empty());
    assert_eq!(*log.lock().unwrap(), vec![(7, Discarded::Closed)]);
}

type Job = (i64, Reply<i64>);

#[test]
fn unregister_releases_a_call_whose_item_the_consumer_already_drained() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let p2 = port.clone();
        let caller = thread::spawn(move || p2.call(|r| (1, r), None));
        let mut batch = Batch::new();
        while batch.is_empty() {
            hub.wait(None);
            hub.drain(1, &mut batch);
        }
        port.unregister();
        assert_eq!(caller.join().unwrap(), Err(CallError::Cancelled));
        let (_, reply) = batch.pop().unwrap();
        assert!(
            reply.is_abandoned(),
            "the consumer can see it was cancelled"
        );
        assert!(!reply.claim());
        assert_eq!(reply.send(5), Err(5));
    });
}

#[test]
fn unregister_releases_a_call_whose_reply_the_consumer_holds() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let p2 = port.clone();
        let caller = thread::spawn(move || p2.call(|r| (1, r), None));
        let mut batch = Batch::new();
        while batch.is_empty() {
            hub.wait(None);
            hub.drain(1, &mut batch);
        }
        let (_, reply) = batch.pop().unwrap();
        assert!(reply.claim());
        reply.unclaim(); // the callback ran; the answer is still to come
        port.unregister();
        assert_eq!(caller.join().unwrap(), Err(CallError::Cancelled));
        assert_eq!(reply.send(1), Err(1));
    });
}

#[test]
fn a_claimed_call_outlives_its_timeout_and_gets_its_answer() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (1, r), Some(Duration::from_millis(30))));
        let mut batch = Batch::new();
        while batch.is_empty() {
            hub.wait(None);
            hub.drain(1, &mut batch);
        }
        let (v, reply) = batch.pop().unwrap();
        assert!(reply.claim());
        thread::sleep(Duration::from_millis(80)); // past the caller's timeout
        reply.send(v + 1).unwrap();
        assert_eq!(caller.join().unwrap(), Ok(2));
    });
}

/// The caller's timeout passes while the consumer holds the claim: the
/// caller waits for the claim to end, and then times out (ending the claim
/// must wake it; the answer never comes).
#[test]
fn a_call_whose_timeout_passed_while_claimed_times_out_when_unclaimed() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (1, r), Some(Duration::from_millis(30))));
        let mut batch = Batch::new();
        while batch.is_empty() {
            hub.wait(None);
            hub.drain(1, &mut batch);
        }
        let (_, reply) = batch.pop().unwrap();
        assert!(reply.claim());
        thread::sleep(Duration::from_millis(80)); // past the caller's timeout
        reply.unclaim();
        assert_eq!(caller.join().unwrap(), Err(CallError::TimedOut));
        assert_eq!(reply.send(1), Err(1), "the caller gave up");
    });
}

#[test]
fn a_timed_out_unclaimed_call_cannot_be_claimed() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (1, r), Some(Duration::from_millis(10))));
        assert_eq!(caller.join().unwrap(), Err(CallError::TimedOut));
        let mut batch = Batch::new();
        hub.drain(1, &mut batch);
        let (_, reply) = batch.pop().unwrap();
        assert!(!reply.claim(), "its lent data is gone");
    });
}
