//! The command line, read the way the stock `lua5.4` reads its own:
//! options (`-e`, `-l`, `-v`, `-W`, ...) up to the script, then the script's
//! arguments. See `doc/host.md`.

use std::ffi::OsString;

/// What to do before the script, in command-line order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `-e stat`: run the string `stat`.
    Exec(String),
    /// `-l mod` / `-l g=mod`: `g = require "mod"` (`g` defaults to `mod`).
    Require { global: String, module: String },
    /// `-W`: turn warnings on.
    Warnings,
}

/// A parsed command line.
#[derive(Debug, Default)]
pub struct CommandLine {
    /// `-e`, `-l` and `-W`, in order.
    pub actions: Vec<Action>,
    /// `-v`/`-V`/`--version` was given.
    pub version: bool,
    /// `-E`: ignore the `LUA_*` environment variables.
    pub ignore_env: bool,
    /// The script: a path, or `-` for standard input. `None` when the
    /// command line holds only options.
    pub script: Option<OsString>,
    /// Every argument before the script, the program name first: `arg[-n]`
    /// .. `arg[-1]` (without a script: `arg[0]`.., as in `lua5.4`).
    pub before: Vec<String>,
    /// The script's arguments: `arg[1]`.. and the chunk's `...`.
    pub args: Vec<OsString>,
}

/// How parsing ended, when it did not give a program to run.
#[derive(Debug, PartialEq)]
pub enum Stop {
    /// `-h`/`--help`.
    Help,
    /// A usage error (one line, without the program name).
    Usage(String),
}

/// Reads `argv` (the program name first).
pub fn parse(argv: Vec<OsString>) -> Result<CommandLine, Stop> {
    let mut cl = CommandLine::default();
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy().into_owned();
        if a == "-" || !a.starts_with('-') {
            cl.script = Some(argv[i].clone());
            break;
        }
        i += 1;
        match a.as_str() {
            "--" => {
                if i < argv.len() {
                    cl.script = Some(argv[i].clone());
                }
                break;
            }
            "-h" | "--help" => return Err(Stop::Help),
            "-v" | "-V" | "--version" => cl.version = true,
            "-W" => cl.actions.push(Action::Warnings),
            "-E" => cl.ignore_env = true,
            "-i" => {
                return Err(Stop::Usage(
                    "-i (interactive mode) is not supported: the host runs an event loop after \
                     the script"
                        .into(),
                ))
            }
            _ if a.starts_with("-e") || a.starts_with("-l") => {
                // The value is glued (`-eprint(1)`) or the next argument.
                let value = if a.len() > 2 {
                    a[2..].to_string()
                } else if i < argv.len() {
                    i += 1;
                    argv[i - 1].to_string_lossy().into_owned()
                } else {
                    return Err(Stop::Usage(format!("'{}' needs an argument", &a[..2])));
                };
                cl.actions.push(if a.starts_with("-e") {
                    Action::Exec(value)
                } else {
                    match value.split_once('=') {
                        Some((g, m)) => Action::Require {
                            global: g.into(),
                            module: m.into(),
                        },
                        None => Action::Require {
                            global: value.clone(),
                            module: value,
                        },
                    }
                });
            }
            _ => return Err(Stop::Usage(format!("unknown option {a}"))),
        }
    }
    let split = if cl.script.is_some() { i } else { argv.len() };
    cl.before = argv[..split]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if cl.script.is_some() {
        cl.args = argv[split + 1..].to_vec();
    }
    Ok(cl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("host")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn options_run_in_order_before_the_script() {
        let cl = parse(argv(&[
            "-e", "x=1", "-lstring", "-l", "j=json", "s.lua", "-e", "a",
        ]))
        .unwrap();
        assert_eq!(
            cl.actions,
            [
                Action::Exec("x=1".into()),
                Action::Require {
                    global: "string".into(),
                    module: "string".into()
                },
                Action::Require {
                    global: "j".into(),
                    module: "json".into()
                },
            ]
        );
        assert_eq!(cl.script, Some("s.lua".into()));
        assert_eq!(cl.before, ["host", "-e", "x=1", "-lstring", "-l", "j=json"]);
        assert_eq!(cl.args, [OsString::from("-e"), OsString::from("a")]);
    }

    #[test]
    fn double_dash_and_stdin_end_the_options() {
        let cl = parse(argv(&["--", "-x.lua", "1"])).unwrap();
        assert_eq!(cl.script, Some("-x.lua".into()));
        assert_eq!(cl.before, ["host", "--"]);
        let cl = parse(argv(&["-", "1"])).unwrap();
        assert_eq!(cl.script, Some("-".into()));
        assert_eq!(cl.args, [OsString::from("1")]);
    }

    #[test]
    fn without_a_script_every_argument_is_before_it() {
        let cl = parse(argv(&["-e", "print(1)"])).unwrap();
        assert_eq!(cl.script, None);
        assert_eq!(cl.before, ["host", "-e", "print(1)"]);
    }

    #[test]
    fn usage_errors_are_one_line() {
        assert_eq!(
            parse(argv(&["-x"])).unwrap_err(),
            Stop::Usage("unknown option -x".into())
        );
        assert_eq!(
            parse(argv(&["-e"])).unwrap_err(),
            Stop::Usage("'-e' needs an argument".into())
        );
        assert_eq!(parse(argv(&["-h", "-x"])).unwrap_err(), Stop::Help);
    }
}
