//! Running one scenario and reading its figures; medians of rounds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::fixtures::Fixtures;
use super::scenarios::{Program, Scenario};
use crate::cmd::Result;
use crate::module::LuaVersion;
use crate::root;

/// The figures of one run: the `key=value` pairs of its `RESULT` line
/// (non-numeric values dropped).
pub(super) type Figures = BTreeMap<String, f64>;

/// How many crashed runs of a peer are retried (each costs well under a
/// second; a crash is luv's own race, counted in the results).
const PEER_RETRIES: f64 = 20.0;

pub(super) struct Env<'a> {
    pub(super) fixtures: &'a Fixtures,
    /// The Lua of the peers, the many-states C host and unprefixed rows.
    pub(super) lua54: LuaVersion,
    /// How long one scenario may run before it counts as hung (a lost
    /// item leaves a dispatch loop waiting forever). Not a speed bound.
    pub(super) watchdog: Duration,
}

impl Env<'_> {
    /// Points Lua's module search at `lua`'s fixtures, and only there
    /// (Debian's luv and cqueues stay reachable through the defaults).
    fn lua_env(&self, cmd: &mut Command, lua: LuaVersion) -> Result {
        let lib = self.fixtures.lib(lua)?;
        cmd.env(
            "LUA_PATH",
            format!("{0}/?.lua;{0}/?/init.lua;;", lib.display()),
        )
        .env("LUA_CPATH", format!("{}/?.so;;", lib.display()));
        for v in ["LUA_PATH_5_4", "LUA_CPATH_5_4", "LUA_INIT", "LUA_INIT_5_4"] {
            cmd.env_remove(v);
        }
        Ok(())
    }

    /// The peers and event loops come from Debian's lua-luv and
    /// lua-cqueues; without them the run fails rather than reporting
    /// figures without them.
    pub(super) fn check_peers(&self) -> Result {
        let lua = self.lua54;
        for (module, pkg) in [("luv", "lua-luv"), ("cqueues", "lua-cqueues")] {
            let mut cmd = Command::new(lua.interpreter);
            self.lua_env(&mut cmd, lua)?;
            let ok = cmd
                .args(["-e", &format!("require '{module}'")])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!(
                    "{} cannot require {module} (Debian package {pkg}; `cargo xtask deps`)",
                    lua.interpreter
                ));
            }
        }
        Ok(())
    }

    /// Runs a scenario; a peer's run that crashes (luv's `async:send`
    /// segfaults now and then under load, its own race) is retried up to
    /// `PEER_RETRIES` times and the crashes are reported as the figure
    /// `crashes`, so a flaky peer neither hides nor fails our own figures.
    /// Our own scenarios are never retried: a crash or a lost item fails
    /// the run.
    pub(super) fn run_peer_tolerant(&self, s: &Scenario) -> Result<Figures> {
        if !s.name.starts_with("luv_") {
            return self.run(s);
        }
        let mut crashes = 0.0;
        loop {
            match self.run(s) {
                Ok(mut f) => {
                    f.insert("crashes".into(), crashes);
                    return Ok(f);
                }
                Err(e) if crashes < PEER_RETRIES => {
                    eprintln!(
                        "bench: peer run crashed, retrying: {}",
                        e.lines().next().unwrap_or("")
                    );
                    crashes += 1.0;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The command line of scenario `s`, prefixed by `wrapper` (e.g.
    /// `perf record ...`) when it is not empty.
    pub(super) fn command(&self, s: &Scenario, wrapper: &[&str]) -> Result<Command> {
        let (program, first_args, lua): (PathBuf, Vec<PathBuf>, LuaVersion) = match s.program {
            Program::Lua(lua) => (
                lua.interpreter.into(),
                vec![root().join("bench/lua/scenarios.lua")],
                lua,
            ),
            Program::ManyStatesInternal => (self.fixtures.rust_host.clone(), vec![], self.lua54),
            Program::ManyStatesC => (
                self.fixtures.c_host.clone(),
                vec![
                    self.fixtures.lib(self.lua54)?.to_path_buf(),
                    root().join("bench/lua/state.lua"),
                ],
                self.lua54,
            ),
        };
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        self.lua_env(&mut cmd, lua)?;
        cmd.args(first_args).args(&s.args).current_dir(root());
        Ok(cmd)
    }

    fn run(&self, s: &Scenario) -> Result<Figures> {
        let mut cmd = self.command(s, &[])?;
        let (status, stdout, stderr) =
            watched(&mut cmd, self.watchdog).map_err(|e| format!("scenario {}: {e}", s.name))?;
        if !status.is_some_and(|s| s.success()) {
            let why = match status {
                Some(st) => format!("failed ({st})"),
                None => format!(
                    "hung (killed after {} s; an item lost?)",
                    self.watchdog.as_secs()
                ),
            };
            return Err(format!("scenario {} {why}:\n{stdout}{stderr}", s.name));
        }
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .ok_or_else(|| format!("scenario {} printed no RESULT line:\n{stdout}", s.name))?;
        Ok(line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse::<f64>().ok()?)))
            .collect())
    }
}

/// Runs `cmd` with its output in files (no pipe to fill up), killing it
/// after `limit`. Returns its status (`None`: killed), stdout and stderr.
fn watched(cmd: &mut Command, limit: Duration) -> Result<(Option<ExitStatus>, String, String)> {
    let dir = root().join("target/bench-logs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (out_path, err_path) = (dir.join("last.stdout"), dir.join("last.stderr"));
    let create = |p: &std::path::Path| {
        File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    cmd.stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    Ok((status, read(&out_path), read(&err_path)))
}

/// The median of every figure over the rounds.
pub(super) fn median(runs: &[Figures]) -> Figures {
    let mut out = Figures::new();
    for key in runs[0].keys() {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(key).copied()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        out.insert(key.clone(), v[v.len() / 2]);
    }
    out
}

/// Every run's figures, one line per run.
pub(super) fn raw(runs: &BTreeMap<String, Vec<Figures>>) -> String {
    let mut s = String::new();
    for (name, list) in runs {
        for (i, f) in list.iter().enumerate() {
            let kv: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "{name} #{} {}", i + 1, kv.join(" "));
        }
    }
    s
}
