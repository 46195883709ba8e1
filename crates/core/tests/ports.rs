//! Ports: registration, generation-checked identities, unregistering.
mod common;

use std::sync::{Arc, Mutex};

use common::{Ledger, Tracked};
use darksidesync_core::{Batch, CancelReason, Hub, KeepAlive, Port, PostErrorKind};

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
fn assert_send<T: Send>() {}

#[test]
fn handles_are_send_sync_clone() {
    assert_send_sync_clone::<Port<String>>();
    assert_send::<KeepAlive<String>>();
    assert_send::<Hub<String>>();
}

#[test]
fn a_port_knows_its_name_while_live() {
    let hub: Hub<u8> = Hub::new();
    let port = hub.register("timer", |_| {}).unwrap();
    assert_eq!(port.name().as_deref(), Some("timer"));
    assert!(port.is_live());
    assert_eq!(hub.stats().ports, 1);
}

#[test]
fn unregistering_cancels_only_that_ports_items_and_keeps_the_others_order() {
    let ledger = Ledger::new(6);
    let hub: Hub<Tracked> = Hub::new();
    let why = Arc::new(Mutex::new(Vec::new()));
    let w = why.clone();
    let a = hub
        .register("a", move |r| w.lock().unwrap().push(r))
        .unwrap();
    let b = hub.register("b", |_| {}).unwrap();
    for id in 0..6 {
        let port = if id % 2 == 0 { &a } else { &b };
        port.post(Tracked::new(&ledger, id, id % 2, id as u64))
            .unwrap();
    }
    assert!(a.unregister());
    assert!(!a.clone().unregister(), "every clone is stale");
    assert_eq!(*why.lock().unwrap(), vec![CancelReason::Unregistered]);
    for id in [0, 2, 4] {
        assert_eq!(ledger.outcome(id), 2, "a's item {id} was dropped");
    }
    let mut batch = Batch::new();
    hub.drain(usize::MAX, &mut batch);
    assert_eq!(batch.map(|t| t.run().1).collect::<Vec<_>>(), vec![1, 3, 5]);
    assert_eq!(hub.stats().cancelled, 3);
}

#[test]
fn a_stale_handle_stays_stale_when_its_slot_is_reused() {
    let hub: Hub<u8> = Hub::new();
    let old = hub.register("old", |_| {}).unwrap();
    old.unregister();
    let new = hub.register("new", |_| {}).unwrap();
    assert_eq!(old.key().clone(), old.key());
    assert_ne!(old.key(), new.key());
    assert_eq!(old.post(1).unwrap_err().kind, PostErrorKind::Unregistered);
    assert!(old.name().is_none());
    assert!(old.keep_alive().is_err());
    new.post(2).unwrap();
    assert_eq!(hub.len(), 1);
}

#[test]
fn stale_ports_refuse_calls_with_unregistered() {
    let hub: Hub<darksidesync_core::Reply<u8>> = Hub::new();
    let port = hub.register("p", |_| {}).unwrap();
    port.unregister();
    let t = std::thread::spawn(move || port.call(|r| r, None));
    assert_eq!(
        t.join().unwrap(),
        Err(darksidesync_core::CallError::Unregistered)
    );
}
