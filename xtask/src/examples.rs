//! `cargo xtask examples`
//!
//! Builds the embedded host (release) and the module for Lua 5.4 once and
//! runs every `examples/*.lua` as a user would, unchanged, under both:
//! `darksidesync-host examples/<name>.lua` and `lua5.4 examples/<name>.lua`
//! with the module on `package.cpath`. Each run is under a watchdog that
//! kills it and fails after [`PATIENCE`]. Each example has a check below:
//! lines its output must contain, in order, and for the signal examples
//! the signals to send once a given line appeared; both interpreters must
//! pass it with the same exit status, and for the examples whose output
//! does not depend on timing ([`SAME_OUTPUT`]) print the same lines (their
//! numbers aside, in any order). An example without a check fails the
//! stage, so none is left untested.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cmd::{cargo, run, Result};
use crate::root;

/// A hang watchdog, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

/// One check of one example.
struct Check {
    /// The file name in `examples/`.
    file: &'static str,
    /// Extra command-line arguments.
    args: &'static [&'static str],
    /// Substrings that must appear in the output, each on a later line
    /// than the previous one.
    expect: &'static [&'static str],
    /// When a line containing the first string appears, send the signal
    /// named by the second (with kill(1)), in this order.
    signals: &'static [(&'static str, &'static str)],
    /// The exit status expected.
    status: i32,
    /// Also run under stock `lua5.4` (every check but one, see there).
    stock: bool,
}

const CHECKS: &[Check] = &[
    Check {
        file: "hello.lua",
        args: &[],
        expect: &[
            "hello from Lua 5.4",
            "callbacks are set up",
            "[process] step 1",
            "[process] exited with status 0",
            "done",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "hello.lua",
        args: &[],
        expect: &["[timer]   tick 1", "[timer]   tick 2", "[timer]   tick 3"],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "lines.lua",
        args: &[],
        expect: &[
            "got line 1",
            "got line 2",
            "got line 3",
            "exited with status 0",
            "done",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "processes.lua",
        args: &["3"],
        expect: &[
            "started 3 processes",
            "[fast ] fast line 1",
            "[fast ] fast line 3",
            "[fast ] exited: status 0",
            "all processes finished",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "processes.lua",
        args: &["3"],
        expect: &[
            "[noisy] stderr: noisy warning 1",
            "[noisy] stderr: noisy warning 3",
            "[noisy] exited: status 3",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "processes.lua",
        args: &["3"],
        expect: &[
            "[slow ] slow line 1",
            "[slow ] slow line 3",
            "[slow ] exited: status 0",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    // Ctrl-C while the children run: the Lua callback stops them.
    Check {
        file: "processes.lua",
        args: &["1000"],
        expect: &[
            "got SIGINT, stopping the children",
            "exited: SIGTERM",
            "all processes finished",
        ],
        signals: &[("[slow ] slow line 2", "INT")],
        status: 0,
        // Not under lua5.4: darksidesync.signal's handler (signal-hook)
        // chains to the one lua.c installs while a script runs, so
        // lua5.4 also raises "interrupted!" in the running Lua code.
        stock: false,
    },
    Check {
        file: "signals.lua",
        args: &[],
        expect: &[
            "ready: pid",
            "got SIGHUP: reloaded the configuration (now v2)",
            "status: ",
            "got SIGTERM: shutting down cleanly",
            "bye",
        ],
        signals: &[
            ("ready: pid", "HUP"),
            ("reloaded the configuration", "USR1"),
            ("status: ", "TERM"),
        ],
        status: 0,
        stock: true,
    },
    Check {
        file: "signals.lua",
        args: &[],
        expect: &[
            "ready: pid",
            "got SIGHUP: reloaded the configuration (now v2)",
            "status: ",
            "got SIGINT: shutting down cleanly",
            "bye",
        ],
        signals: &[
            ("ready: pid", "HUP"),
            ("reloaded the configuration", "USR1"),
            ("status: ", "INT"),
        ],
        status: 0,
        // Ctrl-C: in the host only (see the processes.lua check).
        stock: false,
    },
    Check {
        file: "workers.lua",
        args: &["3", "6"],
        expect: &[
            "3 workers started, looking for 6 primes",
            "is prime (6/6)",
            "found 6 primes above 10^12 with 3 workers",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "states.lua",
        args: &[],
        expect: &[
            "main state 0 started 3 states",
            "[alice] stopped after 3 ticks",
            "all states finished",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "states.lua",
        args: &[],
        expect: &[
            "[carol] tick 1 from state 3",
            "[carol] tick 3 from state 3",
            "[carol] stopped after 3 ticks",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "waits.lua",
        args: &[],
        expect: &[
            "timing is on",
            "[timer] 10 ticks",
            "the state:",
            "darksidesync.timer:",
            "darksidesync.process:",
            "timing is off: waits() is nil",
        ],
        signals: &[],
        status: 0,
        stock: true,
    },
    Check {
        file: "waits.lua",
        args: &[],
        expect: &["[process] 8 lines, exited with status 0", "the state:"],
        signals: &[],
        status: 0,
        stock: true,
    },
];

/// Examples whose output lines (numbers masked, order aside) are the same
/// on every run: under the host and `lua5.4` they must match exactly.
const SAME_OUTPUT: &[&str] = &["hello.lua", "states.lua", "workers.lua"];

/// How an example is run.
struct Interpreter {
    /// For messages.
    name: &'static str,
    program: std::path::PathBuf,
    /// `LUA_PATH`, `LUA_CPATH` (the module's folder) or nothing.
    env: Vec<(&'static str, String)>,
}

/// Builds the embedded host (release) and returns its path.
pub(crate) fn host() -> Result<std::path::PathBuf> {
    run(cargo().args(["build", "--release", "-p", "darksidesync-host"]))?;
    Ok(root().join("target/release/darksidesync-host"))
}

pub fn main() -> Result {
    let lua = crate::module::version("5.4")?;
    let so = crate::module::build(lua, &root().join("target/lua-modules/5.4/cargo"), "dev")?;
    let module_dir = root().join("target/examples/5.4");
    crate::module::install(&so, &module_dir)?;
    let interpreters = [
        Interpreter {
            name: "darksidesync-host",
            program: host()?,
            env: Vec::new(),
        },
        Interpreter {
            name: "lua5.4",
            program: "lua5.4".into(),
            env: vec![
                ("LUA_PATH", format!("{}/?.lua;;", module_dir.display())),
                ("LUA_CPATH", format!("{}/?.so;;", module_dir.display())),
            ],
        },
    ];
    let dir = root().join("examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".lua"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for f in &files {
        if !CHECKS.iter().any(|c| c.file == f) {
            failures.push(format!(
                "examples/{f} has no check in xtask/src/examples.rs"
            ));
        }
    }
    // The README's first Lua example is examples/lines.lua, verbatim.
    let readme = std::fs::read_to_string(root().join("README.md"))
        .map_err(|e| format!("cannot read README.md: {e}"))?;
    let lines = std::fs::read_to_string(dir.join("lines.lua"))
        .map_err(|e| format!("cannot read examples/lines.lua: {e}"))?;
    if !readme.contains(&format!("```lua\n{lines}```")) {
        failures.push("README.md does not show examples/lines.lua verbatim".to_string());
    }
    let mut passed = 0;
    for check in CHECKS {
        let mut outputs = Vec::new();
        for interpreter in &interpreters {
            if !check.stock && interpreter.name != "darksidesync-host" {
                continue;
            }
            let started = Instant::now();
            let what = format!("{} {:?} under {}", check.file, check.args, interpreter.name);
            match run_one(interpreter, check) {
                Ok(lines) => {
                    passed += 1;
                    eprintln!(
                        "example {what}: ok ({:.1}s)",
                        started.elapsed().as_secs_f64()
                    );
                    outputs.push(lines);
                }
                Err(e) => {
                    eprintln!("example {what}: FAILED: {e}");
                    failures.push(format!("{what}: {e}"));
                }
            }
        }
        if let [host, stock] = &outputs[..] {
            if SAME_OUTPUT.contains(&check.file) && masked(host) != masked(stock) {
                failures.push(format!(
                    "{} prints other lines under the host than under lua5.4:\n{}\n--- lua5.4:\n{}",
                    check.file,
                    host.join("\n"),
                    stock.join("\n")
                ));
            }
        }
    }
    println!("examples: {passed} passed, {} failed", failures.len());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// The lines, sorted, each with its runs of digits as `#`.
fn masked(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut m = String::new();
            for c in l.chars() {
                if !c.is_ascii_digit() {
                    m.push(c);
                } else if !m.ends_with('#') {
                    m.push('#');
                }
            }
            m
        })
        .collect();
    out.sort();
    out
}

/// Runs one check under `interpreter`; its output lines when it passed.
fn run_one(interpreter: &Interpreter, check: &Check) -> Result<Vec<String>> {
    let mut cmd = Command::new(&interpreter.program);
    crate::cmd::clear_lua_env(&mut cmd);
    let mut child = cmd
        .envs(interpreter.env.iter().map(|(k, v)| (k, v)))
        .current_dir(root())
        .arg(Path::new("examples").join(check.file))
        .args(check.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", interpreter.name))?;
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(|l| l.ok())
                .for_each(|l| drop(tx.send(l)))
        }),
        std::thread::spawn(move || {
            BufReader::new(err)
                .lines()
                .map_while(|l| l.ok())
                .for_each(|l| drop(tx2.send(l)))
        }),
    ];
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    let mut pending_signals = check.signals.iter().peekable();
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if let Some((trigger, sig)) = pending_signals.peek() {
                    if line.contains(trigger) {
                        let ok = Command::new("kill")
                            .arg(format!("-{sig}"))
                            .arg(child.id().to_string())
                            .status();
                        if !ok.is_ok_and(|s| s.success()) {
                            let _ = child.kill();
                            return Err(format!("could not send SIG{sig}"));
                        }
                        pending_signals.next();
                    }
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both streams closed: wait for the exit under the watchdog too.
                if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
                    break s;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "still running after {}s (killed); output so far:\n{}",
                PATIENCE.as_secs(),
                lines.join("\n")
            ));
        }
    };
    for r in readers {
        let _ = r.join();
    }
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    let output = lines.join("\n");
    if status.code() != Some(check.status) {
        return Err(format!(
            "exit status {status}, expected {}; output:\n{output}",
            check.status
        ));
    }
    if let Some((trigger, _)) = pending_signals.next() {
        return Err(format!(
            "never printed {trigger:?}, so its signal was not sent; output:\n{output}"
        ));
    }
    let mut from = 0;
    for want in check.expect {
        match lines[from..].iter().position(|l| l.contains(want)) {
            Some(i) => from += i + 1,
            None => {
                return Err(format!(
                    "expected a line containing {want:?} (in order); output:\n{output}"
                ))
            }
        }
    }
    Ok(lines)
}
