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

/// An argument that does not convert keeps its position and the name the
/// function was called by, as mlua's and `luaL_argerror`'s messages do.
#[test]
fn a_bad_argument_names_its_position_and_the_function() {
    let lua = Lua::new();
    let watch =
        darksidesync_binding::function(&lua, |_, (_path, _f): (String, mlua::Function)| Ok(()))
            .unwrap();
    let lib = lua.create_table().unwrap();
    lib.set("watch", watch).unwrap();
    lua.globals().set("mylib", lib).unwrap();
    let e: String = lua
        .load("return select(2, pcall(function() mylib.watch('/tmp', nil) end))")
        .eval()
        .unwrap();
    assert_eq!(
        e,
        "bad argument #2 to 'watch': error converting Lua nil to function"
    );
    // Called as a method, the position counts from after self, as in
    // luaL_argerror.
    let on = darksidesync_binding::function(
        &lua,
        |_, (_this, _f): (mlua::Table, mlua::Function)| Ok(()),
    )
    .unwrap();
    lua.globals()
        .get::<mlua::Table>("mylib")
        .unwrap()
        .set("on", on)
        .unwrap();
    let e: String = lua
        .load("return select(2, pcall(function() mylib:on('x') end))")
        .eval()
        .unwrap();
    assert_eq!(
        e,
        "bad argument #1 to 'on': error converting Lua string to function"
    );
    // A bad self reads as such.
    let check =
        darksidesync_binding::function(&lua, |_, (_t, _n): (mlua::Table, i64)| Ok(())).unwrap();
    lua.load("getmetatable('').__index.check = ...")
        .call::<()>(check)
        .unwrap();
    let e: String = lua
        .load("return select(2, pcall(function() local _ = ('s'):check(1) end))")
        .eval()
        .unwrap();
    assert_eq!(
        e,
        "calling 'check' on bad self: error converting Lua string to table"
    );
}
