//! What the hub carries: an [`Item`] wraps a [`Task`], the one extension
//! point every kind of producer plugs into.
//!
//! # The contract
//!
//! A task is built on any thread and is `Send`. On the Lua thread the module
//! calls [`Task::prepare`] exactly once, which turns it into a [`Prepared`]:
//! the Lua callback plus its arguments (what DarkSideSync's *decoder*
//! pushed), and for a blocking delivery a [`ReplySink`] (what its *return
//! callback* did). Then:
//!
//! * `poll()` hands callback and arguments to Lua; the sink becomes the
//!   callable reply userdata in `args[1]` (see `reply.rs`).
//! * `dispatch()` calls the callback itself; its return values go to
//!   [`ReplySink::send`], its error text to [`ReplySink::fail`].
//!
//! **[`Task::discard`] is the cancel path.** A task that is never prepared
//! (the state closed, its port was unregistered, a call was refused) is
//! told why, on whatever thread discarded it, with no Lua state at hand:
//! free its data and tell its library there (DarkSideSync's "decoder
//! called with `L == NULL`"). A sink dropped unanswered releases its waiter
//! (the reply userdata was collected uncalled: DSS's `garbage = 1`; or the
//! callback never ran).
//!
//! # Plugging in producers
//!
//! * **A Lua callback with one scalar argument** (the bulk of most
//!   libraries' traffic): [`Item::call`] with a [`Callback`]; no allocation
//!   per item, and the item loop (`run.rs`) pushes and calls these through
//!   the C API directly.
//! * **Rust closures in this crate** (the test library, examples):
//!   [`Item::from_fn`], or a struct implementing [`Task`]; a blocking call
//!   uses a core [`Reply`] as its sink, see [`DataReply`].
//! * **Fire-and-forget deliveries of producers outside the glue** (C
//!   utilities through DSS 1v0 `deliver` and 2v0 `post`, Rust libraries
//!   built as their own cdylib, which reach the module through 2v0): an
//!   inline post (`post.rs`): a static table of the producer's functions,
//!   its code and data words and its owner, carried in the item with no
//!   allocation. The item loop runs it on its own frame: the producer's
//!   code pushes the Lua callback and its arguments, which the loop calls
//!   like any other item.
//! * **Blocking C deliveries** (1v0 `deliver` with a return callback, 2v0
//!   `call`): a [`Task`] holding the utility's callbacks (`capi/item.rs`);
//!   `prepare` calls its decoder or `run` in a fresh frame and collects
//!   what it pushed, and its [`ReplySink`] calls the return or reply
//!   callback (`capi/reply.rs`).
//!
//! Trait objects cannot cross independently compiled Rust libraries, so a
//! Rust library built as its own cdylib talks to this module through the
//! 2v0 C ABI only (function pointers found in the registry), and its
//! closure travels as a 2v0 post whose `run` is a monomorphised trampoline
//! in the library's crate.

use darksidesync_core::{Discarded, Reply};
use mlua::{Function, Lua, MultiValue, RegistryKey, Value};

use crate::counted::Counted;
use crate::data::Data;
use crate::post::Post;
use crate::state::StateHub;

/// One unit of work from a background thread, run on the Lua thread.
///
/// Implementors must be `Send`: they are built and possibly dropped on
/// foreign threads. `prepare` runs on the Lua thread only.
pub trait Task: Send + 'static {
    /// Turns the task into a callback, its arguments and an optional reply
    /// sink. Runs exactly once, on the Lua thread, only if the task is
    /// delivered. An error is reported to the state's error handler; the
    /// task's reply (if any) is then released unanswered.
    fn prepare(self: Box<Self>, lua: &Lua) -> mlua::Result<Prepared>;

    /// The task will not run: the core discarded it (its port was
    /// unregistered, its state closed, or a call was refused before it was
    /// queued), or a producer gave a refused task up. Runs at most once,
    /// on the discarding thread, with no Lua state at hand: free the task's
    /// data and tell its library here. The default drops the task.
    fn discard(self: Box<Self>, why: Discarded) {
        let _ = why;
    }
}

/// A delivered task, ready to run.
pub struct Prepared {
    /// The callback and its arguments; `None` when there is nothing to call
    /// (a DSS decoder that pushed nothing). The callback is not checked to
    /// be a function: calling a non-callable value is the callback's error.
    pub call: Option<(Value, MultiValue)>,
    /// Present for a blocking delivery.
    pub reply: Option<Box<dyn ReplySink>>,
}

/// The answer path of a blocking delivery, used on the Lua thread only.
///
/// Dropping it unanswered must release the waiting thread ("garbage").
pub trait ReplySink: 'static {
    /// Hands the callback's results (or the reply userdata's call
    /// arguments) to the waiter. The values returned go back to the Lua
    /// code that called the reply userdata (DSS: what the return callback
    /// pushed).
    fn send(self: Box<Self>, lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue>;

    /// Answers with the callback's error text.
    fn fail(self: Box<Self>, lua: &Lua, message: String);
}

/// What the hub queues: a boxed [`Task`], or the common case of a Lua
/// callback with one scalar argument carried inline (see [`Item::call`]).
pub struct Item(Repr);

enum Repr {
    Task(Box<dyn Task>),
    /// `callback(arg)`, fire-and-forget: no allocation per item, and
    /// `dispatch()` runs a run of these straight through the C API.
    Call(Callback, Data),
    /// An inline post (see `post.rs`): no allocation per item, and the
    /// item loop and `poll()` run it on their own frame.
    Post(Post),
}

/// A Lua function kept for background threads: `Send + Sync`, cheap to
/// clone, created on the Lua thread from a function of that state. Items
/// made with [`Item::call`] refer to it; the function stays referenced (in
/// the registry) until the last clone and the last such item are gone.
///
/// Reference-counted by hand (`counted.rs`) rather than an `Arc`, only so
/// that `dispatch()` can release the references of a run of items with one
/// atomic operation (`counted::Held`) instead of one per item: the
/// count's cache line is written by the producer for every post, and a
/// per-item decrement on the consumer made it bounce between the two cores
/// (~10% of the `dispatch()` profile).
#[derive(Clone)]
pub struct Callback(Counted<RegistryKey>);

impl Callback {
    /// Keeps `f` for use from other threads.
    pub fn new(lua: &Lua, f: Function) -> mlua::Result<Callback> {
        Ok(Callback(Counted::new(lua.create_registry_value(f)?)))
    }

    /// The registry slot, valid in the owning state only.
    pub(crate) fn key(&self) -> &RegistryKey {
        self.0.get()
    }

    /// Identity of the shared key, to skip repeated ownership checks.
    pub(crate) fn id(&self) -> *const RegistryKey {
        self.0.get()
    }

    /// The counted handle (for the item loop's [`Held`](crate::counted::Held)).
    pub(crate) fn into_counted(self) -> Counted<RegistryKey> {
        self.0
    }
}

impl Item {
    /// Wraps a task.
    pub fn new(task: impl Task) -> Item {
        Item(Repr::Task(Box::new(task)))
    }

    /// `callback(arg)` on the Lua thread, fire-and-forget. The cheapest
    /// item: nothing is allocated per item, the argument is converted on
    /// the Lua thread without intermediate values, and `dispatch()` calls a
    /// run of such items through one protected frame. A callback from
    /// another Lua state is reported to the error handler, never called.
    pub fn call(callback: &Callback, arg: Data) -> Item {
        Item(Repr::Call(callback.clone(), arg))
    }

    /// A task from a closure; dropping the item undelivered drops the
    /// closure (and what it captured) on the dropping thread.
    pub fn from_fn<F>(f: F) -> Item
    where
        F: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
    {
        Item::new(FnTask(f))
    }

    /// Gives up an item that will not run, telling its task why (see
    /// [`Task::discard`]). The hub's discard path.
    pub fn discard(self, why: Discarded) {
        match self.0 {
            Repr::Task(task) => task.discard(why),
            Repr::Call(..) => {}
            Repr::Post(post) => post.discard(why),
        }
    }

    /// Prepares the task (on `st`'s Lua thread only).
    pub(crate) fn prepare(self, lua: &Lua, st: &StateHub) -> mlua::Result<Prepared> {
        match self.0 {
            Repr::Task(task) => task.prepare(lua),
            Repr::Call(callback, arg) => {
                let f: Value = lua.registry_value(callback.key())?;
                Ok(Prepared {
                    call: Some((f, MultiValue::from_iter([arg.to_lua(lua)?]))),
                    reply: None,
                })
            }
            Repr::Post(post) => post.prepare(lua, st),
        }
    }

    /// An inline post.
    pub(crate) fn post(post: Post) -> Item {
        Item(Repr::Post(post))
    }

    /// Whether this is an inline post.
    pub(crate) fn is_post(&self) -> bool {
        matches!(self.0, Repr::Post(_))
    }

    /// Takes apart an inline post.
    pub(crate) fn into_post(self) -> Option<Post> {
        match self.0 {
            Repr::Post(post) => Some(post),
            _ => None,
        }
    }

    /// Takes apart an [`Item::call`] item.
    pub(crate) fn into_call(self) -> Option<(Callback, Data)> {
        match self.0 {
            Repr::Call(cb, arg) => Some((cb, arg)),
            Repr::Task(_) | Repr::Post(_) => None,
        }
    }

    /// The callback and scalar argument of an [`Item::call`] item whose
    /// argument can be pushed without allocating in Lua (not a string).
    pub(crate) fn as_scalar_call(&self) -> Option<(&Callback, &Data)> {
        match &self.0 {
            Repr::Call(cb, arg) if !matches!(arg, Data::String(_)) => Some((cb, arg)),
            _ => None,
        }
    }
}

struct FnTask<F>(F);

impl<F> Task for FnTask<F>
where
    F: FnOnce(&Lua) -> mlua::Result<Prepared> + Send + 'static,
{
    fn prepare(self: Box<Self>, lua: &Lua) -> mlua::Result<Prepared> {
        (self.0)(lua)
    }
}

/// A core [`Reply`] carrying [`Data`] values, as a [`ReplySink`]: the reply
/// of a Rust producer's `Port::call`.
pub struct DataReply(pub Reply<Vec<Data>>);

impl ReplySink for DataReply {
    fn send(self: Box<Self>, _lua: &Lua, values: MultiValue) -> mlua::Result<MultiValue> {
        // A caller that already timed out gets nothing; that is not an error.
        let _ = self.0.send(Data::from_multi(&values));
        Ok(MultiValue::new())
    }

    fn fail(self: Box<Self>, _lua: &Lua, message: String) {
        let _ = self.0.fail(message);
    }
}
