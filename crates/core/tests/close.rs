//! Close: cancels queued items, releases every waiter, tells every port,
//! refuses later posts, and touches no other hub.
mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{within, Ledger, Tracked, HANG};
use darksidesync_core::{Batch, CallError, CancelReason, Hub, PostErrorKind, Reply};

#[test]
fn close_drops_queued_items_then_tells_ports_last_registered_first() {
    let ledger = Ledger::new(4);
    let hub: Hub<Tracked> = Hub::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut ports = Vec::new();
    for name in ["first", "second", "third"] {
        let (order, ledger) = (order.clone(), ledger.clone());
        ports.push(
            hub.register(name, move |why| {
                // At close, items are dropped before ports are told.
                if why == CancelReason::HubClosed {
                    assert_eq!(ledger.tally(), (0, 4, 0));
                }
                order.lock().unwrap().push((name, why));
            })
            .unwrap(),
        );
    }
    // Free and reuse a slot: order is registration order, not slot order.
    ports.remove(0).unregister();
    let o2 = order.clone();
    let again = hub
        .register("fourth", move |why| {
            o2.lock().unwrap().push(("fourth", why))
        })
        .unwrap();
    for id in 0..4 {
        again.post(Tracked::new(&ledger, id, 0, 0)).unwrap();
    }
    assert!(hub.close());
    assert!(!hub.close(), "close is idempotent");
    assert_eq!(ledger.tally(), (0, 4, 0));
    assert_eq!(
        *order.lock().unwrap(),
        vec![
            ("first", CancelReason::Unregistered),
            ("fourth", CancelReason::HubClosed),
            ("third", CancelReason::HubClosed),
            ("second", CancelReason::HubClosed),
        ]
    );
    let e = again
        .post(Tracked::new(&Ledger::new(1), 0, 0, 0))
        .unwrap_err();
    assert_eq!(e.kind, PostErrorKind::Closed);
    assert!(hub.register("late", |_| {}).is_err());
}

#[test]
fn close_releases_producers_blocked_on_a_full_queue() {
    within(HANG, || {
        let hub: Hub<u32> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        port.post(0).unwrap();
        let blocked: Vec<_> = (0..4)
            .map(|i| {
                let port = port.clone();
                thread::spawn(move || port.post(i).map_err(|e| (e.kind, e.item)))
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        hub.close();
        for (i, t) in blocked.into_iter().enumerate() {
            assert_eq!(t.join().unwrap(), Err((PostErrorKind::Closed, i as u32)));
        }
    });
}

enum Job {
    Echo(u64, Reply<u64>),
    Fire(Tracked),
}

#[test]
fn close_racing_posts_and_blocked_calls_ends_every_caller() {
    const ROUNDS: usize = 40;
    const THREADS: usize = 6;
    within(HANG, || {
        for round in 0..ROUNDS {
            let ledger = Ledger::new(THREADS * 1_000);
            let hub: Hub<Job> = Hub::with_capacity(16);
            let port = hub.register("race", |_| {}).unwrap();
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (port, ledger) = (port.clone(), ledger.clone());
                    thread::spawn(move || {
                        let mut outcomes = Vec::new();
                        let mut created = 0;
                        for i in 0..1_000u64 {
                            if t % 2 == 0 {
                                let r = port.call(|reply| Job::Echo(i, reply), None);
                                match &r {
                                    Ok(v) => assert_eq!(*v, i),
                                    Err(CallError::Closed) => {}
                                    Err(e) => panic!("unexpected outcome {e:?}"),
                                }
                                let closed = r.is_err();
                                outcomes.push(r);
                                if closed {
                                    break;
                                }
                            } else {
                                let item =
                                    Job::Fire(Tracked::new(&ledger, t * 1_000 + i as usize, t, i));
                                created += 1;
                                if port.post(item).is_err() {
                                    break;
                                }
                            }
                        }
                        (outcomes, created)
                    })
                })
                .collect();
            let mut batch = Batch::new();
            for _ in 0..(round % 8) * 5 {
                hub.wait(Some(Duration::from_millis(5)));
                hub.drain(usize::MAX, &mut batch);
                for job in &mut batch {
                    match job {
                        Job::Echo(v, reply) => drop(reply.send(v)),
                        Job::Fire(t) => drop(t.run()),
                    }
                }
            }
            hub.close();
            let mut created = 0;
            for w in workers {
                created += w.join().expect("a worker panicked").1;
            }
            let (ran, dropped, _never_created) = ledger.tally();
            assert_eq!(ran + dropped, created, "a fire-and-forget item was lost");
            let s = hub.stats();
            assert_eq!(s.posted, s.delivered + s.cancelled);
        }
    });
}

#[test]
fn closing_one_hub_leaves_another_untouched() {
    let a: Hub<u32> = Hub::new();
    let b: Hub<u32> = Hub::new();
    let pa = a.register("lib", |_| {}).unwrap();
    let b_cancelled = Arc::new(Mutex::new(None));
    let flag = b_cancelled.clone();
    let pb = b
        .register("lib", move |why| *flag.lock().unwrap() = Some(why))
        .unwrap();
    pa.post(1).unwrap();
    pb.post(2).unwrap();
    drop(a);
    assert_eq!(pa.post(3).unwrap_err().kind, PostErrorKind::Closed);
    assert_eq!(*b_cancelled.lock().unwrap(), None);
    pb.post(4).unwrap();
    let mut batch = Batch::new();
    b.drain(usize::MAX, &mut batch);
    assert_eq!(batch.collect::<Vec<_>>(), vec![2, 4]);
    drop(b);
    assert_eq!(*b_cancelled.lock().unwrap(), Some(CancelReason::HubClosed));
}

#[test]
fn dropping_the_hub_closes_it_and_ports_stay_safe_to_use() {
    let hub: Hub<String> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    port.post("queued".into()).unwrap();
    drop(hub);
    assert!(port.is_closed());
    assert!(!port.is_live());
    assert_eq!(port.name(), None);
    assert_eq!(port.post("late".into()).unwrap_err().item, "late");
    assert_eq!(
        port.call(|_r: Reply<()>| String::new(), None),
        Err(CallError::Closed)
    );
    assert!(port.keep_alive().is_err());
    assert!(!port.unregister());
}
