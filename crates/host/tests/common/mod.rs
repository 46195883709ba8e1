//! Running the host binary as a user does, with a watchdog.

#![allow(dead_code)] // each test file uses a part

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A safety net against hangs, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn script(name: &str, source: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("host-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    path
}

pub fn host(args: &[&std::ffi::OsStr]) -> Out {
    host_with(args, None, |_| {})
}

/// Runs the host with `input` on its standard input (if any); `started`
/// gets the child before its output is collected.
pub fn host_with(
    args: &[&std::ffi::OsStr],
    input: Option<&[u8]>,
    started: impl FnOnce(&mut std::process::Child),
) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_darksidesync-host"));
    cmd.args(args);
    command(cmd, input, started)
}

/// The `LUA_*` variables `lua5.4` reads: cleared for every program these
/// tests run, so that the caller's environment cannot change a result.
pub const LUA_ENV: &[&str] = &[
    "LUA_INIT",
    "LUA_INIT_5_4",
    "LUA_PATH",
    "LUA_PATH_5_4",
    "LUA_CPATH",
    "LUA_CPATH_5_4",
];

/// Runs `program` (the host or a stock interpreter) with `args` and
/// exactly the `LUA_*` variables of `env`.
pub fn program_env(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&[u8]>,
) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for v in LUA_ENV {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    command(cmd, input, |_| {})
}

/// The host, with exactly the `LUA_*` variables of `env`.
pub fn host_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    program_env(env!("CARGO_BIN_EXE_darksidesync-host"), args, env, None)
}

/// The workspace's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd` (output collected) with `input` on its standard input (if
/// any) under the watchdog; `started` gets the child first.
pub fn command(
    mut cmd: Command,
    input: Option<&[u8]>,
    started: impl FnOnce(&mut std::process::Child),
) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for v in LUA_ENV {
        if cmd.get_envs().all(|(k, _)| k != *v) {
            cmd.env_remove(v);
        }
    }
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let what = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let Some(input) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
    }
    started(&mut child);
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > PATIENCE {
            child.kill().unwrap();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        code: status.code(),
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// Runs `source` and sends it SIGINT once it printed its first line
/// (which the returned stdout then lacks).
pub fn interrupted(name: &str, source: &str) -> Out {
    let path = script(name, source);
    host_with(&[path.as_os_str()], None, |child| {
        let mut line = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .unwrap();
        assert_eq!(&line, b"ready\n");
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    })
}

pub fn run(name: &str, source: &str) -> Out {
    let path = script(name, source);
    host(&[path.as_os_str()])
}
