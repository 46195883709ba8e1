//! loom models of the glue's hand-counted and hand-ordered types, run by
//! `cargo xtask loom` (`--cfg darksidesync_loom`, see `sync.rs`). Each
//! drives the type the glue ships, from modelled threads, the way the glue
//! uses it; lent memory is a loom cell, so a use that is not ordered
//! before its free is reported as a race, and one after it as a value.

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicUsize;
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::capi::running::Running;
use crate::capi::turns::{Settled, Turns};
use crate::counted::{Counted, Held};
use crate::sync::{AtomicBool, Ordering};

const LIVE: u32 = 1;
const FREED: u32 = 2;

/// Memory some thread frees: a `Callback`'s registry key, a 1v0 `pData`
/// on the caller's stack, a utility's context.
struct Lent(UnsafeCell<u32>);

impl Lent {
    fn new() -> Lent {
        Lent(UnsafeCell::new(LIVE))
    }

    fn touch(&self) {
        // SAFETY: a loom cell: an access racing the free is reported.
        self.0
            .with(|p| assert_eq!(unsafe { *p }, LIVE, "used after free"));
    }

    fn free(&self) {
        // SAFETY: as above.
        self.0.with_mut(|p| unsafe { *p = FREED });
    }
}

/// What a `Callback` shares: freeing it frees the key, once.
struct Key {
    lent: Lent,
    frees: Arc<AtomicUsize>,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.lent.free();
        self.frees.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the item loop does with a batch (`run_items` in `item_loop.rs`):
/// uses each item's key and hands its handle to the loop's `Held`, which
/// gives them up together when it drops.
fn run_batch(batch: Vec<Counted<Key>>) {
    let mut held = Held::default();
    for cb in batch {
        cb.get().lent.touch();
        held.hold(cb);
    }
}

/// Two `Callback`s cloned into items by two producers (one posts with
/// both) while their owners drop them and the Lua thread runs batches:
/// each key is freed exactly once, after every use of it.
#[test]
fn callback_is_freed_once_after_its_last_use() {
    loom::model(|| {
        let frees = Arc::new(AtomicUsize::new(0));
        let key = || {
            Counted::new(Key {
                lent: Lent::new(),
                frees: frees.clone(),
            })
        };
        let owners = [key(), key()];
        let queue = Arc::new(Mutex::new(Vec::new()));
        let producers: Vec<_> = [&owners[..], &owners[..1]]
            .into_iter()
            .map(|cbs| {
                let cbs = cbs.to_vec();
                let queue = queue.clone();
                thread::spawn(move || {
                    for cb in cbs {
                        cb.get().lent.touch();
                        queue.lock().unwrap().push(cb.clone());
                    }
                })
            })
            .collect();
        drop(owners);
        let batch = std::mem::take(&mut *queue.lock().unwrap());
        run_batch(batch);
        for p in producers {
            p.join().unwrap();
        }
        let batch = std::mem::take(&mut *queue.lock().unwrap());
        run_batch(batch);
        assert_eq!(frees.load(Ordering::Relaxed), 2);
    });
}

/// Counts the 1v0 callbacks called with `pData`.
#[derive(Default)]
struct Calls {
    decoder: AtomicUsize,
    ret: AtomicUsize,
}

/// A cancelled 1v0 item discarded on one thread (`decoder(NULL)`) while
/// the thread in `deliver`, released by the cancellation, settles: the
/// decoder runs once, and before `deliver` returns and `pData` goes.
#[test]
fn turns_discard_races_deliver() {
    loom::model(|| {
        let turns = Turns::new();
        let data = Arc::new(Lent::new());
        let calls = Arc::new(Calls::default());
        let discard = {
            let (turns, data, calls) = (turns.clone(), data.clone(), calls.clone());
            thread::spawn(move || {
                turns.decode_null(|| {
                    data.touch();
                    calls.decoder.fetch_add(1, Ordering::Relaxed);
                });
            })
        };
        let settled = turns.settle(
            || {
                data.touch();
                calls.decoder.fetch_add(1, Ordering::Relaxed);
            },
            || unreachable!("no return callback is due"),
        );
        data.free();
        assert_eq!(settled, Settled::Cancelled);
        discard.join().unwrap();
        assert_eq!(calls.decoder.load(Ordering::Relaxed), 1);
    });
}

/// How a 1v0 blocking call ended, as the core's `Reply` tells the thread
/// in `deliver`: the first end wins.
#[derive(Clone, Copy, PartialEq, Debug)]
enum End {
    /// `reply.send`: the answer, after the return callback ran.
    Answered,
    /// The reply dropped unanswered (no answer was due, or the reply
    /// userdata was collected): the waiter sees a cancellation.
    Dropped,
    /// `unreg()` cancelled it.
    Cancelled,
}

/// The core's `Reply` as the glue relies on it: a claim excludes the
/// call's end (a cancellation waits it out), and a call ends once.
struct Call(Mutex<Option<End>>);

impl Call {
    fn end(&self, end: End) {
        self.0.lock().unwrap().get_or_insert(end);
    }

    /// `deliver`'s wait (the core's condvar, here a yielding poll).
    fn wait(&self) -> End {
        loop {
            if let Some(end) = *self.0.lock().unwrap() {
                return end;
            }
            thread::yield_now();
        }
    }
}

/// How the Lua thread answers a decoded 1v0 item.
#[derive(Clone, Copy, PartialEq)]
enum Answering {
    /// `CReply::send`: claims the call, runs the return callback, answers.
    Send,
    /// `CReply`'s `Drop` (the reply userdata collected uncalled): the
    /// return callback as garbage, unclaimed, then the reply drops.
    Collected,
    /// The decoder pushed nothing: no return callback is due; the reply
    /// drops.
    NoneDue,
}

/// A 1v0 blocking delivery run by the Lua thread (`CItem::prepare`, then
/// `CReply`) while a worker's `unreg()` cancels the call and the thread in
/// `deliver` settles (`deliver_blocking`): the decoder runs exactly once;
/// the return callback once when due (on the Lua thread, or as garbage in
/// `deliver`), never when the decoder pushed nothing and the Lua thread
/// ended the call; nothing touches `pData` after `deliver` returned.
fn deliver_races_unreg(answering: Answering) {
    loom::model(move || {
        let turns = Turns::new();
        let data = Arc::new(Lent::new());
        let calls = Arc::new(Calls::default());
        let call = Arc::new(Call(Mutex::new(None)));
        let lua = {
            let (turns, data, calls, call) =
                (turns.clone(), data.clone(), calls.clone(), call.clone());
            thread::spawn(move || {
                let decoder = || {
                    data.touch();
                    calls.decoder.fetch_add(1, Ordering::Relaxed);
                };
                let ret = || {
                    data.touch();
                    calls.ret.fetch_add(1, Ordering::Relaxed);
                };
                let claim = call.0.lock().unwrap();
                if claim.is_some() {
                    // The call ended: the item is cancelled.
                    drop(claim);
                    turns.decode_null(decoder);
                    return;
                }
                turns.decode(decoder).expect("the decoder's turn");
                drop(claim);
                match answering {
                    Answering::Send => {
                        let mut claim = call.0.lock().unwrap();
                        if claim.is_none() {
                            turns.answer(ret).expect("the return callback's turn");
                            *claim = Some(End::Answered);
                        }
                    }
                    Answering::Collected => {
                        turns.answer(ret);
                        call.end(End::Dropped);
                    }
                    Answering::NoneDue => {
                        turns.no_answer();
                        call.end(End::Dropped);
                    }
                }
            })
        };
        let unreg = {
            let call = call.clone();
            thread::spawn(move || call.end(End::Cancelled))
        };
        let end = call.wait();
        let settled = (end != End::Answered).then(|| {
            turns.settle(
                || {
                    data.touch();
                    calls.decoder.fetch_add(1, Ordering::Relaxed);
                },
                || {
                    data.touch();
                    calls.ret.fetch_add(1, Ordering::Relaxed);
                },
            )
        });
        data.free();
        lua.join().unwrap();
        unreg.join().unwrap();
        assert_eq!(calls.decoder.load(Ordering::Relaxed), 1);
        let rets = calls.ret.load(Ordering::Relaxed);
        match settled {
            None => assert_eq!(rets, 1),
            Some(Settled::Cancelled) => assert_eq!(rets, 0),
            Some(Settled::Garbage) => assert_eq!((rets, end), (1, End::Cancelled)),
            Some(Settled::Answered) => {
                assert_eq!(rets, usize::from(answering != Answering::NoneDue))
            }
        }
        if end == End::Dropped {
            assert_eq!(settled, Some(Settled::Answered));
        }
    });
}

#[test]
fn turns_send_races_unreg() {
    deliver_races_unreg(Answering::Send);
}

#[test]
fn turns_collected_reply_races_unreg() {
    deliver_races_unreg(Answering::Collected);
}

#[test]
fn turns_no_answer_races_unreg() {
    deliver_races_unreg(Answering::NoneDue);
}

/// `unreg()` from a worker while the Lua thread runs two items of the
/// utility (`CItem::prepare`: `Running::enter` with the `gone` flag):
/// every callback that starts runs before `unreg()` returns (and the
/// utility frees its context), none after.
#[test]
fn unreg_waits_out_a_running_callback() {
    const H: u64 = 7;
    loom::model(|| {
        let running = Arc::new(Running::default());
        let gone = Arc::new(AtomicBool::new(false));
        let context = Arc::new(Lent::new());
        let lua = {
            let (running, gone, context) = (running.clone(), gone.clone(), context.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    if running.enter(H, &gone) {
                        context.touch();
                        running.leave();
                    }
                }
            })
        };
        running.forbid(&gone);
        running.wait_out(H);
        context.free();
        lua.join().unwrap();
    });
}

/// The same for posts (`Running::enter_live`: the handle table's answer,
/// kept while no `unreg()` of the state happened): the Lua thread runs
/// three posts (another utility's, then two of the utility), while `unreg()` makes
/// the handle stale (the table, modelled by a flag), forbids, and waits.
#[test]
fn unreg_waits_out_a_running_post() {
    const H: u64 = 7;
    const OTHER: u64 = 9;
    loom::model(|| {
        let running = Arc::new(Running::default());
        let gone = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicBool::new(true));
        let context = Arc::new(Lent::new());
        let lua = {
            let (running, live, context) = (running.clone(), live.clone(), context.clone());
            thread::spawn(move || {
                for h in [OTHER, H, H] {
                    let is_live = |h| h == OTHER || live.load(Ordering::SeqCst);
                    if running.enter_if_live(h, is_live) {
                        if h == H {
                            context.touch();
                        }
                        running.leave();
                    }
                }
            })
        };
        live.store(false, Ordering::SeqCst);
        running.forbid(&gone);
        running.wait_out(H);
        context.free();
        lua.join().unwrap();
    });
}
