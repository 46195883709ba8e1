//! Async functions for the bench (darksidesync-binding's
//! `create_async_function`, `tokio` feature), and what they are compared
//! with: a plain mlua function, and a manual polling loop (mlua#76).
//!
//! ```lua
//! b.sleep_ms(ms)                 -- async: tokio::time::sleep
//! local h = b.poll_sleep(ms)     -- the same sleep polled by hand: h:ready() --> boolean
//! b.ready(k) --> k + 1           -- async, ready at the first poll
//! b.plain(k) --> k + 1           -- a plain mlua function
//! local port = b.echo_server()   -- a tokio line-echo server on 127.0.0.1
//! local c = b.connect(port)      -- async: a connection
//! b.echo(c, line) --> line       -- async: one round trip on it
//! b.unref()                      -- lets run() return when idle
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use darksidesync_binding::{tokio_runtime, Dss};
use mlua::{AnyUserData, Lua, Table, UserData, UserDataMethods};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A sleep polled by hand, as with mlua's async functions in a stock
/// interpreter (a loop that resumes every pending coroutine).
struct PolledSleep(Pin<Box<tokio::time::Sleep>>);

impl UserData for PolledSleep {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("ready", |_, this, ()| {
            let _rt = tokio_runtime().enter();
            let waker = Waker::from(std::sync::Arc::new(Noop));
            let mut cx = Context::from_waker(&waker);
            Ok(this.0.as_mut().poll(&mut cx) == Poll::Ready(()))
        });
    }
}

/// A waker that does nothing: the polling loop polls again anyway.
struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

type Conn = Rc<RefCell<Option<(Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf)>>>;

/// One client connection (used by one coroutine at a time).
struct Connection(Conn);

impl UserData for Connection {}

fn io(e: std::io::Error) -> mlua::Error {
    mlua::Error::external(e)
}

pub(crate) fn add(lua: &Lua, dss: &Dss, t: &Table) -> mlua::Result<()> {
    t.set(
        "sleep_ms",
        dss.create_async_function(lua, |_, ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(())
        })?,
    )?;
    t.set(
        "poll_sleep",
        lua.create_function(|_, ms: u64| {
            let _rt = tokio_runtime().enter();
            Ok(PolledSleep(Box::pin(tokio::time::sleep(
                Duration::from_millis(ms),
            ))))
        })?,
    )?;
    t.set(
        "ready",
        dss.create_async_function(lua, |_, k: i64| async move { Ok(k + 1) })?,
    )?;
    t.set("plain", lua.create_function(|_, k: i64| Ok(k + 1))?)?;
    t.set(
        "echo_server",
        lua.create_function(|_, ()| {
            let rt = tokio_runtime();
            let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).map_err(io)?;
            let port = listener.local_addr().map_err(io)?.port();
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
        "connect",
        dss.create_async_function(lua, |_, port: u16| async move {
            let conn = TcpStream::connect(("127.0.0.1", port)).await.map_err(io)?;
            conn.set_nodelay(true).map_err(io)?;
            let (r, w) = conn.into_split();
            Ok(Connection(Rc::new(RefCell::new(Some((
                BufReader::new(r).lines(),
                w,
            ))))))
        })?,
    )?;
    t.set(
        "echo",
        dss.create_async_function(lua, |_, (c, line): (AnyUserData, String)| {
            let conn = c.borrow::<Connection>().map(|c| c.0.clone());
            async move {
                let conn = conn?;
                // Taken out while in use: one request at a time.
                let (mut lines, mut w) = conn
                    .borrow_mut()
                    .take()
                    .ok_or_else(|| mlua::Error::runtime("echo: connection in use"))?;
                w.write_all(format!("{line}\n").as_bytes())
                    .await
                    .map_err(io)?;
                let got = lines.next_line().await.map_err(io)?;
                *conn.borrow_mut() = Some((lines, w));
                got.ok_or_else(|| mlua::Error::runtime("echo: connection closed"))
            }
        })?,
    )?;
    let d = dss.clone();
    t.set(
        "unref",
        lua.create_function(move |_, ()| {
            d.unref();
            Ok(())
        })?,
    )?;
    Ok(())
}
