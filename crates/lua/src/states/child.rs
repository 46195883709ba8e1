//! Starting a state on its own thread ([`spawn`]), waiting for its end
//! ([`Child::join`]) and stopping it when its parent closes ([`stop_all`]).
//!
//! The new state is made with the C API of the interpreter this module was
//! loaded into (mlua's `Lua::unsafe_new`, which calls `lua_newstate` /
//! `luaL_newstate` through the same symbols the module uses), is used by
//! its thread only, and is closed on that thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use darksidesync_core::{KeepAlive, Port};
use mlua::{Function, Lua, MultiValue, Table, Value};

use super::interrupt::Interrupt;
use super::node::{self, Node, ParentLink};
use super::portable::Portable;
use crate::item::{Item, Prepared};

/// How long a new state may take to come up; creating one takes
/// microseconds, this only bounds a broken system.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// How long a closing parent waits for its stopped children before it
/// leaves the rest running on their own (a child stuck in a C call cannot
/// be interrupted).
pub(crate) const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// Threads of spawned states still running, process-wide.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// How many spawned states' threads are running now.
pub(crate) fn running() -> usize {
    RUNNING.load(Ordering::SeqCst)
}

/// Set up every new state further (the embedded host preloads its
/// libraries with it).
static INITIALIZER: OnceLock<fn(&Lua) -> mlua::Result<()>> = OnceLock::new();

/// Registers `init` to run on every state started by `darksidesync.states`
/// before its chunk, after darksidesync's own preloads. Only the first
/// registration counts; returns false for a later one.
pub fn set_initializer(init: fn(&Lua) -> mlua::Result<()>) -> bool {
    INITIALIZER.set(init).is_ok()
}

/// How a child's chunk ended: its return values, or its error with traceback.
pub(crate) type Outcome = Result<Vec<Portable>, String>;

/// The outcome slot the child's thread fills once.
#[derive(Default)]
struct Exit {
    outcome: Mutex<Option<Outcome>>,
    ended: Condvar,
}

impl Exit {
    fn set(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.ended.notify_all();
    }

    /// The outcome, waiting for it until `deadline` (`None`: forever).
    fn wait(&self, deadline: Option<Instant>) -> Option<Outcome> {
        let mut slot = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(outcome) = slot.as_ref() {
                return Some(outcome.clone());
            }
            slot = match deadline {
                None => self.ended.wait(slot).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.ended
                        .wait_timeout(slot, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    fn is_set(&self) -> bool {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// A started state as its parent sees it.
pub(crate) struct Child {
    pub(crate) id: u64,
    /// The child's port: the parent's messages go there.
    pub(crate) port: Port<Item>,
    interrupt: Arc<Interrupt>,
    exit: Arc<Exit>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The parent's keep-alive reference on the child's hub: while held, a
    /// child in `darksidesync.run()` keeps waiting for messages.
    link: Mutex<Option<KeepAlive<Item>>>,
}

impl Child {
    /// The chunk's outcome, waiting at most `timeout` (`None`: no limit);
    /// `None` on timeout. The thread is joined if it has finished; after
    /// the outcome it only queues the exit notification, which may wait
    /// for room in this (the joining) state's queue, so it is not waited for.
    pub(crate) fn join(&self, timeout: Option<Duration>) -> Option<Outcome> {
        let outcome = self.exit.wait(timeout.map(|t| Instant::now() + t))?;
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if thread.as_ref().is_some_and(|t| t.is_finished()) {
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
        Some(outcome)
    }

    /// Joins the thread once it has filled the outcome. Only for a closing
    /// parent: its port no longer takes the exit notification, so the
    /// thread just closes up.
    fn reap(&self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Drops the parent's keep-alive reference; true when it was held.
    pub(crate) fn release_link(&self) -> bool {
        let keep = self.link.lock().unwrap_or_else(|p| p.into_inner()).take();
        keep.is_some() // released here, outside the lock
    }

    /// Asks the child to stop: its Lua code raises an error (see
    /// `interrupt.rs`), and a `darksidesync.run()` it is blocked in returns.
    fn request_stop(&self) {
        self.interrupt.fire();
        self.release_link();
        // Runs no Lua code (the stop hook may be set by now): it only ends
        // the child's run() as darksidesync.stop() does.
        let _ = self.port.try_post(Item::from_fn(|lua| {
            crate::state::StateHub::get(lua)?.stop_requested.set(true);
            Ok(Prepared {
                call: None,
                reply: None,
            })
        }));
    }
}

/// The close path of a parent: stops every child, waits up to
/// [`STOP_PATIENCE`] for all of them together, and joins those that ended.
pub(crate) fn stop_all(children: Vec<Arc<Child>>) {
    for c in &children {
        if !c.exit.is_set() {
            c.request_stop();
        }
    }
    let deadline = Instant::now() + STOP_PATIENCE;
    for c in &children {
        if c.exit.wait(Some(deadline)).is_some() {
            c.reap();
        }
        // Otherwise the thread is left to end on its own: its state
        // shares nothing with this one, and its posts here fail "closed".
    }
}

/// A chunk to run in a new state.
pub(crate) struct Script {
    pub(crate) source: Vec<u8>,
    /// `=name` or `@path`.
    pub(crate) chunkname: String,
}

/// What the child's thread needs.
struct Start {
    id: u64,
    script: Script,
    args: Vec<Portable>,
    parent: ParentLink,
    interrupt: Arc<Interrupt>,
}

// `mlua::String` is not `Send`; the paths travel as bytes.
struct Paths {
    path: Option<Vec<u8>>,
    cpath: Option<Vec<u8>>,
}

type Started = Result<(Port<Item>, KeepAlive<Item>), String>;

/// Starts `script` with `args` in a new state on its own thread, as a child
/// of `node`'s state, with the same `package.path` and `package.cpath`.
pub(crate) fn spawn(
    lua: &Lua,
    node: &Node,
    script: Script,
    args: Vec<Portable>,
) -> Result<Arc<Child>, String> {
    let package: Option<Table> = lua.globals().get("package").ok();
    let get = |k: &str| -> Option<Vec<u8>> {
        package
            .as_ref()
            .and_then(|p| p.get::<Option<mlua::String>>(k).ok().flatten())
            .map(|s| s.as_bytes().to_vec())
    };
    let paths = Paths {
        path: get("path"),
        cpath: get("cpath"),
    };
    let parent_keep = node
        .port
        .keep_alive()
        .map_err(|e| format!("the spawning state is closing ({e})"))?;
    let id = node::next_id();
    let interrupt = Arc::new(Interrupt::default());
    let exit = Arc::new(Exit::default());
    let start = Start {
        id,
        script,
        args,
        parent: ParentLink {
            id: node.id,
            port: node.port.clone(),
        },
        interrupt: Arc::clone(&interrupt),
    };
    let (tx, rx) = mpsc::sync_channel::<Started>(1);
    let thread_exit = Arc::clone(&exit);
    let parent_port = node.port.clone();
    RUNNING.fetch_add(1, Ordering::SeqCst);
    let thread = std::thread::Builder::new()
        .name(format!("darksidesync-state-{id}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_child(start, paths, tx)
            }))
            .unwrap_or_else(|_| Err("the state's thread panicked".into()));
            thread_exit.set(outcome.clone());
            let _ = parent_port.post(node::exited(id, outcome));
            drop(parent_keep); // after the exit is queued: a parent in run() sees it
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        })
        .map_err(|e| {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            format!("cannot start a thread: {e}")
        })?;
    let (port, keep) = match rx.recv_timeout(START_PATIENCE) {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(format!("the new state failed to start: {e}"));
        }
        Err(_) => return Err("the new state did not start".into()),
    };
    let child = Arc::new(Child {
        id,
        port,
        interrupt,
        exit,
        thread: Mutex::new(Some(thread)),
        link: Mutex::new(Some(keep)),
    });
    let mut children = node.children.borrow_mut();
    children.retain(|c| !c.exit.is_set()); // ended ones need no stopping
    children.push(Arc::clone(&child));
    Ok(child)
}

/// Runs a chunk with its arguments under a traceback handler. The frames
/// from the outermost `xpcall` down are this runner's, not the user's:
/// they are cut (LuaJIT shows `xpcall` as `[builtin#N]`).
const RUNNER: &str = r#"
local xpcall, tostring, type = xpcall, tostring, type
local traceback = debug and debug.traceback
local unpack = table.unpack or unpack
local function handler(e)
  if type(e) ~= "string" then e = tostring(e) end
  if not traceback then return e end
  local text = traceback(e, 2)
  local cut
  for pos, line in text:gmatch("()\n([^\n]*)") do
    if line:find("in function 'xpcall'", 1, true) or line:find("^%s*%[builtin#%d+%]") then
      cut = pos
    end
  end
  if cut then
    text = text:sub(1, cut - 1):gsub("\n%s*%(%.%.%.tail calls%.%.%.%)$", "")
  end
  return text
end
return function(f, args)
  return xpcall(function() return f(unpack(args, 1, args.n)) end, handler)
end
"#;

/// The child's thread: makes the state, reports it started, runs the chunk.
fn run_child(start: Start, paths: Paths, tx: mpsc::SyncSender<Started>) -> Outcome {
    // SAFETY: `unsafe_new` is `Lua::new` plus the `debug` library and C
    // modules, which a state of the stock interpreter has too (tracebacks
    // and `package.cpath` need them). The state is created, used and closed
    // on this thread only, as LuaJIT requires.
    let lua = unsafe { Lua::unsafe_new() };
    let prepared = prepare_state(&lua, &start, &paths).and_then(|node| {
        let keep = node
            .port
            .keep_alive()
            .map_err(|e| mlua::Error::runtime(e.to_string()))?;
        Ok((node.port.clone(), keep))
    });
    let (ok, why) = match prepared {
        Ok(started) => (tx.send(Ok(started)).is_ok(), String::new()),
        Err(e) => {
            let text = e.to_string();
            let _ = tx.send(Err(text.clone()));
            (false, text)
        }
    };
    if !ok {
        return Err(why);
    }
    let outcome = match start.interrupt.arm(&lua) {
        Ok(()) => run_chunk(&lua, &start).unwrap_or_else(|e| Err(e.to_string())),
        Err(e) => Err(e.to_string()),
    };
    start.interrupt.disarm();
    drop(lua); // closes the state, stopping and joining its own children
    outcome
}

fn prepare_state(lua: &Lua, start: &Start, paths: &Paths) -> mlua::Result<std::rc::Rc<Node>> {
    let package: Table = lua.globals().get("package")?;
    if let Some(p) = &paths.path {
        package.set("path", lua.create_string(p)?)?;
    }
    if let Some(p) = &paths.cpath {
        package.set("cpath", lua.create_string(p)?)?;
    }
    let preload: Table = package.get("preload")?;
    preload.set(
        "darksidesync",
        lua.create_function(|lua, ()| crate::open(lua))?,
    )?;
    preload.set(
        "darksidesync.states",
        lua.create_function(|lua, ()| super::open(lua))?,
    )?;
    if let Some(init) = INITIALIZER.get() {
        init(lua)?;
    }
    let node = Node::install(lua, start.id, Some(start.parent.clone()))?;
    Ok(node)
}

fn run_chunk(lua: &Lua, start: &Start) -> mlua::Result<Outcome> {
    let chunk = match lua
        .load(&start.script.source[..])
        .set_name(&start.script.chunkname)
        .into_function()
    {
        Ok(f) => f,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let args = lua.create_table()?;
    for (i, a) in start.args.iter().enumerate() {
        args.raw_set(i + 1, a.to_lua(lua)?)?;
    }
    args.raw_set("n", start.args.len())?;
    let runner: Function = lua.load(RUNNER).set_name("=darksidesync.states").eval()?;
    let mut results = runner.call::<MultiValue>((chunk, args))?;
    let ok = matches!(results.pop_front(), Some(Value::Boolean(true)));
    if !ok {
        let text = match results.pop_front() {
            Some(Value::String(s)) => s.to_string_lossy(),
            other => format!("{other:?}"),
        };
        return Ok(Err(text));
    }
    Ok(Portable::from_multi(
        &results,
        "darksidesync.states: the chunk's results",
    ))
}
