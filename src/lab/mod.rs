//! The lab's programs: servers ([`udp`], [`threaded`], [`selector`]) and
//! clients ([`client`]), all reading TCP through [`crate::codec::FrameReader`]
//! and reporting through [`event::Log`].
//!
//! A server is bound first ([`Server::bind`], so tests can bind port 0 and
//! learn the real port) and then run until its [`crate::stop::Stop`] is triggered.

pub mod client;
pub mod conn;
pub mod event;
pub mod net;
pub mod selector;
pub mod threaded;
pub mod udp;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;

use anyhow::{Result, anyhow};

use crate::codec::Framing;
use crate::stop::Stop;
use conn::Speaks;
use event::{Event, Log};
use threaded::TcpOptions;

/// Which lab server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerProto {
    /// `serverUDP.py` (exercise 1).
    Udp,
    /// `serverTCP.py`: text, a thread per client (exercise 2).
    Text,
    /// `serverTCPsel.py`: text, one thread with a selector (exercise 3).
    TextSel,
    /// `serverTCPv2.py` with the 4.3 echo.
    V2,
    /// `serverTCPv3.py` with the 5.3 echo.
    V3,
}

impl ServerProto {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerProto::Udp => "udp",
            ServerProto::Text => "text",
            ServerProto::TextSel => "text-sel",
            ServerProto::V2 => "v2",
            ServerProto::V3 => "v3",
        }
    }

    /// Default connection cap: threads cost more than selector entries.
    pub fn default_max_conns(self) -> usize {
        match self {
            ServerProto::TextSel => 10_000,
            _ => 1_000,
        }
    }
}

/// Server settings.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Which server.
    pub proto: ServerProto,
    /// Address to bind (`0.0.0.0:5005` as the lab; `[::]:5005` for IPv6).
    pub addr: SocketAddr,
    /// UDP: echo each datagram.
    pub echo: bool,
    /// TCP: connection cap.
    pub max_conns: usize,
    /// Largest v3 message accepted.
    pub max_frame: u32,
    /// TCP servers close a connection that sends nothing, or reads none of
    /// its echoes, this long.
    pub idle_timeout: std::time::Duration,
}

/// Raises the soft open-files limit as far as `--max-conns` needs (up to
/// the hard limit), and says so when it cannot: past it, clients would wait
/// unserved instead of being refused.
fn ensure_fds(o: &ServerOptions, log: &Log) {
    // One descriptor per client, plus a few for the listener, the poll,
    // stdio and libraries.
    const RESERVE: u64 = 16;
    let need = (o.max_conns as u64).saturating_add(RESERVE);
    match rlimit::increase_nofile_limit(need) {
        Ok(limit) if limit >= need => {}
        Ok(limit) => log.emit(&Event::Error {
            conn: None,
            peer: None,
            code: "conn.fd_limit",
            message: format!(
                "--max-conns {} needs about {need} open files but this process may open only {limit} \
                 (hard limit; see `ulimit -Hn`): beyond about {} clients, new ones wait until others leave",
                o.max_conns,
                limit.saturating_sub(RESERVE)
            ),
        }),
        Err(e) => log.emit(&Event::Error {
            conn: None,
            peer: None,
            code: "conn.fd_limit",
            message: format!("cannot read or raise the open-files limit: {e}"),
        }),
    }
}

enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// A bound, not yet running server.
pub struct Server {
    opts: ServerOptions,
    socket: Socket,
}

impl Server {
    /// Binds the socket (with `SO_REUSEADDR`).
    pub fn bind(opts: ServerOptions) -> Result<Server> {
        let socket = match opts.proto {
            ServerProto::Udp => net::bind_udp(opts.addr).map(Socket::Udp),
            _ => net::bind_tcp(opts.addr).map(Socket::Tcp),
        }
        .map_err(|e| anyhow!(net::bind_error(&e, opts.addr)))?;
        Ok(Server { opts, socket })
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(match &self.socket {
            Socket::Tcp(l) => l.local_addr()?,
            Socket::Udp(s) => s.local_addr()?,
        })
    }

    /// Serves until `stop`; returns connections (datagrams for UDP) served.
    pub fn run(self, log: Arc<Log>, stop: Stop) -> Result<u64> {
        let addr = self.local_addr()?;
        let o = self.opts;
        if o.proto != ServerProto::Udp {
            ensure_fds(&o, &log);
        }
        log.emit(&Event::Listening {
            proto: o.proto.name(),
            addr,
            max_conns: (o.proto != ServerProto::Udp).then_some(o.max_conns),
        });
        let tcp = |speaks| TcpOptions {
            speaks,
            max_conns: o.max_conns,
            max_frame: o.max_frame,
            idle_timeout: o.idle_timeout,
        };
        let (served, refused) = match self.socket {
            Socket::Udp(s) => (udp::run(s, o.echo, log.clone(), stop)?, 0),
            Socket::Tcp(l) => match o.proto {
                ServerProto::TextSel => selector::run(l, tcp(Speaks::Text), log.clone(), stop)?,
                ServerProto::Text => threaded::run(l, tcp(Speaks::Text), log.clone(), stop)?,
                ServerProto::V2 => {
                    threaded::run(l, tcp(Speaks::Framed(Framing::V2)), log.clone(), stop)?
                }
                ServerProto::V3 => {
                    threaded::run(l, tcp(Speaks::Framed(Framing::V3)), log.clone(), stop)?
                }
                ServerProto::Udp => unreachable!("bind() opens a UDP socket for udp"),
            },
        };
        log.emit(&Event::Stopped { served, refused });
        Ok(served)
    }
}
