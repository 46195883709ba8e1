//! `darksidesync_binding::function`: errors reach Lua as plain strings.

use mlua::Lua;

#[test]
fn errors_reach_lua_as_the_plain_message() {
    let lua = Lua::new();
    let f = darksidesync_binding::function(&lua, |_, n: f64| {
        if n < 0.0 {
            return Err(mlua::Error::runtime(format!(
                "mylib.wait: seconds must be non-negative, got {n}"
            )));
        }
        Ok((n * 2.0, "ok"))
    })
    .unwrap();
    lua.globals().set("f", f).unwrap();
    let (ok, e): (bool, mlua::Value) = lua.load("return pcall(f, -1)").eval().unwrap();
    assert!(!ok);
    assert_eq!(
        e.as_string().map(|s| s.to_string_lossy()).as_deref(),
        Some("mylib.wait: seconds must be non-negative, got -1")
    );
    let (a, b): (f64, String) = lua.load("return f(2)").eval().unwrap();
    assert_eq!((a, b.as_str()), (4.0, "ok"));
    let (ok, e): (bool, String) = lua.load("return pcall(f, {})").eval().unwrap();
    assert!(!ok);
    assert!(e.contains("table"), "{e}");
}
