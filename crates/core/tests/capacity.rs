//! A bounded queue: a full queue blocks, times out or refuses, as the
//! producer chose.
mod common;

use std::thread;
use std::time::Duration;

use common::{within, HANG};
use darksidesync_core::{Batch, CallError, Hub, PostErrorKind, Reply, DEFAULT_CAPACITY};

#[test]
fn default_capacity_is_documented_and_settable() {
    let hub: Hub<u8> = Hub::new();
    assert_eq!(hub.capacity(), DEFAULT_CAPACITY);
    assert!(!hub.set_capacity(0), "zero is refused");
    assert_eq!(hub.capacity(), DEFAULT_CAPACITY);
    assert!(hub.set_capacity(3));
    assert_eq!(hub.capacity(), 3);
}

#[test]
fn try_post_refuses_at_once_and_hands_the_item_back() {
    let hub: Hub<String> = Hub::with_capacity(2);
    let port = hub.register("p", |_| {}).unwrap();
    port.try_post("a".into()).unwrap();
    port.try_post("b".into()).unwrap();
    let e = port.try_post("c".into()).unwrap_err();
    assert_eq!((e.kind, e.item.as_str()), (PostErrorKind::Full, "c"));
    assert_eq!(hub.len(), 2);
}

#[test]
fn post_timeout_gives_up_when_no_room_appears() {
    within(HANG, || {
        let hub: Hub<u8> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        port.post(1).unwrap();
        let t = thread::spawn(move || {
            port.post_timeout(2, Duration::from_millis(30))
                .map_err(|e| e.kind)
        });
        assert_eq!(t.join().unwrap(), Err(PostErrorKind::Full));
        assert_eq!(hub.stats().refused, 1);
    });
}

#[test]
fn post_blocks_until_the_consumer_makes_room() {
    within(HANG, || {
        let hub: Hub<u32> = Hub::with_capacity(4);
        let port = hub.register("p", |_| {}).unwrap();
        let producer = thread::spawn(move || {
            for i in 0..1_000 {
                port.post(i).unwrap();
            }
        });
        let mut got = Vec::new();
        let mut batch = Batch::new();
        while got.len() < 1_000 {
            hub.wait(None);
            assert!(hub.len() <= 4, "the bound was exceeded");
            hub.drain(usize::MAX, &mut batch);
            got.extend(&mut batch);
        }
        producer.join().unwrap();
        assert_eq!(got, (0..1_000).collect::<Vec<_>>());
        assert!(hub.stats().peak_depth <= 4);
    });
}

#[test]
fn raising_the_capacity_releases_blocked_producers_and_lowering_keeps_items() {
    within(HANG, || {
        let hub: Hub<u8> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        port.post(0).unwrap();
        let p2 = port.clone();
        let t = thread::spawn(move || p2.post(1).map_err(|e| e.kind));
        let end = std::time::Instant::now() + HANG;
        while hub.blocked_producers() == 0 {
            assert!(
                std::time::Instant::now() < end,
                "the producer never blocked"
            );
            thread::yield_now();
        }
        hub.set_capacity(2);
        assert!(t.join().unwrap().is_ok());
        assert_eq!(hub.len(), 2);
        hub.set_capacity(1);
        assert_eq!(hub.len(), 2, "lowering the bound drops nothing");
        assert_eq!(port.try_post(2).unwrap_err().kind, PostErrorKind::Full);
    });
}

#[test]
fn a_blocking_post_on_the_consumer_thread_refuses_instead_of_deadlocking() {
    let hub: Hub<u8> = Hub::with_capacity(1);
    let port = hub.register("p", |_| {}).unwrap();
    port.post(1).unwrap();
    let e = port.post(2).unwrap_err();
    assert_eq!((e.kind, e.item), (PostErrorKind::WouldDeadlock, 2));
}

#[test]
fn try_call_refuses_when_full() {
    within(HANG, || {
        let hub: Hub<Option<Reply<u8>>> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        port.post(None).unwrap();
        let t = thread::spawn(move || port.try_call(Some, None));
        assert_eq!(t.join().unwrap(), Err(CallError::Full));
    });
}

#[test]
fn wait_room_waits_for_a_drain_and_takes_no_room() {
    within(HANG, || {
        let hub: Hub<u8> = Hub::with_capacity(1);
        let port = hub.register("p", |_| {}).unwrap();
        assert!(port.has_room());
        assert_eq!(port.wait_room(Some(Duration::ZERO)), Ok(true));
        port.post(1).unwrap();
        assert!(!port.has_room());
        assert_eq!(
            port.wait_room(Some(Duration::ZERO)),
            Err(PostErrorKind::WouldDeadlock),
            "on the consumer thread, as a blocking post"
        );
        let p2 = port.clone();
        let timed = thread::spawn(move || p2.wait_room(Some(Duration::from_millis(10))));
        assert_eq!(timed.join().unwrap(), Ok(false), "nobody drained");
        let p2 = port.clone();
        let waiting = thread::spawn(move || p2.wait_room(None));
        let end = std::time::Instant::now() + HANG;
        while hub.blocked_producers() == 0 {
            assert!(std::time::Instant::now() < end, "never waited");
            thread::yield_now();
        }
        hub.drain(usize::MAX, &mut Batch::new());
        assert_eq!(waiting.join().unwrap(), Ok(true));
        assert_eq!(hub.len(), 0, "waiting took no room");
        assert!(port.has_room());
        hub.close();
        assert_eq!(port.wait_room(None), Err(PostErrorKind::Closed));
    });
}
