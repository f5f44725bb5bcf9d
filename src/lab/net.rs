//! Binding sockets the way the lab's servers do, plus what they leave out.
//!
//! The lab's Python servers set `SO_REUSEADDR` so a restarted server can
//! bind port 5005 again while old connections sit in TIME_WAIT; rc1 does the
//! same for TCP (UDP needs no such help, see [`bind_udp`]). `--bind ::` gives an IPv6 socket, which on Linux
//! also accepts IPv4 clients (as `::ffff:a.b.c.d`) unless the system sets
//! `net.ipv6.bindv6only`.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use super::event::{Event, Log};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of pending connections (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 4096;

/// A listening TCP socket with `SO_REUSEADDR`.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// A bound UDP socket. No `SO_REUSEADDR` here: UDP has no TIME_WAIT to
/// wait out, and on Linux the option would let a second server bind the
/// same port silently and steal the datagrams.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A friendlier message for a failed bind.
pub fn bind_error(e: &io::Error, addr: SocketAddr) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: the port is in use (another server running? stop it or pick --port)"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr}: permission denied (ports below 1024 need root; pick --port)"
        ),
        io::ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: no interface of this machine has that address")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

/// `[::ffff:127.0.0.1]:5005` → `127.0.0.1:5005`: an IPv4 client of an IPv6
/// (`--bind ::`) server is shown as the IPv4 address it really has.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Accepts the next waiting client, shown with [`canonical`] address.
/// `None` when none is waiting, or when accept failed (out of file
/// descriptors, say): then `retrying` is set, the failure is logged once,
/// and the caller should try again in a moment, since an edge-triggered poll
/// will not report the clients still waiting in the backlog.
pub fn accept_next<S>(
    mut accept: impl FnMut() -> std::io::Result<(S, SocketAddr)>,
    retrying: &mut bool,
    log: &Log,
) -> Option<(S, SocketAddr)> {
    loop {
        match accept() {
            Ok((s, peer)) => return Some((s, canonical(peer))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *retrying = false;
                return None;
            }
            Err(e) => {
                if !*retrying {
                    log.emit(&Event::Error {
                        conn: None,
                        peer: None,
                        code: "io.accept",
                        message: format!(
                            "accept failed: {e} (out of file descriptors? raise `ulimit -n` or lower --max-conns); waiting clients are retried every 100 ms"
                        ),
                    });
                }
                *retrying = true;
                return None;
            }
        }
    }
}
