//! `cargo xtask bench --perf <scenario>`: one scenario under `perf record`,
//! and where its time goes (`perf report`, flat, by library and symbol),
//! printed and kept in `profile-<scenario>.txt` in `--out DIR` (default
//! `target/bench-run`).

use std::path::Path;
use std::process::Command;

use super::runner::Env;
use super::scenarios::Scenario;
use crate::cmd::{on_path, run, Result};
use crate::root;

pub(super) fn main(env: &Env, scenarios: &[Scenario], name: &str, out: Option<&Path>) -> Result {
    let Some(s) = scenarios.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "bench --perf: no scenario {name:?}; one of: {}",
            names.join(", ")
        ));
    };
    if !on_path("perf") {
        return Err("bench --perf needs perf (apt-get install linux-perf)".into());
    }
    let work = root().join("target/bench-run");
    let dir = out.map_or_else(|| work.clone(), Path::to_path_buf);
    for d in [&work, &dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let data = work.join(format!("perf-{name}.data"));
    let data = data.to_string_lossy();
    run(&mut env.command(s, &["perf", "record", "-g", "-o", &data])?)?;
    let report = Command::new("perf")
        .args([
            "report",
            "-i",
            &data,
            "--stdio",
            "--no-children",
            "-g",
            "none",
        ])
        .args(["--sort", "dso,symbol", "--percent-limit", "0.5"])
        .output()
        .map_err(|e| format!("cannot run perf report: {e}"))?;
    if !report.status.success() {
        return Err(format!(
            "perf report failed: {}",
            String::from_utf8_lossy(&report.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&report.stdout);
    let file = dir.join(format!("profile-{name}.txt"));
    std::fs::write(&file, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    println!("{text}\nwrote {}", file.display());
    Ok(())
}
