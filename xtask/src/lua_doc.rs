//! The Lua reference: `doc/lua-api.md` and the pages around it.
//!
//! * [`module_names`] reads the names the reference documents for the
//!   module table; the drift check (`hygiene.rs`) compares them with what
//!   the built module really exports.
//! * `cargo xtask lua-doc [--out DIR]` renders the whole Lua reference as
//!   linked HTML pages (default `target/doc/lua/index.html`, the table of
//!   contents), for Lua users who read LDoc-style pages rather than
//!   Markdown: the module (`doc/lua-api.md`), `doc/states.md`,
//!   `doc/libs.md`, the adapters' and `dss.lua`'s own docs (their header
//!   comments) and `doc/host.md`, each heading with an anchor.
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

/// Where a page's text comes from.
enum Source {
    /// A Markdown file of `doc/`.
    Markdown(&'static str),
    /// The leading comment blocks of these Lua files, one section each.
    LuaHeaders(&'static [&'static str]),
}

/// One page of the HTML reference.
struct Page {
    /// Its file name in the output folder.
    file: &'static str,
    /// Its title in the table of contents.
    title: &'static str,
    source: Source,
}

/// The Lua reference, in reading order.
const PAGES: &[Page] = &[
    Page {
        file: "lua-api.html",
        title: "The module darksidesync",
        source: Source::Markdown("doc/lua-api.md"),
    },
    Page {
        file: "states.html",
        title: "darksidesync.states: more Lua states",
        source: Source::Markdown("doc/states.md"),
    },
    Page {
        file: "libs.html",
        title: "Libraries: timer, signal, process",
        source: Source::Markdown("doc/libs.md"),
    },
    Page {
        file: "adapters.html",
        title: "Event-loop adapters",
        source: Source::LuaHeaders(&[
            "lua/darksidesync/luv.lua",
            "lua/darksidesync/cqueues.lua",
            "lua/darksidesync/socket.lua",
            "lua/darksidesync/copas.lua",
        ]),
    },
    Page {
        file: "dss.html",
        title: "dss.lua (DarkSideSync 1.0 helper)",
        source: Source::LuaHeaders(&["lua/dss.lua"]),
    },
    Page {
        file: "host.html",
        title: "darksidesync-host",
        source: Source::Markdown("doc/host.md"),
    },
];

/// `cargo xtask lua-doc [--out DIR]`: every page, and `index.html` with the
/// table of contents. Fails when a page has a table row that did not
/// render as a table (a blank line inside a table).
pub fn main(args: &[String]) -> Result {
    let mut out = root().join("target/doc/lua");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            other => return Err(format!("lua-doc: unexpected argument {other:?}")),
        }
    }
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut contents = Vec::new();
    for page in PAGES {
        let md = markdown(&page.source)?;
        let (body, headings) = render(&md);
        if let Some(line) = stray_table_row(&body) {
            return Err(format!(
                "{}: a table row rendered as text (a blank line inside a table?): {line}",
                page.file
            ));
        }
        write(
            &out.join(page.file),
            &frame(
                page.title,
                &nav(page.file),
                &toc(page.file, &headings),
                &body,
            ),
        )?;
        contents.push((page, headings));
    }
    let mut index = String::from("<h1>darksidesync — Lua reference</h1>\n");
    for (page, headings) in &contents {
        index += &format!(
            "<h2><a href=\"{}\">{}</a></h2>\n",
            page.file,
            escape(page.title)
        );
        index += &toc(page.file, headings);
    }
    let page = out.join("index.html");
    write(
        &page,
        &frame("Lua reference", &nav("index.html"), "", &index),
    )?;
    println!(
        "Lua reference: {} ({} pages)",
        page.display(),
        PAGES.len() + 1
    );
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> Result {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A page's Markdown: the file, or the Lua files' header comments.
fn markdown(source: &Source) -> Result<String> {
    match source {
        Source::Markdown(path) => {
            let path = root().join(path);
            fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }
        Source::LuaHeaders(files) => {
            let mut md = String::new();
            for file in *files {
                let path = root().join(file);
                let text = fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                md += &format!("## `{file}`\n\n```\n{}```\n\n", lua_header(&text));
            }
            Ok(md)
        }
    }
}

/// The comment block a Lua file starts with, without its `--` marks.
fn lua_header(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("--") else {
            break;
        };
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        out += rest.strip_prefix(' ').unwrap_or(rest);
        out.push('\n');
    }
    out
}

/// A heading of a page: level (2 or 3), text, anchor.
type Heading = (u8, String, String);

/// The HTML of `md`, each heading with an anchor (GitHub's: lower case,
/// spaces as `-`, punctuation dropped, repeats numbered), each code span
/// that names a page's source (`` `doc/states.md` ``) a link to it; and
/// the level-2 and level-3 headings.
fn render(md: &str) -> (String, Vec<Heading>) {
    use pulldown_cmark::{html, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
    let mut events: Vec<Event> = Parser::new_ext(md, Options::ENABLE_TABLES).collect();
    let mut headings = Vec::new();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { level, .. }) = &events[i] {
            let level = *level;
            let mut text = String::new();
            let mut j = i + 1;
            while !matches!(events[j], Event::End(TagEnd::Heading(_))) {
                if let Event::Text(t) | Event::Code(t) = &events[j] {
                    text += t;
                }
                j += 1;
            }
            let mut anchor = slug(&text);
            let n = seen.entry(anchor.clone()).or_insert(0);
            if *n > 0 {
                anchor = format!("{anchor}-{n}");
            }
            *n += 1;
            if let Event::Start(Tag::Heading { id, .. }) = &mut events[i] {
                *id = Some(CowStr::from(anchor.clone()));
            }
            let depth = match level {
                HeadingLevel::H2 => 2,
                HeadingLevel::H3 => 3,
                _ => 0,
            };
            if depth > 0 {
                headings.push((depth, text, anchor));
            }
        }
        if let Event::Code(code) = &events[i] {
            let target = PAGES.iter().find(|p| match p.source {
                Source::Markdown(path) => {
                    **code == *path || path.strip_prefix("doc/") == Some(&**code)
                }
                Source::LuaHeaders(files) => files.contains(&&**code),
            });
            if let Some(page) = target {
                let link = format!(
                    "<a href=\"{}\"><code>{}</code></a>",
                    page.file,
                    escape(code)
                );
                events[i] = Event::InlineHtml(CowStr::from(link));
            }
        }
        i += 1;
    }
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());
    (body, headings)
}

fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page's table of contents: its level-2 headings, level-3 nested.
fn toc(file: &str, headings: &[Heading]) -> String {
    let mut out = String::from("<ul class=\"toc\">\n");
    let mut open = false;
    for (level, text, anchor) in headings {
        let item = format!("<li><a href=\"{file}#{anchor}\">{}</a>", escape(text));
        match (level, open) {
            (2, true) => out += &format!("</ul></li>\n{item}<ul>\n"),
            (2, false) => {
                out += &format!("{item}<ul>\n");
                open = true;
            }
            _ => out += &format!("{item}</li>\n"),
        }
    }
    if open {
        out += "</ul></li>\n";
    }
    out + "</ul>\n"
}

/// The bar of links to every page, on every page.
fn nav(current: &str) -> String {
    let mut links = vec![format!("<a href=\"index.html\">Contents</a>")];
    for page in PAGES {
        links.push(if page.file == current {
            format!("<b>{}</b>", escape(page.title))
        } else {
            format!("<a href=\"{}\">{}</a>", page.file, escape(page.title))
        });
    }
    format!("<nav>{}</nav>\n", links.join(" · "))
}

fn frame(title: &str, nav: &str, toc: &str, body: &str) -> String {
    let toc = if toc.is_empty() {
        String::new()
    } else {
        format!("<details open><summary>On this page</summary>\n{toc}</details>\n")
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>darksidesync — {}</title>\n<style>\
         body{{max-width:50em;margin:auto;padding:1em;font-family:sans-serif;line-height:1.4}}\
         code{{background:#f4f4f4}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.2em .5em}}h3{{margin-top:1.5em}}\
         nav{{border-bottom:1px solid #ccc;padding-bottom:.5em}}\
         </style></head><body>\n{nav}{toc}{body}{nav}</body></html>\n",
        escape(title)
    )
}

/// A line of rendered text that is a Markdown table row left as a
/// paragraph (`<p>| a | b |</p>`).
fn stray_table_row(html: &str) -> Option<&str> {
    html.lines()
        .find(|l| l.starts_with("<p>|") && l.trim_end().ends_with("|</p>"))
}

#[cfg(test)]
mod tests {
    use super::{module_names, render, stray_table_row, toc};

    #[test]
    fn headings_get_anchors_and_page_names_become_links() {
        let (html, headings) =
            render("# T\n## Waiting\n### `wait([s])` → boolean\n## Waiting\nsee `doc/states.md`\n");
        assert!(html.contains("<h2 id=\"waiting\">"), "{html}");
        assert!(html.contains("<h3 id=\"waits--boolean\">"), "{html}");
        assert!(html.contains("<h2 id=\"waiting-1\">"), "{html}");
        assert!(
            html.contains("<a href=\"states.html\"><code>doc/states.md</code></a>"),
            "{html}"
        );
        assert_eq!(headings.len(), 3);
        let t = toc("x.html", &headings);
        assert!(
            t.contains("<a href=\"x.html#waits--boolean\">wait([s]) → boolean</a>"),
            "{t}"
        );
    }

    #[test]
    fn a_blank_line_inside_a_table_is_caught() {
        let (ok, _) = render("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n");
        assert_eq!(stray_table_row(&ok), None);
        let (broken, _) = render("| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n");
        assert_eq!(stray_table_row(&broken), Some("<p>| 3 | 4 |</p>"));
    }

    #[test]
    fn reads_headings_and_call_items_up_to_the_first_module_section() {
        let md = "# t\n## Group\n### `poll()`\ntext `x()`\n### `_VERSION`\n\
                  * `event_fd()` → fd\n* `opts.max`: no\n```\n### `fenced()`\n```\n\
                  ## Adapters (`lua/x.lua`)\n### `attach()`\n";
        let names: Vec<_> = module_names(md).into_iter().collect();
        assert_eq!(names, ["_VERSION", "event_fd", "poll"]);
    }
}
