//! One hub per Lua state: created on first use, found again through mlua's
//! app data, closed when the state closes.
//!
//! The state's close path is [`StateHub::close_in`]: it closes the hub
//! (queued items are dropped, their blocked callers get `Closed`, every
//! port's cancel notification fires), then drops the items still waiting
//! in the local batch, then runs the C utilities' finalizers with the
//! state. It runs from the closing flag's `on_close` hook (`prelude.lua`),
//! while `lua_close` runs finalisers and the state is still whole; the
//! drop of [`StateHub`] (mlua's app data: inside `lua_close` for the
//! module, after it in a Rust host) only repeats what is left, without
//! the state.

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use darksidesync_core::{Batch, CancelReason, Hub, Port, PostErrorKind, DEFAULT_CAPACITY};
use mlua::{ffi, Function, Lua, Table};

use crate::item::{Item, ReplySink};
use crate::post::RanCounter;

/// Most items `poll()` moves from the hub to the local batch at once.
pub(crate) const POLL_BATCH: usize = 256;

/// The Lua helpers compiled once per state from `prelude.lua`.
pub(crate) struct Helpers {
    /// `xpcall(f, handler, ...)`, with arguments even on PUC Lua 5.1.
    pub(crate) xpcall: Function,
    /// The default error handler (writes a traceback to stderr).
    pub(crate) default_handler: Function,
    /// The message handler for blocking deliveries: `tostring(err)`.
    pub(crate) reply_handler: Function,
    /// Builds the module table from the raw functions.
    pub(crate) wrap: Function,
    /// Wraps a function with the closing check.
    pub(crate) guard: Function,
    /// `spawn_item(spawn, errorhandler, reply, callback, args...)`: one
    /// item of `dispatch(max, spawn)`, its handler handed to `spawn`.
    pub(crate) spawn_item: Function,
    /// `coroutine_reply(raw_reply)`: the module's `reply()`.
    pub(crate) coroutine_reply: Function,
    /// `closing[1]` is true once `lua_close` runs finalisers.
    pub(crate) closing: Table,
}

/// Everything darksidesync keeps per Lua state.
pub struct StateHub {
    /// The consumer end of the state's FIFO.
    pub(crate) hub: Hub<Item>,
    /// Items drained from the hub but not yet run, oldest first. `poll`
    /// and `dispatch` both take from here before draining more, so FIFO
    /// holds across both. `dispatch` runs all it drained before returning;
    /// `poll` drains a slice but always leaves one item in the hub (see
    /// [`StateHub::next_item`]).
    pub(crate) batch: RefCell<Batch<Item>>,
    /// The error handler set by `seterrorhandler`; `None` is the default.
    pub(crate) error_handler: RefCell<Option<Function>>,
    /// Bumped by every `seterrorhandler`, so that the item loop, which
    /// keeps the handler on its frame, sees a change made by a callback.
    pub(crate) handler_set: Cell<u64>,
    /// The reply sink of the blocking call whose callback `dispatch()` is
    /// running now, until `reply()` takes it.
    pub(crate) current_reply: RefCell<Option<Box<dyn ReplySink>>>,
    /// How many dispatched callbacks are running now (nesting depth).
    pub(crate) in_callback: Cell<u32>,
    /// True while `run()` is looping.
    pub(crate) running: Cell<bool>,
    /// Set by `stop()`; read and cleared by `run()`.
    pub(crate) stop_requested: Cell<bool>,
    /// How many items the hub held beyond the slice the last
    /// [`refill`](StateHub::refill) took. Only this thread drains, so the
    /// hub holds that many until the next drain (bar an unregister, which
    /// removes a port's items); `dispatch()`'s drains reset it. `poll()` counts
    /// with it instead of taking the hub's lock per item (see
    /// [`StateHub::pending_hint`]).
    pub(crate) hub_left: Cell<usize>,
    /// Items drained into the batch and then discarded unrun because their
    /// library unregistered: the hub counted them delivered, `stats()`
    /// reports them cancelled.
    pub(crate) purged: Cell<u64>,
    /// Where the inline posts this state runs are counted as ran.
    pub(crate) ran: RanCounter,
    /// What the producer layer keeps for this state (the C ABI's running
    /// mark and finalizers, [`crate::Producers`]): here so that its posts
    /// reach it without a lookup per item; the glue only tells it when the
    /// state purges and closes.
    pub(crate) producers: Arc<crate::Producers>,
    pub(crate) helpers: Helpers,
}

impl StateHub {
    /// The state's hub, created on first use. Binds the calling thread as
    /// the hub's consumer: a host may drive one state from different
    /// threads over its life, and the would-deadlock check must follow.
    pub fn get(lua: &Lua) -> mlua::Result<Rc<StateHub>> {
        if let Some(st) = lua.app_data_ref::<Rc<StateHub>>() {
            st.hub.bind_consumer();
            return Ok(Rc::clone(&st));
        }
        let st = Rc::new(StateHub::new(lua)?);
        lua.set_app_data(Rc::clone(&st));
        let cell = crate::raw::new_pointer_cell(lua, Rc::as_ptr(&st).cast())?;
        // SAFETY: close_on_hook reads exactly this upvalue, a pointer cell.
        let hook = unsafe { crate::raw::c_closure(lua, close_on_hook, cell) }?;
        st.helpers
            .closing
            .get::<Table>("on_close")?
            .raw_push(hook)?;
        Ok(st)
    }

    /// Closes the state's side (see the module docs); `state`, while
    /// `lua_close` runs finalisers, lets the C finalizers run. Idempotent.
    fn close_in(&self, state: Option<*mut ffi::lua_State>) {
        // Close first so that the items still in the batch release their
        // callers with `Closed`, not `Cancelled`.
        self.hub.close();
        if let Ok(mut batch) = self.batch.try_borrow_mut() {
            self.hub.discard_batch(&mut batch);
        }
        // Last: every C utility's items are gone and its cancel ran.
        self.producers.closing(state);
    }

    fn new(lua: &Lua) -> mlua::Result<StateHub> {
        let (prelude, missing): (Option<Table>, Option<String>) = lua
            .load(include_str!("prelude.lua"))
            .set_name("=darksidesync.prelude")
            .call(())?;
        let Some(prelude) = prelude else {
            return Err(mlua::Error::runtime(missing.unwrap_or_default()));
        };
        let helpers = Helpers {
            xpcall: prelude.get("xpcall")?,
            default_handler: prelude.get("default_handler")?,
            reply_handler: prelude.get("reply_handler")?,
            wrap: prelude.get("wrap")?,
            guard: prelude.get("guard")?,
            spawn_item: prelude.get("spawn_item")?,
            coroutine_reply: prelude.get("coroutine_reply")?,
            closing: prelude.get("closing")?,
        };
        crate::reply::register_metatable(lua, &helpers.guard)?;
        // Read by darksidesync-binding's async functions (see prelude.lua).
        lua.set_named_registry_value("darksidesync.drivers", prelude.get::<Table>("drivers")?)?;
        prelude
            .get::<Function>("set_reply_fail")?
            .call::<()>(crate::reply::make_fail(lua)?)?;
        Ok(StateHub {
            hub: Hub::with_discard(DEFAULT_CAPACITY, Item::discard),
            batch: RefCell::new(Batch::new()),
            error_handler: RefCell::new(None),
            handler_set: Cell::new(0),
            current_reply: RefCell::new(None),
            in_callback: Cell::new(0),
            running: Cell::new(false),
            stop_requested: Cell::new(false),
            hub_left: Cell::new(0),
            purged: Cell::new(0),
            ran: RanCounter::default(),
            producers: Arc::default(),
            helpers,
        })
    }

    /// Registers a library with this state's hub and returns its port, the
    /// `Send + Sync + Clone` handle its threads post and call through.
    /// `on_cancel` runs once when the state closes or the port is
    /// unregistered.
    pub fn register(
        &self,
        name: impl Into<String>,
        on_cancel: impl FnOnce(CancelReason) + Send + 'static,
    ) -> Result<Port<Item>, PostErrorKind> {
        self.hub.register(name, on_cancel)
    }

    /// Items queued: those drained but not run, plus the hub's.
    pub(crate) fn pending(&self) -> usize {
        self.batch_len() + self.hub.len()
    }

    /// Items in the local batch, after purging those of libraries
    /// unregistered since they were drained.
    pub(crate) fn batch_len(&self) -> usize {
        let mut batch = self.batch.borrow_mut();
        self.purge_stale(&mut batch);
        batch.len()
    }

    /// Takes the oldest item. When the local batch is empty it drains a
    /// slice of the hub, up to [`POLL_BATCH`] items but never the last
    /// one: while drained items wait in the batch the hub still holds
    /// work, so the descriptor keeps reporting it (it is readable exactly
    /// while the hub is non-empty). One lock and at most one wake-up of a
    /// producer blocked on a full queue then serve a slice of `poll()`
    /// calls instead of each one.
    pub(crate) fn next_item(&self) -> Option<Item> {
        let mut batch = self.batch.borrow_mut();
        if batch.is_empty() {
            self.refill(&mut batch);
        }
        self.purge_stale(&mut batch);
        batch.pop()
    }

    /// Discards the batch's items of libraries unregistered since they were
    /// drained (they never run), counting them for `stats()`.
    pub(crate) fn purge_stale(&self, batch: &mut Batch<Item>) {
        self.producers.purged();
        let before = batch.len();
        self.hub.purge_stale(batch);
        let gone = before - batch.len();
        if gone > 0 {
            self.purged.set(self.purged.get() + gone as u64);
        }
    }

    /// Drains the slice [`next_item`](StateHub::next_item) describes into
    /// the (empty) batch.
    pub(crate) fn refill(&self, batch: &mut Batch<Item>) {
        // Only this thread drains, so the hub cannot shrink in between.
        let queued = self.hub.len();
        let took = self
            .hub
            .drain(queued.saturating_sub(1).clamp(1, POLL_BATCH), batch);
        self.hub_left.set(queued.saturating_sub(took));
    }

    /// [`pending`](StateHub::pending) without the hub's lock while the
    /// batch holds items: the batch plus what the hub held beyond it at the
    /// last refill. It misses items posted since that refill (they are
    /// counted once the batch is used up, at the next refill) and still
    /// counts items of a port unregistered since; a zero is always
    /// confirmed under the hub's lock. DarkSideSync's count was as racy:
    /// items could arrive or be cancelled right after it was read.
    pub(crate) fn pending_hint(&self, batch_len: usize) -> usize {
        match batch_len + self.hub_left.get() {
            0 => self.hub.len(),
            n => n,
        }
    }

    /// Raises when called from inside a dispatched callback: `what` would
    /// block the state or break FIFO order.
    pub(crate) fn forbid_in_callback(&self, what: &str) -> Result<(), String> {
        if self.in_callback.get() > 0 {
            return Err(format!(
                "darksidesync.{what}: cannot be called from inside a dispatched callback"
            ));
        }
        Ok(())
    }
}

impl Drop for StateHub {
    fn drop(&mut self) {
        // Normally done by the hook already; in a Rust host this may run
        // after lua_close, without a state.
        self.close_in(None);
    }
}

/// The closing flag's `on_close` hook: closes the state's side while
/// `lua_close` runs finalisers (upvalue 1: a cell with the `StateHub`).
unsafe extern "C-unwind" fn close_on_hook(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: upvalue 1 is the cell made in StateHub::get. Its pointer is
    // valid: mlua's app data holds the Rc until its own finaliser, which
    // runs after this one (the flag's guard is newer), or after lua_close.
    let st = unsafe { crate::raw::cell_pointer(state, crate::raw::upvalue(1)) }.cast::<StateHub>();
    if st.is_null() {
        return 0;
    }
    // SAFETY: as above; cleared so that it runs once.
    unsafe { crate::raw::clear_cell(state, crate::raw::upvalue(1)) };
    // SAFETY: as above. A panic stays here (no unwinding into Lua).
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { &*st }.close_in(Some(state))));
    0
}
