//! A task: one future on the Lua thread, as Lua userdata, so that it
//! lives as long as whoever waits for it (the calling coroutine's stack,
//! a scheduler holding that coroutine, or this state's table of detached
//! tasks) and is dropped on the Lua thread when they let go of it.
//!
//! Invariants: the future is polled only on the Lua thread, through its
//! waker's queued post or the first poll in `start`; it is dropped at most
//! once, when it finished, was cancelled, or its userdata is collected
//! (also by `lua_close`, which runs no Lua for it). A pending task holds a
//! keep-alive reference ([`Hold`]) so `run()` waits for it.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use mlua::{AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, Table, UserData, Value};

use super::waker::TaskWaker;
use crate::error::{panic_text, LuaError};
use crate::handle::Dss;
use crate::keep_alive::Hold;

/// A future as this crate keeps it: its results already Lua values.
pub(crate) type LocalFuture = Pin<Box<dyn Future<Output = mlua::Result<MultiValue>>>>;

/// Task ids, unique in the process (a stale wake finds nothing).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where this copy of the crate keeps a state's tasks: a weak-valued
/// table (id -> task) the wakes look tasks up in, and a strong one that
/// holds detached tasks ([`Dss::spawn_local`]) until they finish.
fn table_names() -> &'static (String, String) {
    static COPY: u8 = 0;
    static NAMES: OnceLock<(String, String)> = OnceLock::new();
    NAMES.get_or_init(|| {
        let at = &COPY as *const u8 as usize;
        (
            format!("darksidesync-binding.tasks.{at:x}"),
            format!("darksidesync-binding.detached.{at:x}"),
        )
    })
}

fn tables(lua: &Lua) -> mlua::Result<(Table, Table)> {
    let (weak, strong) = table_names();
    if let Value::Table(w) = lua.named_registry_value::<Value>(weak)? {
        return Ok((w, lua.named_registry_value(strong)?));
    }
    let w = lua.create_table()?;
    let mode = lua.create_table()?;
    mode.raw_set("__mode", "v")?;
    w.set_metatable(Some(mode))?;
    let s = lua.create_table()?;
    lua.set_named_registry_value(weak, &w)?;
    lua.set_named_registry_value(strong, &s)?;
    Ok((w, s))
}

enum Outcome {
    Pending,
    Ready(mlua::Result<MultiValue>),
    Taken,
}

pub(crate) struct Task {
    waker: Arc<TaskWaker>,
    std_waker: Waker,
    future: RefCell<Option<LocalFuture>>,
    outcome: RefCell<Outcome>,
    hold: RefCell<Option<Hold>>,
}

/// Drops a future; a panic in its destructors stays here.
fn drop_quietly(f: Option<LocalFuture>) {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(f)));
}

impl Drop for Task {
    fn drop(&mut self) {
        drop_quietly(self.future.get_mut().take());
    }
}

impl Task {
    fn new(dss: &Dss, future: LocalFuture) -> Task {
        let waker = TaskWaker::new(dss.clone(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        Task {
            std_waker: Waker::from(waker.clone()),
            waker,
            future: RefCell::new(Some(future)),
            outcome: RefCell::new(Outcome::Pending),
            hold: RefCell::new(None),
        }
    }

    /// Polls the future once, in the reactor's context; `Some` when it
    /// finished (then it is dropped), a panic included.
    fn poll(&self) -> Option<mlua::Result<MultiValue>> {
        let Ok(mut slot) = self.future.try_borrow_mut() else {
            // Polled from inside its own poll (its Lua code dispatched):
            // again from the loop, later.
            self.std_waker.wake_by_ref();
            return None;
        };
        let fut = slot.as_mut()?;
        let mut cx = Context::from_waker(&self.std_waker);
        let polled = {
            let _reactor = super::reactor::enter();
            catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)))
        };
        let out = match polled {
            Ok(Poll::Pending) => return None,
            Ok(Poll::Ready(out)) => out,
            Err(p) => Err(mlua::Error::runtime(format!(
                "panic in a future: {}",
                panic_text(p)
            ))),
        };
        let fut = slot.take();
        drop(slot);
        drop_quietly(fut);
        Some(out)
    }

    fn settled(&self) -> bool {
        !matches!(*self.outcome.borrow(), Outcome::Pending)
    }

    /// Ends a pending task: drops its future and its keep-alive.
    fn end(&self, out: mlua::Result<MultiValue>) -> bool {
        if self.settled() {
            return false;
        }
        drop_quietly(self.future.borrow_mut().take());
        *self.outcome.borrow_mut() = Outcome::Ready(out);
        self.hold.borrow_mut().take();
        true
    }
}

impl UserData for Task {
    fn add_methods<M: mlua::UserDataMethods<Self>>(m: &mut M) {
        m.add_method("settled", |_, this, ()| Ok(this.settled()));
        m.add_method("live", |_, this, ()| Ok(this.waker.dss().is_live()));
        m.add_method("take", |lua, this, ()| {
            let taken = std::mem::replace(&mut *this.outcome.borrow_mut(), Outcome::Taken);
            match taken {
                Outcome::Ready(Ok(values)) => {
                    let mut values = values;
                    values.push_front(Value::Boolean(true));
                    Ok(values)
                }
                Outcome::Ready(Err(e)) => (false, error_parts(&e)).into_lua_multi(lua),
                Outcome::Pending => {
                    *this.outcome.borrow_mut() = Outcome::Pending;
                    (false, "the future has not finished").into_lua_multi(lua)
                }
                Outcome::Taken => (false, "the future's results were taken").into_lua_multi(lua),
            }
        });
        m.add_function("cancel", |lua, ud: AnyUserData| {
            let ended = ud
                .borrow::<Task>()?
                .end(Err(mlua::Error::runtime("cancelled")));
            if ended {
                forget(lua, &ud)?;
            }
            Ok(())
        });
        m.add_function("on_settle", |_, (ud, f): (AnyUserData, Function)| {
            ud.set_user_value(f)
        });
    }
}

/// An error as the wrapper raises it: the message and the traceback of
/// the Lua code that raised it inside the future, if any.
fn error_parts(e: &mlua::Error) -> (String, Option<String>) {
    let e = LuaError::from_mlua(e);
    (e.message().to_string(), e.traceback().map(str::to_string))
}

/// Takes a finished task out of the state's tables.
fn forget(lua: &Lua, ud: &AnyUserData) -> mlua::Result<()> {
    let id = ud.borrow::<Task>()?.waker.id();
    let (weak, strong) = tables(lua)?;
    weak.raw_set(id, Value::Nil)?;
    strong.raw_set(id, Value::Nil)
}

/// A new task for `future`, polled once here: its results at once
/// (`true, results...`), its error at once (`false, false, message,
/// traceback`), or `false, task` while it is pending.
pub(crate) fn start(lua: &Lua, dss: &Dss, future: LocalFuture) -> mlua::Result<MultiValue> {
    let task = Task::new(dss, future);
    match task.poll() {
        Some(Ok(mut values)) => {
            values.push_front(Value::Boolean(true));
            return Ok(values);
        }
        Some(Err(e)) => return (false, false, error_parts(&e)).into_lua_multi(lua),
        None => {}
    }
    *task.hold.borrow_mut() = Some(dss.hold().map_err(mlua::Error::external)?);
    let id = task.waker.id();
    let ud = lua.create_userdata(task)?;
    tables(lua)?.0.raw_set(id, &ud)?;
    (false, ud).into_lua_multi(lua)
}

/// A detached task: held by the state until it finished, first polled
/// from the loop.
pub(crate) fn spawn(lua: &Lua, dss: &Dss, future: LocalFuture) -> mlua::Result<()> {
    let task = Task::new(dss, future);
    *task.hold.borrow_mut() = Some(dss.hold().map_err(mlua::Error::external)?);
    let id = task.waker.id();
    let first = task.std_waker.clone();
    let ud = lua.create_userdata(task)?;
    let (weak, strong) = tables(lua)?;
    weak.raw_set(id, &ud)?;
    strong.raw_set(id, &ud)?;
    first.wake();
    Ok(())
}

/// The queued poll of a wake, on the Lua thread. A task collected or
/// finished meanwhile is not found: nothing to do.
pub(crate) fn poll_queued(lua: &Lua, waker: &Arc<TaskWaker>) -> mlua::Result<()> {
    waker.begin_poll();
    let (weak, strong) = tables(lua)?;
    let Value::UserData(ud) = weak.raw_get::<Value>(waker.id())? else {
        return Ok(());
    };
    let detached = strong.raw_get::<Value>(waker.id())? != Value::Nil;
    let out = {
        let Ok(task) = ud.borrow::<Task>() else {
            return Ok(());
        };
        match task.poll() {
            None => return Ok(()),
            Some(out) => out,
        }
    };
    if detached {
        // Nobody waits: an error goes to the state's error handler.
        let ended = ud.borrow::<Task>()?.end(Ok(MultiValue::new()));
        if ended {
            forget(lua, &ud)?;
        }
        return out.map(drop);
    }
    if !ud.borrow::<Task>()?.end(out) {
        return Ok(());
    }
    forget(lua, &ud)?;
    match ud.user_value::<Value>()? {
        Value::Function(notify) => notify.call::<()>(()),
        _ => Ok(()),
    }
}

/// Boxes a binding author's future with its results converted.
pub(crate) fn boxed<FR, R>(lua: &Lua, fut: FR) -> LocalFuture
where
    FR: Future<Output = mlua::Result<R>> + 'static,
    R: IntoLuaMulti,
{
    // Weak: an owned `Lua` must not be kept open by its own tasks.
    let lua = lua.weak();
    Box::pin(async move {
        let values = fut.await?;
        match lua.try_upgrade() {
            Some(lua) => values.into_lua_multi(&lua),
            None => Err(mlua::Error::runtime("the Lua state has closed")),
        }
    })
}
