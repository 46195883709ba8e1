//! Running commands with a readable trace and a clear failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (the parent of the xtask crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs `cmd` from the workspace root, echoing it first; fails on a
/// non-zero exit.
pub fn run(cmd: &mut Command) -> Result {
    cmd.current_dir(root());
    eprintln!("+ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", describe(cmd)))
    }
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// True when `program` is found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn describe(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s += &format!("{}={} ", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    s += &cmd.get_program().to_string_lossy();
    for a in cmd.get_args() {
        s.push(' ');
        s += &a.to_string_lossy();
    }
    s
}

/// Runs `cmd` from the workspace root and returns its standard output;
/// fails on a non-zero exit, with its standard error in the message.
pub fn output(cmd: &mut Command) -> Result<String> {
    cmd.current_dir(root());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {}: {e}", describe(cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed with {}: {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout)
        .map_err(|e| format!("{}: output is not UTF-8: {e}", describe(cmd)))
}

/// Removes the variables through which the environment would change a stock
/// interpreter's search paths or run code first, so that a run sees only
/// the paths the caller sets.
pub fn clear_lua_env(cmd: &mut Command) {
    for v in [
        "LUA_PATH",
        "LUA_CPATH",
        "LUA_INIT",
        "LUA_PATH_5_2",
        "LUA_CPATH_5_2",
        "LUA_INIT_5_2",
        "LUA_PATH_5_3",
        "LUA_CPATH_5_3",
        "LUA_INIT_5_3",
        "LUA_PATH_5_4",
        "LUA_CPATH_5_4",
        "LUA_INIT_5_4",
    ] {
        cmd.env_remove(v);
    }
}

/// Runs `cmd` from the workspace root; fails on a non-zero exit, and kills
/// it and fails when it outlives `limit` (a hang, not a speed bound).
pub fn run_watched(cmd: &mut Command, limit: Duration) -> Result {
    cmd.current_dir(root());
    eprintln!("+ {}", describe(cmd));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", describe(cmd)))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("`{}` failed with {status}", describe(cmd)))
            };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{}` hung: killed after {} s",
                describe(cmd),
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
