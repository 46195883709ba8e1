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
use crate::counted::Counted;
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

/// What the item loop does with a batch (`HeldCallback` in `item_loop.rs`):
/// uses each item's key, keeps the first handle and forgets the others,
/// then gives them all up in one `release`.
fn run_batch(batch: Vec<Counted<Key>>) {
    let mut held: Option<(Counted<Key>, usize)> = None;
    for cb in batch {
        cb.get().lent.touch();
        match &mut held {
            Some((_, extra)) => {
                std::mem::forget(cb);
                *extra += 1;
            }
            None => held = Some((cb, 0)),
        }
    }
    if let Some((cb, extra)) = held {
        cb.release(extra);
    }
}

/// A `Callback` cloned into items by two producers while its owner drops
/// it and the Lua thread runs batches: the key is freed exactly once,
/// after every use.
#[test]
fn callback_is_freed_once_after_its_last_use() {
    loom::model(|| {
        let frees = Arc::new(AtomicUsize::new(0));
        let owner = Counted::new(Key {
            lent: Lent::new(),
            frees: frees.clone(),
        });
        let queue = Arc::new(Mutex::new(Vec::new()));
        let producers: Vec<_> = (0..2)
            .map(|_| {
                let cb = owner.clone();
                let queue = queue.clone();
                thread::spawn(move || {
                    cb.get().lent.touch();
                    queue.lock().unwrap().push(cb.clone());
                })
            })
            .collect();
        drop(owner);
        let batch = std::mem::take(&mut *queue.lock().unwrap());
        run_batch(batch);
        for p in producers {
            p.join().unwrap();
        }
        let batch = std::mem::take(&mut *queue.lock().unwrap());
        run_batch(batch);
        assert_eq!(frees.load(Ordering::Relaxed), 1);
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

/// A decoded 1v0 item whose reply the Lua thread answers (or, having
/// decoded nothing, declares no answer due) while the thread in `deliver`,
/// released by a cancellation, settles: the return callback runs at most
/// once (exactly once when due), and before `deliver` returns.
fn answer_races_deliver(answer_due: bool) {
    loom::model(move || {
        let turns = Turns::new();
        let data = Arc::new(Lent::new());
        let calls = Arc::new(Calls::default());
        // Decoded first, under the claim the cancellation waited out.
        turns.decode(|| data.touch()).expect("the decoder's turn");
        let lua = {
            let (turns, data, calls) = (turns.clone(), data.clone(), calls.clone());
            thread::spawn(move || {
                if answer_due {
                    turns.answer(|| {
                        data.touch();
                        calls.ret.fetch_add(1, Ordering::Relaxed);
                    });
                } else {
                    turns.no_answer();
                }
            })
        };
        let settled = turns.settle(
            || unreachable!("the decoder ran"),
            || {
                data.touch();
                calls.ret.fetch_add(1, Ordering::Relaxed);
            },
        );
        data.free();
        lua.join().unwrap();
        let rets = calls.ret.load(Ordering::Relaxed);
        assert_eq!(rets, usize::from(answer_due || settled == Settled::Garbage));
        assert!(settled != Settled::Cancelled);
    });
}

#[test]
fn turns_answer_races_deliver() {
    answer_races_deliver(true);
}

#[test]
fn turns_no_answer_races_deliver() {
    answer_races_deliver(false);
}

/// `unreg()` from a worker while the Lua thread runs two items of the
/// utility: every callback that starts runs before `unreg()` returns (and
/// the utility frees its context), none after.
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
        Running::forbid(&gone);
        running.wait_out(H);
        context.free();
        lua.join().unwrap();
    });
}
