//! The luaexit test (issue 11.3): `tests/c/luaexit.c`, a utility whose
//! SIGTERM handler delivers like DarkSideSync's `luaexit`, loaded into a
//! stock lua5.4 that spins in `poll()` or `dispatch()` while the utility's
//! thread signals the process. Each configuration runs [`RUNS`] times under
//! a watchdog: a handler that waits for the lock held by the code it
//! interrupted hangs the process, and the run fails.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::build::{incs, CFLAGS};
use crate::cmd::{clear_lua_env, root, run, run_watched, Result};

/// Runs per configuration (loop × API version).
const RUNS: usize = 20;

/// Signals per run.
const SIGNALS: &str = "50";

/// One run takes well under a second; a hung one is killed after this.
const HANG: Duration = Duration::from_secs(30);

/// Builds `luaexit.so` into `dir` (which holds the lua5.4 module) and runs
/// every configuration.
pub(super) fn main(dir: &Path) -> Result {
    run(Command::new("gcc")
        .args(CFLAGS)
        .args(["-shared", "-fPIC"])
        .args(incs("/usr/include/lua5.4"))
        .arg(root().join("tests/c/luaexit.c"))
        .arg("-o")
        .arg(dir.join("luaexit.so")))?;
    let mut hung = Vec::new();
    for lp in ["poll", "dispatch"] {
        for api in ["1", "2"] {
            for i in 0..RUNS {
                let mut cmd = Command::new("lua5.4");
                cmd.arg(root().join("tests/c/luaexit.lua"))
                    .arg(dir)
                    .args([lp, api, SIGNALS]);
                clear_lua_env(&mut cmd);
                if let Err(e) = run_watched(&mut cmd, HANG) {
                    hung.push(format!("{lp} {api}v0 run {}: {e}", i + 1));
                }
            }
        }
    }
    if hung.is_empty() {
        eprintln!(
            "xtask capi: luaexit: {} runs, no hang, every signal accounted for",
            4 * RUNS
        );
        Ok(())
    } else {
        Err(format!(
            "luaexit: {} of {} runs failed:\n{}",
            hung.len(),
            4 * RUNS,
            hung.join("\n")
        ))
    }
}
