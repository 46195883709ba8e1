//! Blocking calls end with exactly one explicit outcome.
mod common;

use std::thread;
use std::time::Duration;

use common::{within, HANG};
use darksidesync_core::{Batch, CallError, Hub, Reply};

type Job = (i64, Reply<i64>);

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
fn a_reply_reaches_the_caller() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (20, r), None));
        let (v, reply) = next_job(&hub);
        reply.send(v + 1).unwrap();
        assert_eq!(caller.join().unwrap(), Ok(21));
        assert_eq!(hub.stats().replies, 1);
    });
}

#[test]
fn a_handler_error_carries_its_text() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (0, r), None));
        let (_, reply) = next_job(&hub);
        assert!(reply.fail("attempt to divide by zero"));
        assert_eq!(
            caller.join().unwrap(),
            Err(CallError::Handler("attempt to divide by zero".into()))
        );
    });
}

#[test]
fn a_reply_dropped_unanswered_is_cancelled() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (0, r), None));
        drop(next_job(&hub));
        assert_eq!(caller.join().unwrap(), Err(CallError::Cancelled));
    });
}

#[test]
fn unregistering_cancels_a_queued_call() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let p2 = port.clone();
        let caller = thread::spawn(move || p2.call(|r| (0, r), None));
        while hub.is_empty() {
            thread::yield_now();
        }
        port.unregister();
        assert_eq!(caller.join().unwrap(), Err(CallError::Cancelled));
    });
}

#[test]
fn close_releases_queued_and_in_hand_calls_with_closed() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let callers: Vec<_> = (0..3)
            .map(|i| {
                let port = port.clone();
                thread::spawn(move || port.call(|r| (i, r), None))
            })
            .collect();
        while hub.len() < 3 {
            thread::yield_now();
        }
        // One call is in the consumer's hands, two are still queued.
        let mut batch = Batch::new();
        hub.drain(1, &mut batch);
        hub.close();
        drop(batch);
        for c in callers {
            assert_eq!(c.join().unwrap(), Err(CallError::Closed));
        }
    });
}

#[test]
fn a_timed_out_call_refuses_its_late_reply() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let caller = thread::spawn(move || port.call(|r| (7, r), Some(Duration::from_millis(20))));
        assert_eq!(caller.join().unwrap(), Err(CallError::TimedOut));
        let (v, reply) = next_job(&hub);
        assert!(reply.is_abandoned());
        assert_eq!(
            reply.send(v),
            Err(7),
            "the late value comes back to the consumer"
        );
        assert_eq!(hub.stats().replies, 0);
    });
}

#[test]
fn a_call_from_the_consumer_thread_fails_at_once() {
    let hub: Hub<Job> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    let mut built = false;
    let r = port.call(
        |reply| {
            built = true;
            (0, reply)
        },
        None,
    );
    assert_eq!(r, Err(CallError::WouldDeadlock));
    assert!(!built, "nothing was queued");
    assert!(hub.is_empty());
}

#[test]
fn rebinding_the_consumer_moves_the_deadlock_check() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        let hub = thread::spawn(move || {
            hub.bind_consumer();
            hub
        })
        .join()
        .unwrap();
        // This thread is no longer the consumer: the call is queued.
        let p2 = port.clone();
        let caller = thread::spawn(move || p2.call(|r| (1, r), Some(Duration::from_millis(10))));
        assert_eq!(caller.join().unwrap(), Err(CallError::TimedOut));
        assert_eq!(
            port.call(|r| (1, r), Some(Duration::from_millis(10))),
            Err(CallError::TimedOut)
        );
        assert_eq!(hub.len(), 2);
    });
}

#[test]
fn many_concurrent_callers_each_get_their_own_reply() {
    within(HANG, || {
        let hub: Hub<Job> = Hub::with_capacity(8);
        let port = hub.register("p", |_| {}).unwrap();
        let callers: Vec<_> = (0..8i64)
            .map(|t| {
                let port = port.clone();
                thread::spawn(move || {
                    for i in 0..500 {
                        let v = t * 1_000 + i;
                        assert_eq!(port.call(|r| (v, r), None), Ok(v * 2));
                    }
                })
            })
            .collect();
        let mut batch = Batch::new();
        let mut answered = 0;
        while answered < 8 * 500 {
            hub.wait(None);
            hub.drain(usize::MAX, &mut batch);
            for (v, reply) in &mut batch {
                reply.send(v * 2).unwrap();
                answered += 1;
            }
        }
        for c in callers {
            c.join().unwrap();
        }
        assert_eq!(hub.stats().replies, 4_000);
    });
}
