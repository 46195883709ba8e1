//! `cargo xtask drift`: what is documented or declared against what is
//! built, checked on the real artefacts rather than by reading Rust:
//! * the Lua module is built and loaded in `lua5.4`, and the keys of its
//!   table must be exactly the names `doc/lua-api.md` documents (the one
//!   source of the HTML reference, see `lua_doc.rs`);
//! * one version: the crates' version is the module's `_VERSION` and
//!   CHANGELOG.md's newest entry; the registry's `Version` is the header's;
//! * a C program generated from `include/darksidesync.h` loads the module
//!   and checks that every function member of the 1v0 and 2v0 API structs
//!   it publishes is filled in;
//! * README.md's performance table is the summary of
//!   `bench/results/results.md` (written by `cargo xtask bench`).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::cmd::{cargo, output, run, Result};
use crate::hygiene::module_target;
use crate::{lua_doc, module, root};

/// `cargo xtask drift`: the Lua exports against the reference, the C header
/// against the module.
pub fn main() -> Result {
    crate::bench::check_readme()?;
    let lua = module::version("5.4")?;
    let so = module::build(lua, &module_target(lua), "dev")?;
    let dir = root().join("target/drift");
    module::install(&so, &dir)?;
    lua_exports(&dir)?;
    versions(&dir)?;
    header_functions(&dir)?;
    eprintln!("drift: the Lua reference, the header, the module and README's figures agree");
    Ok(())
}

/// One version source: the workspace version is the module's `_VERSION`
/// and the newest CHANGELOG entry; the registry's `Version` is the header's
/// `DSS_VERSION` (DarkSideSync 1.0's value, on purpose not ours).
fn versions(dir: &Path) -> Result {
    let listing = output(
        Command::new("lua5.4")
            .args([
                "-e",
                "local m = require 'darksidesync'; print(m._VERSION); \
                 print(debug.getregistry()['DSS.DarkSideSync'].Version)",
            ])
            .env("LUA_CPATH", dir.join("?.so"))
            .env("LUA_PATH", dir.join("?.lua")),
    )?;
    let mut lines = listing.lines();
    let (lua_version, registry) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let json = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let meta: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("cargo metadata: {e}"))?;
    let version = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "darksidesync-lua"))
        .and_then(|p| p["version"].as_str())
        .ok_or("cargo metadata: no darksidesync-lua version")?
        .to_string();
    if lua_version != format!("darksidesync {version}") {
        return Err(format!(
            "_VERSION is {lua_version:?}, the crates are {version}"
        ));
    }
    let changelog = fs::read_to_string(root().join("CHANGELOG.md"))
        .map_err(|e| format!("cannot read CHANGELOG.md: {e}"))?;
    let newest = changelog
        .lines()
        .find(|l| l.starts_with("## ["))
        .unwrap_or("(none)");
    if !newest.starts_with(&format!("## [{version}]")) {
        return Err(format!(
            "CHANGELOG.md's newest entry is {newest:?}, the crates are {version}"
        ));
    }
    let header = fs::read_to_string(root().join("include/darksidesync.h"))
        .map_err(|e| format!("cannot read include/darksidesync.h: {e}"))?;
    let declared = header
        .lines()
        .find_map(|l| l.strip_prefix("#define DSS_VERSION "))
        .map(|v| v.trim().trim_matches('"'))
        .ok_or("darksidesync.h: no #define DSS_VERSION")?;
    if registry != declared {
        return Err(format!(
            "the registry's Version is {registry:?}, the header says {declared:?}"
        ));
    }
    Ok(())
}

fn lua_exports(dir: &Path) -> Result {
    let listing = output(
        Command::new("lua5.4")
            .args([
                "-e",
                "for k in pairs(require 'darksidesync') do print(k) end",
            ])
            .env("LUA_CPATH", dir.join("?.so"))
            .env("LUA_PATH", dir.join("?.lua")),
    )?;
    let exported: BTreeSet<String> = listing.lines().map(str::to_string).collect();
    let documented = lua_doc::module_names(&lua_doc::source()?);
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    let absent: Vec<_> = documented.difference(&exported).collect();
    if undocumented.is_empty() && absent.is_empty() {
        return Ok(());
    }
    Err(format!(
        "doc/lua-api.md and the module disagree: exported but not documented {undocumented:?}; \
         documented but not exported {absent:?}"
    ))
}

/// The function-pointer members of `struct_name`'s body in `header`: the
/// members whose type is a typedef declared as `typedef ... (*name)(...)`.
pub fn function_members(header: &str, struct_name: &str) -> Result<Vec<String>> {
    let fn_types: BTreeSet<&str> = header
        .match_indices("(*")
        .filter(|(i, _)| header[..*i].rfind("typedef") > header[..*i].rfind(';'))
        .filter_map(|(i, _)| {
            let rest = &header[i + 2..];
            rest.find(')').map(|end| rest[..end].trim())
        })
        .collect();
    let start = header
        .find(&format!("typedef struct {struct_name} {{"))
        .ok_or_else(|| format!("darksidesync.h: no `typedef struct {struct_name} {{`"))?;
    let body = &header[start..];
    let body = &body[body.find('{').unwrap_or(0) + 1..body.find('}').unwrap_or(body.len())];
    let mut members = Vec::new();
    for decl in body.split(';') {
        // Drop comments, then read `type name`.
        let code: String = decl
            .lines()
            .map(|l| l.split("/*").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let words: Vec<&str> = code.split_whitespace().collect();
        if let [.., ty, name] = words[..] {
            if fn_types.contains(ty) {
                members.push(name.to_string());
            }
        }
    }
    if members.is_empty() {
        return Err(format!(
            "darksidesync.h: no function members in {struct_name}"
        ));
    }
    Ok(members)
}

/// Compiles and runs a C program, generated from the header, that checks
/// every function member of both API structs the module publishes.
fn header_functions(dir: &Path) -> Result {
    let header = fs::read_to_string(root().join("include/darksidesync.h"))
        .map_err(|e| format!("cannot read include/darksidesync.h: {e}"))?;
    let mut checks = String::new();
    for (key, ty, strct) in [
        ("DSS_API_1v0_KEY", "DSS_api_1v0_t", "DSS_api_1v0_s"),
        ("DSS_API_2v0_KEY", "dss_api_2v0_t", "dss_api_2v0"),
    ] {
        checks += &format!(
            "  {{\n    const {ty} *api = published(L, {key});\n    \
             if (!api) {{ printf(\"%s is not published\\n\", {key}); bad++; }}\n    else {{\n"
        );
        for m in function_members(&header, strct)? {
            // 2v0 is extensible: a member past the published size is missing too.
            let present = if ty == "dss_api_2v0_t" {
                format!("DSS2_HAS(api, {m}) && api->{m}")
            } else {
                format!("api->{m}")
            };
            checks += &format!(
                "      if (!({present})) {{ printf(\"{ty}.{m} has no implementation\\n\"); bad++; }}\n"
            );
        }
        checks += "    }\n  }\n";
    }
    let program = format!(
        "/* Generated by `cargo xtask drift` from include/darksidesync.h. */\n\
         #include <stddef.h>\n#include <stdio.h>\n#include <lua.h>\n#include <lualib.h>\n#include <lauxlib.h>\n\
         #include \"darksidesync.h\"\n\n\
         static const void *published(lua_State *L, const char *key) {{\n  \
         const void *p;\n  lua_getfield(L, LUA_REGISTRYINDEX, DSS_REGISTRY_NAME);\n  \
         lua_getfield(L, -1, key);\n  p = lua_touserdata(L, -1);\n  lua_pop(L, 2);\n  \
         return p;\n}}\n\n\
         int main(void) {{\n  int bad = 0;\n  lua_State *L = luaL_newstate();\n  \
         luaL_openlibs(L);\n  \
         if (luaL_dostring(L, \"require 'darksidesync'\")) {{\n    \
         printf(\"%s\\n\", lua_tostring(L, -1));\n    return 1;\n  }}\n\
         {checks}  lua_close(L);\n  return bad ? 1 : 0;\n}}\n"
    );
    let src = dir.join("header_functions.c");
    let exe = dir.join("header_functions");
    fs::write(&src, program).map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    run(Command::new("gcc")
        .args([
            "-std=c99",
            "-Wall",
            "-Werror",
            "-I/usr/include/lua5.4",
            "-Iinclude",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-llua5.4"))?;
    let report = Command::new(&exe)
        .env("LUA_CPATH", dir.join("?.so"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if report.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the module does not implement the header: {}",
            String::from_utf8_lossy(&report.stdout).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::function_members;

    #[test]
    fn reads_function_members_and_skips_data_members() {
        let h = "typedef int (*a_fn)(int x);\ntypedef void *(*b_t)(void);\n\
                 typedef struct s {\n  size_t size; /* first */\n  const char *version;\n  \
                 a_fn a;\n  b_t getb;    /* b */\n  /* later */\n} s_t;\n";
        assert_eq!(function_members(h, "s").unwrap(), ["a", "getb"]);
    }

    #[test]
    fn a_missing_struct_is_an_error() {
        assert!(function_members("typedef int (*a_fn)(void);", "s").is_err());
    }
}
