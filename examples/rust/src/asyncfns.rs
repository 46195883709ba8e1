//! `dssrust`'s async functions (darksidesync-binding's
//! `Dss::create_async_function` with its `tokio` feature): each suspends
//! the calling coroutine only (or, on the main thread, runs darksidesync's
//! loop) until its future finished.
//!
//! ```lua
//! dssrust.sleep(seconds, ...) --> ...           -- tokio::time::sleep, then returns its other arguments
//! dssrust.fail(seconds, message)                -- raises message after the sleep
//! dssrust.forever()                             -- never finishes; dssrust.live() counts such futures alive
//! local port = dssrust.echo_server()            -- a tokio line-echo server on 127.0.0.1 (background)
//! dssrust.echo(port, line) --> line             -- one tokio TCP round trip
//! ```

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use darksidesync_binding::Dss;
use mlua::{Lua, MultiValue, Table};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// `forever()` futures alive (dropped when their coroutine is closed or
/// collected, or the state closes).
static LIVE: AtomicI64 = AtomicI64::new(0);

struct Alive;

impl Alive {
    fn new() -> Alive {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Alive
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn seconds(s: f64) -> mlua::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| mlua::Error::runtime("seconds must be >= 0"))
}

pub(crate) fn add(lua: &Lua, dss: &Dss, t: &Table) -> mlua::Result<()> {
    t.set(
        "sleep",
        dss.create_async_function(lua, |_, (s, rest): (f64, MultiValue)| async move {
            tokio::time::sleep(seconds(s)?).await;
            Ok(rest)
        })?,
    )?;
    t.set(
        "fail",
        dss.create_async_function(lua, |_, (s, message): (f64, String)| async move {
            tokio::time::sleep(seconds(s)?).await;
            Err::<(), _>(mlua::Error::runtime(message))
        })?,
    )?;
    t.set(
        "forever",
        dss.create_async_function(lua, |_, ()| {
            let alive = Alive::new();
            async move {
                let _alive = alive;
                std::future::pending::<()>().await;
                Ok(())
            }
        })?,
    )?;
    t.set(
        "live",
        lua.create_function(|_, ()| Ok(LIVE.load(Ordering::SeqCst)))?,
    )?;
    t.set(
        "echo_server",
        lua.create_function(|_, ()| {
            let rt = darksidesync_binding::tokio_runtime();
            let listener = rt
                .block_on(TcpListener::bind("127.0.0.1:0"))
                .map_err(mlua::Error::external)?;
            let port = listener.local_addr().map_err(mlua::Error::external)?.port();
            rt.spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let (r, mut w) = conn.into_split();
                        let mut lines = BufReader::new(r).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
            Ok(port)
        })?,
    )?;
    t.set(
        "echo",
        dss.create_async_function(lua, |_, (port, line): (u16, String)| async move {
            let conn = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(mlua::Error::external)?;
            let (r, mut w) = conn.into_split();
            w.write_all(format!("{line}\n").as_bytes())
                .await
                .map_err(mlua::Error::external)?;
            let got = BufReader::new(r)
                .lines()
                .next_line()
                .await
                .map_err(mlua::Error::external)?;
            got.ok_or_else(|| mlua::Error::runtime("echo: connection closed"))
        })?,
    )?;
    Ok(())
}
