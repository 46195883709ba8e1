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
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
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
            panic!("darksidesync-host {args:?} hung");
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
