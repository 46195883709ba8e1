//! `LuaCallback`: plain values posted to a kept Lua function, which
//! darksidesync calls itself; and when the function is let go.

use darksidesync_binding::{ArgTable, Dss, Error, LibId, LuaCallback};
use mlua::{Function, Lua, Table, Value};

fn open(lua: &Lua) -> Table {
    darksidesync::open(lua).unwrap()
}

fn dispatch(m: &Table) -> i64 {
    m.get::<Function>("dispatch").unwrap().call(()).unwrap()
}

/// A function that appends a description of its arguments to `log`.
fn logger(lua: &Lua) -> Function {
    lua.load(
        r##"
        log = {}
        return function(...)
          local parts = { select("#", ...) }
          for i = 1, select("#", ...) do
            local v = select(i, ...)
            parts[#parts + 1] = math.type(v) or type(v)
            parts[#parts + 1] = tostring(v)
          end
          log[#log + 1] = table.concat(parts, " ")
        end
        "##,
    )
    .eval()
    .unwrap()
}

fn log(lua: &Lua) -> Vec<String> {
    lua.globals().get::<Vec<String>>("log").unwrap()
}

/// Whether the function last stored in `weak.f` is still referenced
/// (after mlua let go of released registry slots and a full collection).
fn still_referenced(lua: &Lua) -> bool {
    lua.expire_registry_values();
    lua.gc_collect().unwrap();
    lua.gc_collect().unwrap();
    let weak: Table = lua.globals().get("weak").unwrap();
    !matches!(weak.get::<Value>("f").unwrap(), Value::Nil)
}

fn watched(lua: &Lua, f: &Function) {
    let weak: Table = lua
        .load("weak = setmetatable({}, { __mode = 'v' }) return weak")
        .eval()
        .unwrap();
    weak.set("f", f.clone()).unwrap();
}

#[test]
fn values_arrive_in_order_with_their_types_among_other_posts() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let dss = Dss::register(&lua, &ID, "values").unwrap();
    let cb = dss.callback(&lua, logger(&lua)).unwrap();
    std::thread::spawn({
        let dss = dss.clone();
        move || {
            cb.post(7i64).unwrap(); // packed in the item
            cb.post(-(1i64 << 40)).unwrap(); // too wide to pack: boxed
            dss.post(|lua| lua.load("log[#log + 1] = 'closure'").exec())
                .unwrap();
            cb.post(true).unwrap();
            cb.post(-3i32).unwrap();
            cb.post(u32::MAX).unwrap();
            cb.post(()).unwrap();
            cb.post(2.5f64).unwrap();
            cb.post(String::from("text")).unwrap();
            cb.post((1i64, "two", false, 4.0f64)).unwrap();
            cb.post((9i64,)).unwrap();
        }
    })
    .join()
    .unwrap();
    assert_eq!(dispatch(&m), 11);
    assert_eq!(
        log(&lua),
        [
            "1 integer 7",
            "1 integer -1099511627776",
            "closure",
            "1 boolean true",
            "1 integer -3",
            "1 integer 4294967295",
            "0",
            "1 float 2.5",
            "1 string text",
            "4 integer 1 string two boolean false float 4.0",
            "1 integer 9",
        ]
    );
}

#[test]
fn errors_go_to_the_error_handler_and_poll_hands_out_the_call() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let failing: Function = lua
        .load("function(v) error({ code = v }) end")
        .eval()
        .unwrap();
    lua.load("seen = nil").exec().unwrap();
    m.get::<Function>("seterrorhandler")
        .unwrap()
        .call::<()>(
            lua.load("function(e) seen = e.code end")
                .eval::<Function>()
                .unwrap(),
        )
        .unwrap();
    let dss = Dss::register(&lua, &ID, "errors").unwrap();
    let cb = dss.callback(&lua, failing.clone()).unwrap();
    let keep = cb.clone();
    std::thread::spawn(move || {
        cb.post(7i64).unwrap();
        cb.post((8i64, "x")).unwrap();
    })
    .join()
    .unwrap();
    let one: i64 = m.get::<Function>("dispatch").unwrap().call(1).unwrap();
    assert_eq!(one, 1);
    assert_eq!(lua.globals().get::<i64>("seen").unwrap(), 7);
    // poll() returns the function and the values to its caller.
    let (n, f, args): (i64, Function, Table) = m.get::<Function>("poll").unwrap().call(()).unwrap();
    assert_eq!(n, 0, "nothing left after this one");
    assert_eq!(f, failing);
    assert_eq!(args.get::<i64>("n").unwrap(), 2);
    assert_eq!(args.get::<i64>(1).unwrap(), 8);
    assert_eq!(args.get::<String>(2).unwrap(), "x");
    drop(keep);
}

#[test]
fn the_function_is_let_go_after_the_last_clone_and_the_posts_before_it() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let f = logger(&lua);
    watched(&lua, &f);
    let dss = Dss::register(&lua, &ID, "release").unwrap();
    let cb = dss.callback(&lua, f).unwrap();
    std::thread::spawn(move || {
        let other = cb.clone();
        cb.post(1i64).unwrap();
        other.post((2i64, "boxed")).unwrap();
        drop(cb);
        other.post(3i64).unwrap();
    })
    .join()
    .unwrap();
    assert!(still_referenced(&lua), "posts are queued");
    assert_eq!(dispatch(&m), 3, "the release item is not counted");
    assert_eq!(
        log(&lua),
        ["1 integer 1", "2 integer 2 string boxed", "1 integer 3"]
    );
    assert!(!still_referenced(&lua), "released after the last post");
    let s = dss.stats().unwrap();
    assert_eq!((s.posted, s.ran), (4, 4), "the release counts: {s:?}");
}

#[test]
fn dropped_on_the_lua_thread_with_a_full_queue_the_function_stays_for_its_posts_until_the_next_post(
) {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    m.get::<Function>("setcapacity")
        .unwrap()
        .call::<()>(2)
        .unwrap();
    let f = logger(&lua);
    watched(&lua, &f);
    let dss = Dss::register(&lua, &ID, "deadlock").unwrap();
    let cb = dss.callback(&lua, f).unwrap();
    cb.post(1i64).unwrap();
    cb.post(2i64).unwrap();
    assert_eq!(cb.post(3i64), Err(Error::WouldDeadlock));
    assert_eq!(cb.try_post(3i64), Err(Error::Full));
    drop(cb); // the release is refused (full): kept for later
    assert!(still_referenced(&lua));
    assert_eq!(dispatch(&m), 2);
    assert_eq!(log(&lua), ["1 integer 1", "1 integer 2"]);
    assert!(still_referenced(&lua), "nothing released it yet");
    // The library's next post takes the release along.
    let other = dss.callback(&lua, logger(&lua)).unwrap();
    other.post(3i64).unwrap();
    assert!(still_referenced(&lua));
    assert_eq!(dispatch(&m), 1);
    assert!(!still_referenced(&lua));
}

#[test]
fn dropping_the_last_clone_on_a_full_queue_does_not_wait() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    m.get::<Function>("setcapacity")
        .unwrap()
        .call::<()>(1)
        .unwrap();
    let f = logger(&lua);
    watched(&lua, &f);
    let dss = Dss::register(&lua, &ID, "nowait").unwrap();
    let cb = dss.callback(&lua, f).unwrap();
    // Would hang here if the drop waited for room.
    std::thread::spawn(move || {
        cb.post(1i64).unwrap();
        drop(cb);
    })
    .join()
    .unwrap();
    assert_eq!(dispatch(&m), 1);
    assert!(still_referenced(&lua));
    // So does dropping another callback's last clone: both go.
    drop(dss.callback(&lua, logger(&lua)).unwrap());
    assert_eq!(dispatch(&m), 0, "release items are not counted");
    assert!(!still_referenced(&lua));
}

#[test]
fn unregister_discards_the_posts_and_lets_the_function_go() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let f = logger(&lua);
    watched(&lua, &f);
    let dss = Dss::register(&lua, &ID, "unreg").unwrap();
    let cb = dss.callback(&lua, f).unwrap();
    let cb2 = cb.clone();
    std::thread::spawn(move || {
        cb2.post(1i64).unwrap();
        cb2.post((2i64, 3i64)).unwrap();
    })
    .join()
    .unwrap();
    assert!(dss.unregister());
    assert_eq!(cb.post(4i64), Err(Error::Stale));
    drop(cb);
    assert_eq!(dispatch(&m), 0);
    assert!(log(&lua).is_empty());
    assert!(!still_referenced(&lua));
}

#[test]
fn a_closed_state_gives_closed() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    open(&lua);
    let dss = Dss::register(&lua, &ID, "closed").unwrap();
    let cb = dss.callback(&lua, logger(&lua)).unwrap();
    cb.post(1i64).unwrap();
    drop(lua);
    let r = std::thread::spawn(move || (cb.post(2i64), cb.post((3i64, "x"))))
        .join()
        .unwrap();
    assert_eq!(r, (Err(Error::Closed), Err(Error::Closed)));
}

#[test]
fn a_callback_is_made_in_the_state_the_library_registered_in() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    open(&lua);
    let other = Lua::new();
    open(&other);
    let dss = Dss::register(&lua, &ID, "where").unwrap();
    let f: Function = other.load("function() end").eval().unwrap();
    let err = dss.callback(&other, f).unwrap_err();
    assert!(err.to_string().contains("not the state"), "{err}");
    let ok: LuaCallback = dss
        .callback(&lua, lua.load("function() end").eval().unwrap())
        .unwrap();
    assert_eq!(ok.dss(), &dss);
}

/// A function that describes its arguments in `seen` as Lua sees them:
/// nil, byte strings (as their byte values), tables (fields sorted, then
/// the list with `#t`).
fn describer(lua: &Lua) -> Function {
    lua.load(
        r##"
        seen = {}
        local function show(v)
          if type(v) == "string" then
            return "s[" .. table.concat({ v:byte(1, -1) }, ",") .. "]"
          elseif type(v) == "table" then
            local keys, parts = {}, {}
            for k in pairs(v) do
              if type(k) == "string" then keys[#keys + 1] = k end
            end
            table.sort(keys)
            for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. show(v[k]) end
            for i = 1, #v do parts[#parts + 1] = show(v[i]) end
            return "{" .. table.concat(parts, " ") .. "}#" .. #v
          end
          return tostring(v)
        end
        return function(...)
          local parts = { select("#", ...) }
          for i = 1, select("#", ...) do parts[#parts + 1] = show((select(i, ...))) end
          seen[#seen + 1] = table.concat(parts, " ")
        end
        "##,
    )
    .eval()
    .unwrap()
}

#[test]
fn nil_byte_strings_paths_and_tables_arrive_as_lua_values() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let dss = Dss::register(&lua, &ID, "richer").unwrap();
    let cb = dss.callback(&lua, describer(&lua)).unwrap();
    std::thread::spawn(move || {
        cb.post((None::<i64>, Some(5i64), None::<&'static str>))
            .unwrap();
        let borrowed = [0u8, 255, 10].to_vec();
        cb.post(&borrowed[..]).unwrap(); // any lifetime: copied at the post
        cb.post(vec![0xc3u8, 0x28]).unwrap(); // not UTF-8
        cb.post(OsStr::from_bytes(b"/tmp/\xff")).unwrap();
        cb.post(PathBuf::from("/a")).unwrap();
        cb.post((u64::MAX >> 1, 1.5f32)).unwrap();
        let event = ArgTable::new()
            .field("kind", "create")
            .field("path", OsStr::from_bytes(b"\xfe"))
            .field("gone", None::<bool>)
            .field("paths", ArgTable::list(["a", "b"]))
            .item(1i64)
            .item(ArgTable::new().field("deep", true));
        cb.post((event, "after")).unwrap();
        cb.post(["x", "y", "z"].into_iter().collect::<ArgTable>())
            .unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(dispatch(&m), 8);
    let seen = lua.globals().get::<Vec<String>>("seen").unwrap();
    assert_eq!(
        seen,
        [
            "3 nil 5 nil",
            "1 s[0,255,10]",
            "1 s[195,40]",
            "1 s[47,116,109,112,47,255]",
            "1 s[47,97]",
            "2 9223372036854775807 1.5",
            "2 {kind=s[99,114,101,97,116,101] path=s[254] paths={s[97] s[98]}#2 1 {deep=true}#0}#2 s[97,102,116,101,114]",
            "1 {s[120] s[121] s[122]}#3",
        ]
    );
}

#[test]
fn what_cannot_cross_is_refused_at_the_sender_and_nothing_is_queued() {
    static ID: LibId = LibId::new();
    let lua = Lua::new();
    let m = open(&lua);
    let dss = Dss::register(&lua, &ID, "refused").unwrap();
    let cb = dss.callback(&lua, describer(&lua)).unwrap();
    let too_big = cb.post((1i64, u64::MAX)).unwrap_err();
    assert_eq!(
        too_big,
        Error::Unsupported("integer 18446744073709551615 does not fit a Lua integer (i64)".into())
    );
    assert!(
        too_big
            .to_string()
            .starts_with("cannot post this value to Lua: "),
        "{too_big}"
    );
    let in_table = cb.post(ArgTable::new().field("n", usize::MAX).field("ok", 1i64));
    assert!(
        matches!(in_table, Err(Error::Unsupported(ref m)) if m.contains("does not fit")),
        "{in_table:?}"
    );
    let deep = (1..ArgTable::MAX_DEPTH).fold(ArgTable::new(), |t, _| ArgTable::new().item(t));
    cb.post(deep.clone()).unwrap(); // MAX_DEPTH levels cross
    let deeper = cb.post(ArgTable::new().item(deep));
    assert!(
        matches!(deeper, Err(Error::Unsupported(ref m)) if m.contains("nested deeper")),
        "{deeper:?}"
    );
    assert_eq!(dispatch(&m), 1);
    assert_eq!(lua.globals().get::<Vec<String>>("seen").unwrap().len(), 1);
}
