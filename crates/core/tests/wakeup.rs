//! Wake-ups: a descriptor readable while work is pending, coalesced per
//! burst, an optional UDP datagram, and the in-process wait.
mod common;

use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use common::{within, HANG};
use darksidesync_core::waker::{poll_readable, UDP_PAYLOAD};
use darksidesync_core::{Batch, Hub};

#[test]
fn the_descriptor_is_readable_exactly_while_work_is_pending() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    let fd = hub.fd().unwrap();
    assert_eq!(hub.fd().unwrap(), fd, "the same descriptor every call");
    assert!(!poll_readable(fd, 0));
    port.post(1).unwrap();
    port.post(2).unwrap();
    assert!(poll_readable(fd, 0));
    let mut batch = Batch::new();
    hub.drain(1, &mut batch);
    assert!(poll_readable(fd, 0), "one item is still pending");
    hub.drain(1, &mut batch);
    assert!(!poll_readable(fd, 0), "nothing pending, nothing to read");
    port.post(3).unwrap();
    assert!(poll_readable(fd, 0), "a new burst wakes again");
}

#[test]
fn a_descriptor_created_after_posts_starts_readable() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    assert_eq!(hub.fd_readable(), None);
    port.post(1).unwrap();
    let fd = hub.fd().unwrap();
    assert!(poll_readable(fd, 0));
    assert_eq!(hub.fd_readable(), Some(true));
}

#[test]
fn a_burst_costs_one_wake_up() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    hub.fd().unwrap();
    for i in 0..1_000 {
        port.post(i).unwrap();
    }
    assert_eq!(hub.stats().wakeups, 1);
    let mut batch = Batch::new();
    hub.drain(usize::MAX, &mut batch);
    for i in 0..10 {
        port.post(i).unwrap();
    }
    assert_eq!(hub.stats().wakeups, 2);
}

#[test]
fn a_flush_loop_never_hangs_on_a_stale_wake_up() {
    within(HANG, || {
        let hub: Hub<u32> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        hub.fd().unwrap();
        let producer = thread::spawn(move || {
            for i in 0..50_000 {
                port.post(i).unwrap();
            }
        });
        let mut batch = Batch::new();
        let mut got = 0;
        while got < 50_000 {
            // `while wait(0) do dispatch() end`, then block until more comes.
            while hub.wait(Some(Duration::ZERO)) {
                got += hub.drain(usize::MAX, &mut batch);
                batch.by_ref().for_each(drop);
            }
            if got < 50_000 {
                hub.wait(Some(Duration::from_millis(50)));
            }
        }
        producer.join().unwrap();
        assert!(!hub.wait(Some(Duration::ZERO)));
        assert_eq!(hub.fd_readable(), Some(false));
    });
}

#[test]
fn wait_returns_false_on_timeout_and_true_when_work_arrives() {
    within(HANG, || {
        let hub: Hub<u32> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        assert!(!hub.wait(Some(Duration::ZERO)));
        assert!(!hub.wait(Some(Duration::from_millis(5))));
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            port.post(1).unwrap();
        });
        assert!(hub.wait(None));
        t.join().unwrap();
    });
}

#[test]
fn the_udp_notifier_sends_one_text_datagram_per_burst() {
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    hub.set_udp_port(Some(listener.local_addr().unwrap().port()))
        .unwrap();
    assert_eq!(hub.udp_port(), Some(listener.local_addr().unwrap().port()));
    for i in 0..100 {
        port.post(i).unwrap();
    }
    let mut buf = [0u8; 64];
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], UDP_PAYLOAD);
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.recv(&mut buf).is_err(),
        "one datagram for the whole burst"
    );
    hub.set_udp_port(None).unwrap();
    assert_eq!(hub.udp_port(), None);
}

#[test]
fn releasing_the_last_keep_alive_wakes_a_waiting_consumer() {
    within(HANG, || {
        let hub: Hub<u32> = Hub::new();
        let port = hub.register("p", |_| {}).unwrap();
        assert!(hub.is_idle());
        let a = port.keep_alive().unwrap();
        let b = port.keep_alive().unwrap();
        assert!(!hub.is_idle());
        assert_eq!(hub.stats().keep_alive, 2);
        drop(a);
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(b);
        });
        // Returns false: no work, but the last reference is gone.
        assert!(!hub.wait(None));
        assert!(hub.is_idle());
        t.join().unwrap();
    });
}

#[test]
fn pending_work_keeps_the_hub_busy_without_keep_alives() {
    let hub: Hub<u32> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    port.post(1).unwrap();
    assert!(!hub.is_idle());
}
