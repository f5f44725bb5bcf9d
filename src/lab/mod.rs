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
    /// A framing file's frames (`--framing FILE`): the thread-per-client
    /// server, each whole frame echoed byte for byte.
    Custom(&'static crate::framing::FramingDef),
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
            ServerProto::Custom(def) => def.spec.name,
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

/// The framing a framing definition stands for: the built-in `v2` and
/// `v3` files are rc1's own v2 and v3 (their codecs, names and outputs,
/// as `--proto v2|v3`); any other file is [`Framing::Custom`].
pub fn framing_of(def: &'static crate::framing::FramingDef) -> Framing {
    let is = |name| crate::framing::builtin(name).is_some_and(|b| std::ptr::eq(b, def));
    if is("v2") {
        Framing::V2
    } else if is("v3") {
        Framing::V3
    } else {
        Framing::Custom(def)
    }
}

/// How many values the echo key of `framing` takes before it wraps: the
/// lab's 32-bit `order` 2^32; a framing file's echo key field as wide as
/// it is (an `H` 65536, a `B` 256; a signed one counts 0 to its largest
/// value, never negative). 2^32 at most (rc1 counts orders in 32 bits),
/// and 2^32 too for a file without an echo key.
///
/// Counters count from 1 and send `n mod span`: a `B` key goes 1, 2, …,
/// 255, 0, 1, …, as `struct.pack('B', n & 0xFF)` would.
pub fn order_span(framing: Framing) -> u64 {
    const FULL: u64 = 1 << 32;
    framing
        .def()
        .and_then(|d| d.field(d.echo_key?))
        .and_then(|f| f.kind.int_range())
        .map_or(FULL, |(_, hi)| {
            u64::try_from(hi).map_or(FULL, |hi| hi.saturating_add(1).min(FULL))
        })
}

/// The `n`th order (from 1) of `framing`: `n` wrapped as its echo key
/// wraps (see [`order_span`]).
pub fn nth_order(framing: Framing, n: u64) -> u32 {
    u32::try_from(n % order_span(framing)).unwrap_or(u32::MAX)
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
                ServerProto::Custom(def) => threaded::run(
                    l,
                    tcp(Speaks::Framed(Framing::Custom(def))),
                    log.clone(),
                    stop,
                )?,
                ServerProto::Udp => unreachable!("bind() opens a UDP socket for udp"),
            },
        };
        log.emit(&Event::Stopped { served, refused });
        Ok(served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str, text: &str) -> Framing {
        Framing::Custom(Box::leak(Box::new(
            crate::framing::parse(text, name).unwrap(),
        )))
    }

    #[test]
    fn orders_count_from_1_and_wrap_as_the_echo_key_does() {
        let le16 = custom(
            "le16.toml",
            include_str!("../../fixtures/framings/le16.toml"),
        );
        let typed = custom(
            "typed.toml",
            include_str!("../../fixtures/framings/typed.toml"),
        );
        assert_eq!(order_span(le16), 1 << 16);
        assert_eq!(order_span(typed), 1 << 8);
        assert_eq!(order_span(Framing::V2), 1 << 32);
        let orders = |f, ns: &[u64]| ns.iter().map(|&n| nth_order(f, n)).collect::<Vec<_>>();
        assert_eq!(
            orders(le16, &[1, 65_535, 65_536, 65_537]),
            [1, 65_535, 0, 1]
        );
        assert_eq!(orders(typed, &[1, 255, 256, 257, 512]), [1, 255, 0, 1, 0]);
        assert_eq!(
            orders(Framing::V2, &[1, u64::from(u32::MAX), 1 << 32]),
            [1, u32::MAX, 0]
        );
        // A signed key counts 0 to its largest value, never negative.
        let signed = custom(
            "s.toml",
            "name = \"s\"\necho_key = \"k\"\nstruct = \"!bH\"\nnames = [\"k\", \"n\"]\n",
        );
        assert_eq!(order_span(signed), 128);
        assert_eq!(orders(signed, &[127, 128]), [127, 0]);
    }

    #[test]
    fn the_built_in_files_stand_for_v2_and_v3() {
        assert_eq!(
            framing_of(crate::framing::builtin("v2").unwrap()),
            Framing::V2
        );
        assert_eq!(
            framing_of(crate::framing::builtin("v3").unwrap()),
            Framing::V3
        );
        let text = crate::framing::builtin_text("v3").unwrap();
        let copy: &'static _ =
            Box::leak(Box::new(crate::framing::parse(text, "mine.toml").unwrap()));
        assert!(matches!(framing_of(copy), Framing::Custom(_)));
    }
}
