//! The Rust definitions against the header: `layout.c`, compiled with the
//! system C compiler (`$CC`, else `cc`) against `include/darksidesync.h`,
//! prints every size, field offset, code and registry name; they must be
//! what this crate says, line for line. A missing compiler fails the test.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use darksidesync_sys::{v1, v2, REGISTRY_NAME, VERSION, VERSION_KEY};

/// Compiles and runs `layout.c` once per test process.
fn from_c() -> BTreeMap<String, String> {
    static ONCE: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(compile_and_run).clone()
}

fn compile_and_run() -> BTreeMap<String, String> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let include = here.join("../../include");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dss-layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(&include)
        .arg(here.join("tests/layout.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (install gcc): {e}"));
    assert!(
        status.success(),
        "layout.c did not compile against the header"
    );
    let run = Command::new(&out).output().expect("run the layout program");
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .expect("ASCII output")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').expect("name<TAB>value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn from_rust() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    put("DSS_REGISTRY_NAME", REGISTRY_NAME.into());
    put("DSS_VERSION_KEY", VERSION_KEY.into());
    put("DSS_VERSION", VERSION.into());
    put("DSS_API_1v0_KEY", v1::API_KEY.into());
    put("DSS_API_2v0_KEY", v2::API_KEY.into());

    put("sizeof DSS_api_1v0_t", size_of::<v1::Api>().to_string());
    macro_rules! off {
        ($c:literal, $t:ty, $f:ident) => {
            put(
                concat!("offsetof ", $c, ".", stringify!($f)),
                offset_of!($t, $f).to_string(),
            )
        };
    }
    off!("DSS_api_1v0_t", v1::Api, version);
    off!("DSS_api_1v0_t", v1::Api, reg);
    off!("DSS_api_1v0_t", v1::Api, getutilid);
    off!("DSS_api_1v0_t", v1::Api, deliver);
    off!("DSS_api_1v0_t", v1::Api, unreg);
    for (k, v) in [
        ("DSS_SUCCESS", v1::SUCCESS),
        ("DSS_ERR_UDP_SEND_FAILED", v1::ERR_UDP_SEND_FAILED),
        ("DSS_ERR_INVALID_UTILID", v1::ERR_INVALID_UTILID),
        ("DSS_ERR_NOT_STARTED", v1::ERR_NOT_STARTED),
        ("DSS_ERR_NO_CANCEL_PROVIDED", v1::ERR_NO_CANCEL_PROVIDED),
        ("DSS_ERR_OUT_OF_MEMORY", v1::ERR_OUT_OF_MEMORY),
        ("DSS_ERR_NO_DECODE_PROVIDED", v1::ERR_NO_DECODE_PROVIDED),
        ("DSS_ERR_NO_GLOBALS", v1::ERR_NO_GLOBALS),
        ("DSS_ERR_UNKNOWN_LIB", v1::ERR_UNKNOWN_LIB),
        ("DSS_ERR_ALREADY_REGISTERED", v1::ERR_ALREADY_REGISTERED),
        ("DSS_ERR_WOULD_DEADLOCK", v1::ERR_WOULD_DEADLOCK),
    ] {
        put(k, v.to_string());
    }

    put("sizeof dss2_handle", size_of::<v2::Handle>().to_string());
    put("sizeof dss_api_2v0_t", size_of::<v2::Api>().to_string());
    off!("dss_api_2v0_t", v2::Api, size);
    off!("dss_api_2v0_t", v2::Api, version);
    off!("dss_api_2v0_t", v2::Api, reg);
    off!("dss_api_2v0_t", v2::Api, getid);
    off!("dss_api_2v0_t", v2::Api, unreg);
    off!("dss_api_2v0_t", v2::Api, post);
    off!("dss_api_2v0_t", v2::Api, call);
    off!("dss_api_2v0_t", v2::Api, hold);
    off!("dss_api_2v0_t", v2::Api, release);
    off!("dss_api_2v0_t", v2::Api, stats);
    off!("dss_api_2v0_t", v2::Api, status);
    off!("dss_api_2v0_t", v2::Api, strerror);
    off!("dss_api_2v0_t", v2::Api, waits);
    off!("dss_api_2v0_t", v2::Api, post_inline);
    off!("dss_api_2v0_t", v2::Api, setfinalizer);
    put("sizeof dss2_stats_t", size_of::<v2::Stats>().to_string());
    off!("dss2_stats_t", v2::Stats, size);
    off!("dss2_stats_t", v2::Stats, posted);
    off!("dss2_stats_t", v2::Stats, ran);
    off!("dss2_stats_t", v2::Stats, cancelled);
    off!("dss2_stats_t", v2::Stats, refused);
    off!("dss2_stats_t", v2::Stats, replies);
    off!("dss2_stats_t", v2::Stats, errors);
    off!("dss2_stats_t", v2::Stats, timeouts);
    off!("dss2_stats_t", v2::Stats, keep_alive);
    put("sizeof dss2_waits_t", size_of::<v2::Waits>().to_string());
    off!("dss2_waits_t", v2::Waits, size);
    off!("dss2_waits_t", v2::Waits, enabled);
    off!("dss2_waits_t", v2::Waits, count);
    off!("dss2_waits_t", v2::Waits, p50_ns);
    off!("dss2_waits_t", v2::Waits, p99_ns);
    off!("dss2_waits_t", v2::Waits, max_ns);
    off!("dss2_waits_t", v2::Waits, total_ns);
    for (k, v) in [
        ("DSS2_OK", v2::OK),
        ("DSS2_EINVAL", v2::EINVAL),
        ("DSS2_ESTALE", v2::ESTALE),
        ("DSS2_ECLOSED", v2::ECLOSED),
        ("DSS2_ENOTSTARTED", v2::ENOTSTARTED),
        ("DSS2_EALREADY", v2::EALREADY),
        ("DSS2_EUNKNOWNLIB", v2::EUNKNOWNLIB),
        ("DSS2_ENOMEM", v2::ENOMEM),
        ("DSS2_EFULL", v2::EFULL),
        ("DSS2_ETIMEDOUT", v2::ETIMEDOUT),
        ("DSS2_EWOULDDEADLOCK", v2::EWOULDDEADLOCK),
        ("DSS2_ECANCELLED", v2::ECANCELLED),
        ("DSS2_EHANDLER", v2::EHANDLER),
        ("DSS2_EINTERNAL", v2::EINTERNAL),
        ("DSS2_NOWAIT", v2::NOWAIT),
        ("DSS2_RAN", v2::RAN),
        ("DSS2_INLINE_MAX", v2::INLINE_MAX as i32),
        ("DSS2_WAITS_STATE", v2::WAITS_STATE),
    ] {
        put(k, v.to_string());
    }
    m
}

#[test]
fn rust_definitions_match_the_header() {
    let c = from_c();
    let rust = from_rust();
    let differ: Vec<String> = c
        .keys()
        .chain(rust.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| c.get(*k) != rust.get(*k))
        .map(|k| format!("{k}: header {:?}, Rust {:?}", c.get(k), rust.get(k)))
        .collect();
    assert!(differ.is_empty(), "layout drift:\n{}", differ.join("\n"));
    assert!(c.len() > 60, "the C program printed {} lines", c.len());
}

#[test]
fn a_changed_field_would_be_caught() {
    // The comparison is not vacuous: a wrong offset differs.
    let c = from_c();
    assert_eq!(
        c.get("offsetof dss2_stats_t.keep_alive")
            .map(String::as_str),
        Some(offset_of!(v2::Stats, keep_alive).to_string().as_str())
    );
    assert_ne!(
        offset_of!(v2::Stats, keep_alive),
        offset_of!(v2::Stats, timeouts)
    );
}

/// The NUL-terminated forms say the same as the `&str` ones (each name is
/// written twice in the crate, side by side; this keeps them one).
#[test]
fn c_strings_match_their_str_forms() {
    assert_eq!(
        darksidesync_sys::REGISTRY_NAME_C.to_str(),
        Ok(REGISTRY_NAME)
    );
    assert_eq!(v1::VERSION_C.to_str(), Ok(v1::VERSION));
    assert_eq!(v2::VERSION_C.to_str(), Ok(v2::VERSION));
}
