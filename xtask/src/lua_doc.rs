//! The Lua reference, from its one source `doc/lua-api.md`.
//!
//! * [`module_names`] reads the names the reference documents for the
//!   module table; the drift check (`hygiene.rs`) compares them with what
//!   the built module really exports.
//! * `cargo xtask lua-doc [--out DIR]` renders the same file as HTML
//!   (default `target/doc/lua/index.html`), for Lua users who read LDoc-style
//!   pages rather than Markdown.
//!
//! Convention of the source: the module table's entries are the level-3
//! headings that start with a backquoted name (`` ### `dispatch([max])` ``)
//! and the list items that start with a backquoted call
//! (`` * `event_fd()` → ... ``), up to the first level-2 heading that names
//! another file or module in backquotes (`` ## Event-loop adapters (`lua/...`) ``).

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use crate::cmd::Result;
use crate::root;

/// The reference's source.
pub fn source() -> Result<String> {
    let path = root().join("doc/lua-api.md");
    fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The module-table names `doc/lua-api.md` documents (see the module docs).
pub fn module_names(md: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_fence = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            if title.contains('`') {
                break;
            }
        } else if let Some(title) = line.strip_prefix("### `") {
            names.insert(leading_name(title).to_string());
        } else if let Some(item) = line.strip_prefix("* `") {
            let name = leading_name(item);
            if item[name.len()..].starts_with('(') {
                names.insert(name.to_string());
            }
        }
    }
    names.remove("");
    names
}

fn leading_name(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// `cargo xtask lua-doc [--out DIR]`.
pub fn main(args: &[String]) -> Result {
    let mut out = root().join("target/doc/lua");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            other => return Err(format!("lua-doc: unexpected argument {other:?}")),
        }
    }
    let page = out.join("index.html");
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    fs::write(&page, html(&source()?))
        .map_err(|e| format!("cannot write {}: {e}", page.display()))?;
    println!("Lua reference: {}", page.display());
    Ok(())
}

/// The whole reference as one HTML page, headings with anchors.
pub fn html(md: &str) -> String {
    use pulldown_cmark::{html, Options, Parser};
    let mut body = String::new();
    html::push_html(&mut body, Parser::new_ext(md, Options::ENABLE_TABLES));
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>darksidesync — Lua API reference</title>\n<style>\
         body{{max-width:50em;margin:auto;padding:1em;font-family:sans-serif;line-height:1.4}}\
         code{{background:#f4f4f4}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.2em .5em}}h3{{margin-top:1.5em}}\
         </style></head><body>\n{body}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::module_names;

    #[test]
    fn reads_headings_and_call_items_up_to_the_first_module_section() {
        let md = "# t\n## Group\n### `poll()`\ntext `x()`\n### `_VERSION`\n\
                  * `event_fd()` → fd\n* `opts.max`: no\n```\n### `fenced()`\n```\n\
                  ## Adapters (`lua/x.lua`)\n### `attach()`\n";
        let names: Vec<_> = module_names(md).into_iter().collect();
        assert_eq!(names, ["_VERSION", "event_fd", "poll"]);
    }
}
