//! The xtask command line: help is not an error, an unknown task is one line.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

#[test]
fn help_prints_usage_to_stdout_and_exits_0() {
    for args in [&["--help"][..], &["help"], &["-h"], &[]] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with("usage: cargo xtask <task>"),
            "{args:?}: {stdout}"
        );
        assert!(stdout.contains("\n  test "), "{args:?}: {stdout}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn an_unknown_task_exits_2_with_one_line() {
    let out = xtask(&["bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "xtask: unknown task \"bogus\"; try cargo xtask --help\n"
    );
}
