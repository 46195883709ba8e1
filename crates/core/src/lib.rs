//! The Lua-agnostic core of darksidesync: carries work from any number of
//! threads to one consumer thread, through one bounded FIFO per consumer.
//!
//! * A [`Hub`] is the consumer's end (one per Lua state). It drains items in
//!   batches, waits for work in-process or through a [file descriptor](Hub::fd)
//!   or UDP datagram, and [closes](Hub::close) cleanly.
//! * A [`Port`] is a registered library's `Send + Sync + Clone` handle. It
//!   [posts](Port::post) items (fire-and-forget) and makes blocking
//!   [calls](Port::call) that end with exactly one outcome: a reply, a
//!   handler error, or an explicit [`CallError`].
//! * A [`Reply`] is the consumer's half of a call.
//!
//! # Guarantees
//!
//! * **FIFO** per hub across all its ports.
//! * **Nothing lost silently.** Every accepted item is either drained by the
//!   consumer or discarded by close/unregister, exactly once; a refused post
//!   gives the item back in [`PostError::item`]. A hub made with
//!   [`Hub::with_discard`] tells each discarded item why ([`Discarded`]):
//!   put the "free" or "tell the library" logic there; otherwise the item is
//!   dropped.
//! * **Calls always end**: replied, handler error, cancelled, closed, timed
//!   out, full, unregistered, or would-deadlock on the consumer thread. An
//!   unregister or close ends a pending call wherever its item sits (queue,
//!   the consumer's batch, a reply the consumer still holds).
//! * **Bounded**: at most [`capacity`](Hub::capacity) items are queued;
//!   producers choose to block ([`Port::post`]), wait a while
//!   ([`Port::post_timeout`]) or be refused ([`Port::try_post`]).
//! * **Coalesced wake-ups**: a burst of posts costs one wake-up.
//! * **Stale handles are errors**, never undefined behaviour.
//!
//! Where the time goes: with [`Hub::set_timing`] on, how long each item
//! waited in the queue (post to [`Batch::pop`]) goes into a fixed-bucket
//! [`WaitHistogram`] of the hub and of its port ([`Hub::waits`],
//! [`Port::waits`]); off (the default) it costs a branch per post and take.
//!
//! ```
//! use darksidesync_core::{Batch, CallError, Hub, Reply};
//!
//! enum Job { Add(i64, i64, Reply<i64>) }
//!
//! let hub: Hub<Job> = Hub::new();
//! let port = hub.register("adder", |_| {}).unwrap();
//! let worker = std::thread::spawn(move || port.call(|r| Job::Add(2, 3, r), None));
//!
//! let mut batch = Batch::new();
//! while batch.is_empty() {
//!     hub.wait(None);
//!     hub.drain(usize::MAX, &mut batch);
//! }
//! for job in batch {
//!     match job { Job::Add(a, b, reply) => { let _ = reply.send(a + b); } }
//! }
//! assert_eq!(worker.join().unwrap(), Ok(5));
//!
//! // A call from the consumer thread itself would wait for itself.
//! let port = hub.register("self", |_| {}).unwrap();
//! assert_eq!(port.call(|r| Job::Add(1, 1, r), None), Err(CallError::WouldDeadlock));
//! ```
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod error;
mod hub;
mod port;
mod reply;
pub mod slots;
mod state;
mod stats;
mod sync;
mod waits;
pub mod waker;

pub use error::{CallError, CancelReason, Discarded, PostError, PostErrorKind};
pub use hub::{Batch, Hub};
pub use port::{KeepAlive, Port};
pub use reply::Reply;
pub use slots::{SlotKey, SlotRef, Slots};
pub use state::{PortKey, Posted, DEFAULT_CAPACITY};
pub use stats::{PortStats, Stats};
pub use waits::{WaitHistogram, Waits};
