//! `cargo xtask examples`
//!
//! Builds the embedded host (release) once and runs every `examples/*.lua`
//! as a user would (`darksidesync-host examples/<name>.lua`), each under a
//! watchdog that kills it and fails after [`PATIENCE`]. Each example has a
//! check below: lines its output must contain, in order, and for the
//! signal examples the signals to send once a given line appeared. An
//! example without a check fails the stage, so none is left untested.

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
}

const CHECKS: &[Check] = &[
    Check {
        file: "hello.lua",
        args: &[],
        expect: &[
            "hello from Lua 5.4 in darksidesync-host",
            "the script is done",
            "[process] step 1",
            "[process] exited with status 0",
        ],
        signals: &[],
        status: 0,
    },
    Check {
        file: "hello.lua",
        args: &[],
        expect: &["[timer]   tick 1", "[timer]   tick 2", "[timer]   tick 3"],
        signals: &[],
        status: 0,
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
    },
    Check {
        file: "signals.lua",
        args: &[],
        expect: &[
            "ready: pid",
            "got SIGHUP: reloaded the configuration (now v2)",
            "status: ",
            "got SIGINT: shutting down cleanly",
        ],
        signals: &[
            ("ready: pid", "HUP"),
            ("reloaded the configuration", "USR1"),
            ("status: ", "INT"),
        ],
        status: 0,
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
    },
    Check {
        file: "waits.lua",
        args: &[],
        expect: &["[process] 8 lines, exited with status 0", "the state:"],
        signals: &[],
        status: 0,
    },
];

pub fn main() -> Result {
    run(cargo().args(["build", "--release", "-p", "darksidesync-host"]))?;
    let host = root().join("target/release/darksidesync-host");
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
    let mut passed = 0;
    for check in CHECKS {
        let started = Instant::now();
        match run_one(&host, check) {
            Ok(()) => {
                passed += 1;
                eprintln!(
                    "example {} {:?}: ok ({:.1}s)",
                    check.file,
                    check.args,
                    started.elapsed().as_secs_f64()
                )
            }
            Err(e) => {
                eprintln!("example {} {:?}: FAILED: {e}", check.file, check.args);
                failures.push(format!("{} {:?}: {e}", check.file, check.args));
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

fn run_one(host: &Path, check: &Check) -> Result {
    let mut child = Command::new(host)
        .current_dir(root())
        .arg(Path::new("examples").join(check.file))
        .args(check.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", host.display()))?;
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
    Ok(())
}
