//! The async face of `darksidesync.process`, on `tokio::process`: the
//! template for a library written with `Dss::create_async_function`.
//!
//! ```lua
//! local p = process.start({ "sh", "-c", "echo hi; exit 3" }, { cwd = "/tmp", env = { A = "1" } })
//! p:read_line()           --> "hi"   (suspends the calling coroutine; nil at the end)
//! p:read_line("stderr")   --> the next line of its standard error
//! p:wait()                --> 3, nil  (or nil, "SIGTERM")
//! p:kill([signal])        --> true when sent, false once it exited
//! p:pid()                 --> number
//! ```
//!
//! Both streams are piped (stdin is `/dev/null`). Called outside a
//! coroutine the methods run darksidesync's loop until they are done. A
//! process whose object is collected, or whose state closes, is killed
//! (SIGKILL, tokio's `kill_on_drop`).

use std::cell::RefCell;
use std::process::{ExitStatus, Stdio};
use std::rc::Rc;

use darksidesync_binding::Dss;
use darksidesync_signal::names::{name as signal_name, number as signal_number};
use mlua::{AnyUserData, Function, Lua, Table, UserData, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

/// One output stream: its lines while nobody reads them.
type Stream = Rc<RefCell<Option<Lines<BufReader<Box<dyn AsyncRead + Unpin>>>>>>;

/// A child started by `process.start`.
struct AsyncProcess {
    pid: Option<u32>,
    /// Out while a `wait()` runs.
    child: Rc<RefCell<Option<Child>>>,
    status: Rc<RefCell<Option<ExitStatus>>>,
    stdout: Stream,
    stderr: Stream,
}

impl UserData for AsyncProcess {
    fn add_fields<F: mlua::UserDataFields<Self>>(f: &mut F) {
        // The methods live in the registry (made once per state): async
        // functions are Lua functions, not userdata methods.
        for name in ["read_line", "wait", "kill", "pid"] {
            f.add_field_function_get(name, move |lua, _| {
                lua.named_registry_value::<Table>(METHODS)?
                    .get::<Function>(name)
            });
        }
    }
}

const METHODS: &str = "darksidesync.process.async-methods";

fn status_values(s: &ExitStatus) -> (Option<i32>, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => (Some(c), None),
        (None, Some(sig)) => (None, Some(signal_name(sig))),
        _ => (None, None),
    }
}

fn this(ud: &AnyUserData) -> mlua::Result<mlua::UserDataRef<AsyncProcess>> {
    ud.borrow::<AsyncProcess>()
        .map_err(|_| mlua::Error::runtime("process: a started process expected"))
}

/// `process.start(argv [, options])`.
fn start(_lua: &Lua, (argv, options): (Table, Option<Table>)) -> mlua::Result<AsyncProcess> {
    let args: Vec<String> = argv
        .sequence_values::<String>()
        .collect::<mlua::Result<_>>()?;
    let Some((prog, rest)) = args.split_first() else {
        return Err(mlua::Error::runtime(
            "process.start: argv must not be empty",
        ));
    };
    let mut cmd = Command::new(prog);
    cmd.args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(o) = options {
        if let Some(cwd) = o.get::<Option<String>>("cwd")? {
            cmd.current_dir(cwd);
        }
        if let Some(env) = o.get::<Option<Table>>("env")? {
            for kv in env.pairs::<String, String>() {
                let (k, v) = kv?;
                cmd.env(k, v);
            }
        }
    }
    // tokio registers the child with its reactor: inside its context.
    let _rt = darksidesync_binding::tokio_runtime().enter();
    let mut child = cmd
        .spawn()
        .map_err(|e| mlua::Error::runtime(format!("process.start: cannot start {prog}: {e}")))?;
    let lines = |r: Option<Box<dyn AsyncRead + Unpin>>| -> Stream {
        Rc::new(RefCell::new(r.map(|r| BufReader::new(r).lines())))
    };
    let stdout = lines(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = lines(child.stderr.take().map(|s| Box::new(s) as _));
    Ok(AsyncProcess {
        pid: child.id(),
        child: Rc::new(RefCell::new(Some(child))),
        status: Rc::default(),
        stdout,
        stderr,
    })
}

/// Adds `start` to the library's table.
pub(crate) fn add(lua: &Lua, dss: &Dss, t: &Table) -> mlua::Result<()> {
    let methods = lua.create_table()?;
    methods.set(
        "read_line",
        dss.create_async_function(lua, |_, (ud, which): (AnyUserData, Option<String>)| {
            let stream = this(&ud).and_then(|p| match which.as_deref() {
                None | Some("stdout") => Ok(p.stdout.clone()),
                Some("stderr") => Ok(p.stderr.clone()),
                Some(other) => Err(mlua::Error::runtime(format!(
                    "read_line: stream must be \"stdout\" or \"stderr\", got {other:?}"
                ))),
            });
            async move {
                let stream = stream?;
                let Some(mut lines) = stream.borrow_mut().take() else {
                    return Err(mlua::Error::runtime(
                        "read_line: the stream is closed or another coroutine reads it",
                    ));
                };
                let line = lines.next_line().await;
                *stream.borrow_mut() = Some(lines);
                line.map_err(|e| mlua::Error::runtime(format!("read_line: {e}")))
            }
        })?,
    )?;
    methods.set(
        "wait",
        dss.create_async_function(lua, |_, ud: AnyUserData| {
            let parts = this(&ud).map(|p| (p.child.clone(), p.status.clone()));
            async move {
                let (child, status) = parts?;
                if let Some(s) = status.borrow().as_ref() {
                    return Ok(status_values(s));
                }
                let Some(mut c) = child.borrow_mut().take() else {
                    return Err(mlua::Error::runtime("wait: another coroutine waits for it"));
                };
                let got = c.wait().await;
                *child.borrow_mut() = Some(c);
                let s = got.map_err(|e| mlua::Error::runtime(format!("wait: {e}")))?;
                *status.borrow_mut() = Some(s);
                Ok(status_values(&s))
            }
        })?,
    )?;
    methods.set(
        "kill",
        lua.create_function(|_, (ud, sig): (AnyUserData, Option<Value>)| {
            let p = this(&ud)?;
            let sig = match sig {
                None => libc::SIGTERM,
                Some(v) => signal_number(&v, "kill").map_err(mlua::Error::runtime)?,
            };
            // Not reaped before wait() saw the exit (tokio reaps in its
            // poll, on this thread): the pid is still this child's.
            let exited = p.status.borrow().is_some();
            match (p.pid, exited) {
                (Some(pid), false) => {
                    // SAFETY: kill(2) with a pid of our unreaped child.
                    Ok(unsafe { libc::kill(pid as libc::pid_t, sig) } == 0)
                }
                _ => Ok(false),
            }
        })?,
    )?;
    methods.set(
        "pid",
        lua.create_function(|_, ud: AnyUserData| Ok(this(&ud)?.pid))?,
    )?;
    lua.set_named_registry_value(METHODS, methods)?;
    t.set("start", lua.create_function(start)?)
}
