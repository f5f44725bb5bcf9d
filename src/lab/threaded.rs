//! The thread-per-client TCP server (lab exercises 2, 4 and 5:
//! `serverTCP.py`, `serverTCPv2.py`, `serverTCPv3.py`).
//!
//! The accept loop waits in a `mio` poll on the listener and a waker, so
//! Ctrl+C wakes it at once. Each accepted client gets its own thread (as the
//! lab's `threading.Thread`), reading with blocking calls through
//! [`Conn`]. A shared counter of open connections enforces `--max-conns`.
//! Client reads time out every [`STOP_POLL`] so each thread notices a stop
//! by itself: one file descriptor per client, nothing shared to clone.

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Speaks};
use super::event::{Event, Log};
use crate::stop::Stop;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Stack size of a client thread: the work needs little, and a small stack
/// keeps a thousand clients cheap.
const THREAD_STACK: usize = 256 * 1024;

/// Settings of a TCP server.
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    /// What clients speak.
    pub speaks: Speaks,
    /// Most connections open at once; more are accepted and closed at once
    /// with a log line.
    pub max_conns: usize,
    /// Largest v3 message accepted.
    pub max_frame: u32,
    /// Thread-per-client: close a connection silent this long.
    pub idle_timeout: Duration,
}

/// How often a client thread blocked in `read` looks at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(200);

/// Open connections.
/// Connections counted against `--max-conns`, and client threads still
/// running (a thread frees its slot, then logs its close line, then ends).
#[derive(Default)]
struct Counts {
    slots: AtomicUsize,
    threads: AtomicUsize,
}

type Active = Arc<Counts>;

/// Serves until `stop`; returns how many connections were accepted.
pub fn run(listener: TcpListener, opts: TcpOptions, log: Arc<Log>, stop: Stop) -> io::Result<u64> {
    listener.set_nonblocking(true)?;
    let mut poll = Poll::new()?;
    let fd = listener.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let active: Active = Arc::default();
    {
        let waker = waker.clone();
        stop.on_stop(move || {
            let _ = waker.wake();
        });
    }
    let mut events = Events::with_capacity(64);
    let mut accepted: u64 = 0;
    // Set while accept fails (out of file descriptors): retry every 100 ms,
    // since an edge-triggered poll will not report the waiting clients again.
    let mut accept_retry = false;
    while !stop.is_stopped() {
        let wait = accept_retry.then(|| Duration::from_millis(100));
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        loop {
            if stop.is_stopped() {
                break;
            }
            let Some((stream, peer)) =
                super::net::accept_next(|| listener.accept(), &mut accept_retry, &log)
            else {
                break;
            };
            if active.slots.load(Ordering::SeqCst) >= opts.max_conns {
                log.emit(&Event::Refused {
                    peer,
                    limit: opts.max_conns,
                });
                drop(stream);
                continue;
            }
            accepted = accepted.saturating_add(1);
            let id = accepted;
            if let Err(e) = spawn_client(id, stream, peer, opts, &log, &active, &stop) {
                log.emit(&Event::Error {
                    conn: Some(id),
                    peer: Some(peer),
                    code: "io.thread",
                    message: format!(
                        "cannot serve this client: {e} (out of threads or file descriptors? lower --max-conns); closed it"
                    ),
                });
                active.slots.fetch_sub(1, Ordering::SeqCst);
                active.threads.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    // Stopping: each client thread notices within STOP_POLL; give them a
    // moment to log their close lines.
    let deadline = Instant::now() + Duration::from_secs(2);
    while active.threads.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(accepted)
}

fn spawn_client(
    id: u64,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    opts: TcpOptions,
    log: &Arc<Log>,
    active: &Active,
    stop: &Stop,
) -> io::Result<()> {
    // Counted first, so a failure below is undone by the caller.
    let open = active
        .slots
        .fetch_add(1, Ordering::SeqCst)
        .saturating_add(1);
    active.threads.fetch_add(1, Ordering::SeqCst);
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(STOP_POLL))?;
    stream.set_write_timeout(Some(STOP_POLL))?;
    let _ = stream.set_nodelay(true);
    log.emit(&Event::Accepted {
        conn: id,
        peer,
        active: open,
        token: None,
    });
    let log2 = log.clone();
    let active2 = active.clone();
    let stop = stop.clone();
    std::thread::Builder::new()
        .name(format!("rc1-conn-{id}"))
        .stack_size(THREAD_STACK)
        .spawn(move || {
            let mut conn = Conn::new(id, peer, opts.speaks, opts.max_frame);
            let reason = serve(&mut conn, stream, &log2, &stop, opts.idle_timeout);
            // The slot is free before the close line says so: a client
            // that reacts to that line must not be refused.
            active2.slots.fetch_sub(1, Ordering::SeqCst);
            log2.emit(&Event::Closed {
                conn: id,
                peer,
                reason: &reason,
                stats: conn.stats,
                token: None,
            });
            active2.threads.fetch_sub(1, Ordering::SeqCst);
        })?;
    Ok(())
}

/// One client's loop; returns why it ended.
fn serve(conn: &mut Conn, mut stream: TcpStream, log: &Log, stop: &Stop, idle: Duration) -> String {
    let mut out = Vec::new();
    let mut last_heard = Instant::now();
    loop {
        if stop.is_stopped() {
            let _ = stream.shutdown(Shutdown::Both);
            return "server stopping".into();
        }
        let n = match conn.read_from(&mut stream) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The read timeout: only a chance to look at the stop flag.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if last_heard.elapsed() >= idle {
                    let _ = stream.shutdown(Shutdown::Both);
                    return format!(
                        "closed by the server: nothing received for {} s (--idle-timeout)",
                        idle.as_secs_f64()
                    );
                }
                continue;
            }
            Err(e) => {
                if stop.is_stopped() {
                    return "server stopping".into();
                }
                if let Err(d) = conn.finish() {
                    conn.log_decode_error(log, &d, &format!("client vanished ({e}): "));
                    return "client vanished mid-frame".into();
                }
                return format!("read failed: {e}");
            }
        };
        last_heard = Instant::now();
        if n == 0 {
            if stop.is_stopped() {
                return "server stopping".into();
            }
            return match conn.finish() {
                Ok(()) => "client closed".into(),
                Err(d) => {
                    conn.log_decode_error(log, &d, "client closed mid-frame: ");
                    "client closed mid-frame".into()
                }
            };
        }
        let result = conn.process(log, &mut out);
        if !out.is_empty() {
            if let Err(e) = write_all_until_stop(&mut stream, &out, stop) {
                if stop.is_stopped() {
                    return "server stopping (echo not fully sent: the client was not reading)"
                        .into();
                }
                return format!("echo failed: {e}");
            }
            conn.stats.bytes_out = conn.stats.bytes_out.saturating_add(out.len() as u64);
            out.clear();
        }
        if let Err(d) = result {
            conn.log_decode_error(log, &d, "");
            let _ = stream.shutdown(Shutdown::Both);
            return format!("closed by the server: {}", d.diagnostic().code);
        }
    }
}

/// `write_all` that gives up when a stop is asked for: a client that stops
/// reading must not keep its thread (and Ctrl+C) waiting forever. The write
/// timeout is [`STOP_POLL`], so the flag is seen within that time.
fn write_all_until_stop(stream: &mut TcpStream, mut data: &[u8], stop: &Stop) -> io::Result<()> {
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.is_stopped() {
                    return Err(e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
