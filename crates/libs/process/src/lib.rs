//! `darksidesync.process`: child processes with a callback per line of
//! output and one on exit.
//!
//! ```lua
//! local process = require "darksidesync.process"
//! local p = process.spawn({ "sh", "-c", "echo hi; echo oops >&2; exit 3" }, {
//!   stdout = function(line, p) print("out", line) end,  -- omitted: inherited
//!   stderr = function(line, p) print("err", line) end,  -- omitted: inherited
//!   exit   = function(code, signal, p) end,  -- (3, nil), or (nil, "SIGTERM")
//!   stdin  = true,                           -- a pipe for p:write (default: none)
//!   cwd    = "/tmp", env = { NAME = "value" },
//! })
//! p:write("text")   --> true, or nil and a message once the child stopped reading
//! p:close()         --> closes its stdin (EOF)
//! p:kill([signal])  --> true when sent (default "TERM"), false after it exited
//! p:pid()           --> number
//! p:running()       --> false once its exit was seen
//! ```
//!
//! `spawn` returns `nil, message` when the program cannot be started;
//! malformed arguments raise.
//!
//! # Threads
//!
//! Per child: one reader thread per captured stream (posting one item per
//! line, blocking while the state's queue is full, which slows the child
//! instead of growing memory), one writer thread for stdin (so `write`
//! never blocks the Lua thread), and a waiter. The waiter waits for the
//! exit *without reaping* (`waitid` with `WNOWAIT`), marks the child
//! exited, reaps it, waits for both readers to finish and then posts the
//! exit: the exit callback always comes after the last line. `kill`
//! checks the exited mark under the same lock, so it never signals a
//! reused pid. The waiter holds a keep-alive reference until the exit is
//! queued, so `run()` waits for every child.
//!
//! Closing the Lua state sends SIGTERM to its children that are still
//! running (the binding's close notification).
//!
//! Built only on `darksidesync-binding` (see `doc/libs.md`); signal names
//! come from `darksidesync-signal`. Deliveries are
//! [`post_callback`](Dss::post_callback)s: darksidesync calls the
//! callbacks itself, so under the coroutine adapters (cqueues, Copas) each
//! runs in a coroutine of its own and may yield on their I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use darksidesync_binding::{function, Dss, Hold, LibId, Prepared};
use darksidesync_signal::names::{name as signal_name, number as signal_number, type_name};
use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataFields, Value,
};

fn fail<T>(message: impl Into<String>) -> mlua::Result<T> {
    Err(mlua::Error::runtime(message.into()))
}

fn one(v: Value) -> MultiValue {
    MultiValue::from_iter([v])
}

static LIB: LibId = LibId::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the Lua thread and the waiter share about one child.
struct Shared {
    pid: u32,
    /// Set by the waiter once the child exited, before it is reaped.
    exited: Mutex<bool>,
}

impl Shared {
    /// Sends `sig` unless the child already exited. True when sent.
    fn kill(&self, sig: libc::c_int) -> std::io::Result<bool> {
        let exited = self.exited.lock().unwrap_or_else(|p| p.into_inner());
        if *exited {
            return Ok(false);
        }
        // SAFETY: kill(2) has no memory-safety preconditions. The pid is
        // our unreaped child (checked under the lock the waiter takes
        // before reaping), so it cannot name another process.
        if unsafe { libc::kill(self.pid as libc::pid_t, sig) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(true)
    }
}

/// Per state: the handle, the callbacks by child id, the running children.
struct ProcState {
    dss: Dss,
    live: RefCell<HashMap<u64, Callbacks>>,
    /// Children still running, for the close path.
    children: Arc<Mutex<Vec<Arc<Shared>>>>,
}

struct Callbacks {
    stdout: Option<Function>,
    stderr: Option<Function>,
    exit: Option<Function>,
    handle: AnyUserData,
}

fn existing_state(lua: &Lua) -> Option<Rc<ProcState>> {
    lua.app_data_ref::<Rc<ProcState>>().map(|s| Rc::clone(&s))
}

fn state(lua: &Lua) -> mlua::Result<Rc<ProcState>> {
    existing_state(lua).ok_or_else(|| mlua::Error::runtime("process: not opened in this Lua state"))
}

/// What a delivery of this library carries.
enum Event {
    /// One line of output, without its newline.
    Line { stderr: bool, line: Vec<u8> },
    /// The child exited (after its last line); the code, or the signal
    /// that ended it.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// On the Lua thread: the callback the event is for and its arguments,
/// or one that does nothing when there is none (darksidesync calls it).
fn deliver(lua: &Lua, id: u64, event: Event) -> mlua::Result<Prepared> {
    let Some(ps) = existing_state(lua) else {
        return nothing(lua);
    };
    match event {
        Event::Line { stderr, line } => {
            let target = ps.live.borrow().get(&id).and_then(|cb| {
                let f = if stderr { &cb.stderr } else { &cb.stdout };
                f.clone().map(|f| (f, cb.handle.clone()))
            });
            match target {
                Some((f, h)) => Ok((f, (lua.create_string(&line)?, h).into_lua_multi(lua)?)),
                None => nothing(lua),
            }
        }
        Event::Exit { code, signal } => {
            let cb = ps.live.borrow_mut().remove(&id);
            match cb.and_then(|cb| cb.exit.map(|f| (f, cb.handle))) {
                Some((f, h)) => Ok((
                    f,
                    (code.map(i64::from), signal.map(signal_name), h).into_lua_multi(lua)?,
                )),
                None => nothing(lua),
            }
        }
    }
}

/// A delivery with nothing to do (counted by `dispatch()` like the event
/// it stands for).
fn nothing(lua: &Lua) -> mlua::Result<Prepared> {
    Ok((lua.create_function(|_, ()| Ok(()))?, MultiValue::new()))
}

/// A child process handle.
struct Process {
    shared: Arc<Shared>,
    /// The stdin writer's channel; `None` without `stdin = true` or after
    /// `close()`.
    stdin: RefCell<Option<mpsc::Sender<Vec<u8>>>>,
    piped: bool,
}

impl UserData for Process {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with("__index", |lua| {
            let t = lua.create_table()?;
            t.set("write", function(lua, write)?)?;
            t.set("close", function(lua, close)?)?;
            t.set("kill", function(lua, kill)?)?;
            t.set("pid", function(lua, pid)?)?;
            t.set("running", function(lua, running)?)?;
            Ok(t)
        });
        fields.add_meta_field("__name", "darksidesync.process");
    }
}

/// The process a method was called on (colon syntax).
fn this(a: &MultiValue, what: &str) -> mlua::Result<mlua::UserDataRef<Process>> {
    if let Some(Value::UserData(ud)) = a.front() {
        if let Ok(p) = ud.borrow::<Process>() {
            return Ok(p);
        }
    }
    fail(format!(
        "{what}: expected a handle as self (use the colon syntax), got {}",
        a.front().map_or("no value", type_name)
    ))
}

fn string_of(v: &Value) -> Option<OsString> {
    use std::os::unix::ffi::OsStringExt;
    match v {
        Value::String(s) => Some(OsString::from_vec(s.as_bytes().to_vec())),
        Value::Integer(i) => Some(i.to_string().into()),
        Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

fn optional_function(t: &Table, key: &str) -> mlua::Result<Option<Function>> {
    match t.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Function(f) => Ok(Some(f)),
        other => fail(format!(
            "process.spawn: option {key} must be a function, got {}",
            type_name(&other)
        )),
    }
}

/// `spawn(argv, opts)` → process, or nil and a message.
fn spawn(lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let argv = match a.front() {
        Some(Value::Table(t)) => t.clone(),
        other => {
            return fail(format!(
                "process.spawn: expected an array of program and arguments, got {}",
                other.map_or("no value", type_name)
            ))
        }
    };
    let mut words = Vec::new();
    for (i, v) in argv.sequence_values::<Value>().enumerate() {
        let v = v?;
        words.push(string_of(&v).ok_or_else(|| {
            mlua::Error::runtime(format!(
                "process.spawn: argv[{}] must be a string, got {}",
                i + 1,
                type_name(&v)
            ))
        })?);
    }
    if words.is_empty() {
        return fail("process.spawn: argv must name a program (argv[1])");
    }
    let opts = match a.get(1) {
        None | Some(Value::Nil) => lua.create_table()?,
        Some(Value::Table(t)) => t.clone(),
        Some(other) => {
            return fail(format!(
                "process.spawn: options must be a table or nil, got {}",
                type_name(other)
            ))
        }
    };
    let stdout = optional_function(&opts, "stdout")?;
    let stderr = optional_function(&opts, "stderr")?;
    let exit = optional_function(&opts, "exit")?;
    let piped = match opts.get::<Value>("stdin")? {
        Value::Nil | Value::Boolean(false) => false,
        Value::Boolean(true) => true,
        other => {
            return fail(format!(
                "process.spawn: option stdin must be a boolean, got {}",
                type_name(&other)
            ))
        }
    };
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    match opts.get::<Value>("cwd")? {
        Value::Nil => {}
        v => {
            let dir = string_of(&v).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "process.spawn: option cwd must be a string, got {}",
                    type_name(&v)
                ))
            })?;
            cmd.current_dir(dir);
        }
    }
    match opts.get::<Value>("env")? {
        Value::Nil => {}
        Value::Table(env) => {
            for pair in env.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let (Value::String(k), Some(v)) = (&k, string_of(&v)) else {
                    return fail("process.spawn: option env must map names to strings");
                };
                cmd.env(k.to_string_lossy(), v);
            }
        }
        other => {
            return fail(format!(
                "process.spawn: option env must be a table, got {}",
                type_name(&other)
            ))
        }
    }
    cmd.stdin(if piped { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(if stdout.is_some() {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    cmd.stderr(if stderr.is_some() {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });

    let ps = state(lua)?;
    let keep = match ps.dss.hold() {
        Ok(k) => k,
        Err(e) => return fail(format!("process.spawn: the state is closing: {e}")),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "process.spawn: cannot start {}: {e}",
                words[0].to_string_lossy()
            );
            return Ok(MultiValue::from_iter([
                Value::Nil,
                Value::String(lua.create_string(msg)?),
            ]));
        }
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        pid: child.id(),
        exited: Mutex::new(false),
    });
    ps.children
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(shared.clone());

    let stdin = child.stdin.take().map(|pipe| {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        thread::spawn(move || writer(pipe, rx));
        tx
    });
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let dss = ps.dss.clone();
        readers.push(thread::spawn(move || reader(out, dss, id, false)));
    }
    if let Some(err) = child.stderr.take() {
        let dss = ps.dss.clone();
        readers.push(thread::spawn(move || reader(err, dss, id, true)));
    }
    let handle = lua.create_userdata(Process {
        shared: shared.clone(),
        stdin: RefCell::new(stdin),
        piped,
    })?;
    ps.live.borrow_mut().insert(
        id,
        Callbacks {
            stdout,
            stderr,
            exit,
            handle: handle.clone(),
        },
    );
    let (dss, children) = (ps.dss.clone(), ps.children.clone());
    thread::spawn(move || waiter(child, shared, readers, dss, keep, id, children));
    Ok(one(Value::UserData(handle)))
}

/// Writes what `write` queued; ends at `close()` or when the child stops
/// reading.
fn writer(mut pipe: std::process::ChildStdin, rx: mpsc::Receiver<Vec<u8>>) {
    // A write to a pipe nobody reads raises SIGPIPE, whose default action
    // would end the whole interpreter. Blocked in this thread, the write
    // fails with EPIPE instead (SIGPIPE from write(2) is thread-directed).
    // SAFETY: the set is initialised by sigemptyset before use, and
    // pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    for chunk in rx {
        if pipe.write_all(&chunk).and_then(|_| pipe.flush()).is_err() {
            break;
        }
    }
}

/// Posts one delivery per line (the last one may lack its newline).
fn reader(stream: impl Read, dss: Dss, id: u64, stderr: bool) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let event = Event::Line { stderr, line };
                if dss
                    .post_callback(move |lua| deliver(lua, id, event))
                    .is_err()
                {
                    break; // the state is gone; dropping the pipe ends the child's writes
                }
            }
        }
    }
}

fn waiter(
    mut child: Child,
    shared: Arc<Shared>,
    readers: Vec<thread::JoinHandle<()>>,
    dss: Dss,
    keep: Hold,
    id: u64,
    children: Arc<Mutex<Vec<Arc<Shared>>>>,
) {
    loop {
        // SAFETY: `info` is a plain C struct that waitid fills in; zeroed
        // is a valid initial value. WNOWAIT leaves the child unreaped.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                shared.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
    }
    *shared.exited.lock().unwrap_or_else(|p| p.into_inner()) = true;
    let status = child.wait();
    children
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|c| !Arc::ptr_eq(c, &shared));
    for r in readers {
        let _ = r.join();
    }
    let (code, signal) = match status {
        Ok(s) => (s.code(), s.signal()),
        Err(_) => (None, None),
    };
    let _ = dss.post_callback(move |lua| deliver(lua, id, Event::Exit { code, signal }));
    drop(keep); // after the exit is queued: run() cannot miss it
}

/// `p:write(data)` → true, or nil and a message.
fn write(lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let p = this(&a, "process:write")?;
    let data = match a.get(1) {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => s.as_bytes().to_vec(),
            None => Vec::new(),
        },
        other => {
            return fail(format!(
                "process:write: data must be a string, got {}",
                other.map_or("no value", type_name)
            ))
        }
    };
    if !p.piped {
        return fail("process:write: stdin was not opened (spawn with stdin = true)");
    }
    let sent = match p.stdin.borrow().as_ref() {
        None => Err("stdin is closed"),
        Some(tx) => tx
            .send(data)
            .map_err(|_| "the process no longer reads its stdin"),
    };
    Ok(match sent {
        Ok(()) => one(Value::Boolean(true)),
        Err(msg) => MultiValue::from_iter([Value::Nil, Value::String(lua.create_string(msg)?)]),
    })
}

/// `p:close()` → true when stdin was open.
fn close(_lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let p = this(&a, "process:close")?;
    let was = p.stdin.borrow_mut().take().is_some();
    Ok(one(Value::Boolean(was)))
}

/// `p:kill([signal])` → true when sent, false when it already exited.
fn kill(_lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let p = this(&a, "process:kill")?;
    let sig = match a.get(1) {
        None | Some(Value::Nil) => libc::SIGTERM,
        Some(v) => signal_number(v, "process:kill").map_err(mlua::Error::runtime)?,
    };
    let sent = p
        .shared
        .kill(sig)
        .map_err(|e| mlua::Error::runtime(format!("process:kill: {e}")))?;
    Ok(one(Value::Boolean(sent)))
}

/// `p:pid()` → the process id.
fn pid(_lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let p = this(&a, "process:pid")?;
    Ok(one(Value::Integer(i64::from(p.shared.pid))))
}

/// `p:running()` → false once the exit callback is pending or ran.
fn running(_lua: &Lua, a: MultiValue) -> mlua::Result<MultiValue> {
    let p = this(&a, "process:running")?;
    let exited = *p.shared.exited.lock().unwrap_or_else(|e| e.into_inner());
    Ok(one(Value::Boolean(!exited)))
}

/// Builds the `darksidesync.process` table: registers with the state's
/// darksidesync (loading it if need be) on first use in that state.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    if existing_state(lua).is_none() {
        let dss = Dss::register(lua, &LIB, "darksidesync.process")?;
        // Idle, the library does not keep run() waiting: each child's
        // waiter holds it until the exit is queued.
        dss.unref();
        let children: Arc<Mutex<Vec<Arc<Shared>>>> = Default::default();
        let on_close = children.clone();
        dss.on_close(move || {
            let kids = std::mem::take(&mut *on_close.lock().unwrap_or_else(|p| p.into_inner()));
            for k in kids {
                let _ = k.kill(libc::SIGTERM);
            }
        });
        lua.set_app_data(Rc::new(ProcState {
            dss,
            live: RefCell::default(),
            children,
        }));
    }
    let t = lua.create_table()?;
    t.set("spawn", function(lua, spawn)?)?;
    Ok(t)
}
