//! The lab's clients (`clientUDP.py`, `clientTCP.py`, `clientTCPv2.py`,
//! `clientTCPv3.py`) in one: send each message, wait for its echo, check it.
//!
//! What the lab asks students to see is printed first: the local address the
//! OS chose, e.g. `127.0.0.1:54321 -> 127.0.0.1:5005`. The client never binds
//! a port itself; the ephemeral port comes from the OS (on Linux from
//! `net.ipv4.ip_local_port_range`).
//!
//! Framing rules, byte-exact with the lab's Python:
//! * v2: `size` is the number of *characters* typed and the text is padded
//!   with `-` to 20 characters before UTF-8 encoding, then cut or NUL-padded
//!   to 20 bytes, as `struct.pack('!BLL20s', …)` does ([`Frame::v2_python`]).
//! * v3: `size` is the number of message *bytes* (for ASCII the same as the
//!   lab's `len()`; for other text it is what every reader needs).
//! * text: the UTF-8 bytes of the line, no newline, no length.
//!
//! * a framing file (`--framing FILE`): the echo key gets the counter, the
//!   body the message's UTF-8 bytes, a field called `version` `--version`;
//!   lengths, checksums and constants are computed, `--field NAME=VALUE`
//!   sets other integer fields, the rest are 0 ([`Frame::try_encode_with`]).
//!
//! `order` starts at 1 and grows by one per message, as in the lab. A
//! framing file's echo key narrower than 32 bits wraps as its field does:
//! an `H` key sends 1, …, 65535, 0, 1, …; a `B` key 1, …, 255, 0, …
//! ([`super::order_span`]).

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::event::{Event, Log};
use crate::codec::{Frame, FrameReader, Framing};
use crate::spec;

/// What the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProto {
    /// UDP datagrams (exercise 1).
    Udp,
    /// TCP text (exercises 2 and 3).
    Text,
    /// TCP v2 frames (exercise 4).
    V2,
    /// TCP v3 frames (exercise 5).
    V3,
    /// TCP frames of a framing file (`--framing FILE`).
    Custom(&'static crate::framing::FramingDef),
}

impl ClientProto {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ClientProto::Udp => "udp",
            ClientProto::Text => "text",
            ClientProto::V2 => "v2",
            ClientProto::V3 => "v3",
            ClientProto::Custom(def) => def.spec.name,
        }
    }

    /// The lab client's prompt.
    pub fn prompt(self) -> &'static str {
        match self {
            ClientProto::V2 => "Message to send [max 20 chars]? ",
            _ => "Message to send? ",
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Protocol.
    pub proto: ClientProto,
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How long to wait for a connection and for each echo.
    pub timeout: Duration,
    /// Version byte of v2/v3 frames.
    pub version: u8,
    /// Largest v3 echo accepted.
    pub max_frame: u32,
    /// UDP: wait for an echo (server started with `--echo`).
    pub udp_echo: bool,
    /// Framing files: integer fields set by name (`--field NAME=VALUE`),
    /// sent in every frame instead of 0.
    pub fields: Vec<(&'static str, i128)>,
}

/// Where messages come from.
pub enum Messages {
    /// Given on the command line.
    List(std::vec::IntoIter<String>),
    /// One per line from a reader (piped stdin).
    Lines(Box<dyn BufRead>),
    /// Typed at a terminal, after the lab's prompt.
    Interactive {
        /// The prompt.
        prompt: &'static str,
        /// Write the prompt to stderr (stdout carries JSON).
        to_stderr: bool,
    },
}

impl Messages {
    fn next_message(&mut self) -> Option<io::Result<String>> {
        match self {
            Messages::List(it) => it.next().map(Ok),
            Messages::Lines(r) => read_line(r.as_mut()),
            Messages::Interactive { prompt, to_stderr } => {
                if *to_stderr {
                    let mut err = io::stderr();
                    let _ = write!(err, "{prompt}");
                    let _ = err.flush();
                } else {
                    let mut out = io::stdout();
                    let _ = write!(out, "{prompt}");
                    let _ = out.flush();
                }
                let stdin = io::stdin();
                let mut lock = stdin.lock();
                read_line(&mut lock)
            }
        }
    }
}

fn read_line(r: &mut dyn BufRead) -> Option<io::Result<String>> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => None,
        Ok(_) => {
            if line.ends_with('\n') {
                line.pop();
                if line.ends_with('\r') {
                    line.pop();
                }
            }
            Some(Ok(line))
        }
        Err(e) => Some(Err(e)),
    }
}

/// What a client run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientReport {
    /// Messages sent.
    pub sent: u64,
    /// Echoes equal to what was sent.
    pub echoed: u64,
    /// Echoes that differed.
    pub mismatched: u64,
    /// Bytes the server sent after the last echo, answering nothing.
    pub extra_bytes: u64,
}

/// Runs the client; an error for connection failures and timeouts. Echo
/// mismatches are counted in the report (the caller turns them into a
/// non-zero exit status).
pub fn run(opts: &ClientOptions, mut messages: Messages, log: &Log) -> Result<ClientReport> {
    let addrs: Vec<SocketAddr> = (opts.host.as_str(), opts.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve host {:?}", opts.host))?
        .collect();
    if addrs.is_empty() {
        bail!("host {:?} has no address", opts.host);
    }
    match opts.proto {
        ClientProto::Udp => run_udp(opts, &addrs, &mut messages, log),
        _ => run_tcp(opts, &addrs, &mut messages, log),
    }
}

fn connect(opts: &ClientOptions, addrs: &[SocketAddr]) -> Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, opts.timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some((*addr, e)),
        }
    }
    let Some((addr, e)) = last else {
        bail!("no address to connect to");
    };
    let hint = format!(
        "is a server running on {}:{}? start one with `rc1 server {} --port {}`",
        opts.host,
        opts.port,
        match opts.proto {
            ClientProto::Custom(def) => format!("--framing {}", def.origin),
            p => format!("--proto {}", server_proto(p)),
        },
        opts.port
    );
    Err(match e.kind() {
        io::ErrorKind::ConnectionRefused => anyhow!("connection refused by {addr}: {hint}"),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => anyhow!(
            "no answer from {addr} within {:?} (--timeout): {hint}",
            opts.timeout
        ),
        _ => anyhow!("cannot connect to {addr}: {e}"),
    })
}

fn server_proto(p: ClientProto) -> &'static str {
    p.name()
}

fn run_tcp(
    opts: &ClientOptions,
    addrs: &[SocketAddr],
    messages: &mut Messages,
    log: &Log,
) -> Result<ClientReport> {
    let mut stream = connect(opts, addrs)?;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr()?;
    let remote = stream.peer_addr()?;
    log.emit(&Event::Connected {
        local,
        remote,
        proto: opts.proto.name(),
    });
    let framing = match opts.proto {
        ClientProto::V2 => Some(Framing::V2),
        ClientProto::V3 => Some(Framing::V3),
        ClientProto::Custom(def) => Some(Framing::Custom(def)),
        _ => None,
    };
    let fields: Vec<(&str, spec::Value<'_>)> = opts
        .fields
        .iter()
        .map(|&(name, v)| {
            let v = match u64::try_from(v) {
                Ok(n) => spec::Value::Uint(n),
                Err(_) => spec::Value::Int(i64::try_from(v).unwrap_or(i64::MIN)),
            };
            (name, v)
        })
        .collect();
    let mut count: u64 = 0;
    let mut reader = framing.map(|f| FrameReader::new(f, opts.max_frame));
    let mut report = ClientReport::default();
    while let Some(msg) = messages.next_message() {
        let msg = msg.context("cannot read the next message from stdin")?;
        let bytes = match framing {
            Some(framing) => {
                count = count.saturating_add(1);
                let order = super::nth_order(framing, count);
                let frame = match framing {
                    Framing::V2 => Frame::v2_python(opts.version, order, &msg)?,
                    Framing::V3 => {
                        let f = Frame::v3(opts.version, order, msg.as_bytes())?;
                        if f.size > opts.max_frame {
                            bail!(crate::codec::EncodeError::OverMax {
                                len: msg.len(),
                                max: opts.max_frame
                            });
                        }
                        f
                    }
                    Framing::Custom(_) => Frame {
                        version: opts.version,
                        order,
                        size: u32::try_from(msg.len()).unwrap_or(u32::MAX),
                        message: msg.clone().into_bytes(),
                        padding: Vec::new(),
                    },
                };
                let mut bytes = Vec::new();
                frame
                    .try_encode_with(framing, &fields, &mut bytes)
                    .with_context(|| {
                        format!(
                            "message {count} ({} bytes) cannot be sent as a {framing} frame",
                            msg.len()
                        )
                    })?;
                // A framing file's line shows its own fields: from the bytes.
                let shown = match framing {
                    Framing::Custom(_) => match crate::codec::parse(framing, &bytes, u32::MAX) {
                        Ok(crate::codec::Parse::Frame(f)) => f,
                        _ => frame.as_ref(),
                    },
                    _ => frame.as_ref(),
                };
                log.emit(&Event::Sent {
                    frame: Some((framing, shown)),
                    data: &[],
                });
                bytes
            }
            None => {
                if msg.is_empty() {
                    log.emit(&Event::Error {
                        conn: None,
                        peer: Some(remote),
                        code: "client.empty",
                        message: "empty line not sent: TCP carries no empty message, so no echo could come".into(),
                    });
                    continue;
                }
                log.emit(&Event::Sent {
                    frame: None,
                    data: msg.as_bytes(),
                });
                msg.into_bytes()
            }
        };
        report.sent = report.sent.saturating_add(1);
        let deadline = Instant::now() + opts.timeout;
        let ok = if bytes.len() <= SMALL_MESSAGE {
            // Fits the socket buffers: send, then read the echo.
            write_all_by(&mut stream, &bytes, deadline, opts)
                .map_err(|e| send_error(e, remote, opts))?;
            match &mut reader {
                Some(r) => read_frame_echo(&mut stream, r, &bytes, deadline, log, opts)?,
                None => read_text_echo(&mut stream, &bytes, deadline, log, opts)?,
            }
        } else {
            // Send and read the echo at the same time: a server that echoes
            // while it reads would otherwise fill both socket buffers with a
            // large message and deadlock (each side waiting for the other).
            let mut writer = stream.try_clone()?;
            std::thread::scope(|scope| -> Result<bool> {
                let sending = scope.spawn(|| write_all_by(&mut writer, &bytes, deadline, opts));
                let echo = match &mut reader {
                    Some(r) => read_frame_echo(&mut stream, r, &bytes, deadline, log, opts),
                    None => read_text_echo(&mut stream, &bytes, deadline, log, opts),
                };
                if echo.is_err() {
                    // No echo is coming: unblock the sender at once.
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
                let sent = sending
                    .join()
                    .map_err(|_| anyhow!("the sending thread panicked"))?;
                if let (Err(e), Ok(_)) = (sent, &echo) {
                    return Err(send_error(e, remote, opts));
                }
                echo
            })?
        };
        if ok {
            report.echoed = report.echoed.saturating_add(1);
        } else {
            report.mismatched = report.mismatched.saturating_add(1);
        }
    }
    // Done sending: anything the server sends after the last echo is
    // unexpected (an extra or doubled echo); read it until the server closes.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let extra = drain_extra(
        &mut stream,
        reader.as_ref().map_or(0, FrameReader::buffered),
        opts,
    );
    if extra > 0 {
        log.emit(&Event::Error {
            conn: None,
            peer: Some(remote),
            code: spec::ECHO_MISMATCH.code,
            message: format!(
                "the server sent {extra} byte(s) after the last echo that answer nothing we sent"
            ),
        });
        report.extra_bytes = extra;
    }
    Ok(report)
}

/// Messages up to this size are sent before the echo is read; larger ones
/// are sent from a second thread while the echo is read.
const SMALL_MESSAGE: usize = 64 * 1024;

/// `write_all` bounded by `deadline` as a whole (not per write call).
fn write_all_by(
    stream: &mut TcpStream,
    mut data: &[u8],
    deadline: Instant,
    opts: &ClientOptions,
) -> io::Result<()> {
    while !data.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("send not finished within {:?}", opts.timeout),
            ));
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send_error(e: io::Error, remote: SocketAddr, opts: &ClientOptions) -> anyhow::Error {
    let why = if is_timeout(&e) {
        format!(
            "the server stopped reading for {:?} (--timeout) while we were sending",
            opts.timeout
        )
    } else {
        format!("{e} (did the server close the connection?)")
    };
    anyhow!("sending to {remote} failed: {why}")
}

/// After the last echo: counts bytes the server still sends, until it
/// closes or a short wait passes. `held` are bytes already read past the
/// last echo.
fn drain_extra(stream: &mut TcpStream, held: usize, opts: &ClientOptions) -> u64 {
    let wait = opts.timeout.min(Duration::from_secs(1));
    let deadline = Instant::now() + wait;
    let mut extra = held as u64;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => extra = extra.saturating_add(n as u64),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    extra
}

/// Sets the read timeout to what is left before `deadline`.
fn time_left(stream: &TcpStream, deadline: Instant, opts: &ClientOptions) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        bail!(
            "no echo from the server within {:?} (--timeout); does the server echo (e.g. the lab's v2/v3 servers before exercises 4.3/5.3 do not)?",
            opts.timeout
        );
    }
    stream.set_read_timeout(Some(left))?;
    Ok(())
}

fn read_frame_echo(
    stream: &mut TcpStream,
    reader: &mut FrameReader,
    sent: &[u8],
    deadline: Instant,
    log: &Log,
    opts: &ClientOptions,
) -> Result<bool> {
    let framing = reader.framing();
    loop {
        if let Some(f) = reader
            .next_frame()
            .context("the server's echo is not a valid frame")?
        {
            let ok = f.raw == sent;
            log.emit(&Event::Echo {
                frame: Some((framing, f)),
                data: &[],
                ok,
            });
            return Ok(ok);
        }
        time_left(stream, deadline, opts)?;
        match reader.read_from(stream) {
            Ok(0) => {
                let partial = match reader.finish() {
                    Err(e) => format!(" ({e})"),
                    Ok(()) => String::new(),
                };
                bail!(
                    "the server closed the connection before echoing{partial}; it may have refused the connection (connection limit) or rejected the frame (see its log)"
                );
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                time_left(stream, deadline, opts)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow!("waiting for the echo failed: {e}")),
        }
    }
}

fn read_text_echo(
    stream: &mut TcpStream,
    sent: &[u8],
    deadline: Instant,
    log: &Log,
    opts: &ClientOptions,
) -> Result<bool> {
    // TCP may deliver the echo in pieces: read until as many bytes as sent.
    let mut got = vec![0u8; sent.len()];
    let mut have = 0;
    while have < got.len() {
        time_left(stream, deadline, opts)?;
        let spare = got.get_mut(have..).unwrap_or_default();
        match stream.read(spare) {
            Ok(0) => bail!(
                "the server closed the connection after {have} of {} echo bytes",
                sent.len()
            ),
            Ok(n) => have = have.saturating_add(n),
            Err(e) if is_timeout(&e) => {
                time_left(stream, deadline, opts)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow!("waiting for the echo failed: {e}")),
        }
    }
    let ok = got == sent;
    log.emit(&Event::Echo {
        frame: None,
        data: &got,
        ok,
    });
    Ok(ok)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn run_udp(
    opts: &ClientOptions,
    addrs: &[SocketAddr],
    messages: &mut Messages,
    log: &Log,
) -> Result<ClientReport> {
    let Some(&remote) = addrs.first() else {
        bail!("no address to send to");
    };
    let any: SocketAddr = if remote.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).context("cannot open a UDP socket")?;
    // connect() on UDP sends nothing: it fixes the peer, makes the OS pick
    // our ephemeral port now (so we can print it), and lets an ICMP "port
    // unreachable" come back as an error instead of being lost.
    socket
        .connect(remote)
        .with_context(|| format!("cannot reach {remote}"))?;
    let local = socket.local_addr()?;
    log.emit(&Event::Connected {
        local,
        remote,
        proto: "udp",
    });
    let no_server = |e: &io::Error| {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            anyhow!(
                "no UDP server on {remote}: the host answered \"port unreachable\"; start one with `rc1 server --proto udp --port {}`",
                remote.port()
            )
        } else {
            anyhow!("UDP to {remote} failed: {e}")
        }
    };
    let mut report = ClientReport::default();
    let mut buf = vec![0u8; 65_536];
    while let Some(msg) = messages.next_message() {
        let msg = msg.context("cannot read the next message from stdin")?;
        socket.send(msg.as_bytes()).map_err(|e| no_server(&e))?;
        report.sent = report.sent.saturating_add(1);
        log.emit(&Event::Sent {
            frame: None,
            data: msg.as_bytes(),
        });
        if opts.udp_echo {
            socket.set_read_timeout(Some(opts.timeout))?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => bail!(
                    "no UDP echo within {:?} (--timeout): was the server started with --echo? (UDP may also lose datagrams)",
                    opts.timeout
                ),
                Err(e) => return Err(no_server(&e)),
            };
            let got = buf.get(..n).unwrap_or_default();
            let ok = got == msg.as_bytes();
            log.emit(&Event::Echo {
                frame: None,
                data: got,
                ok,
            });
            if ok {
                report.echoed = report.echoed.saturating_add(1);
            } else {
                report.mismatched = report.mismatched.saturating_add(1);
            }
        }
    }
    Ok(report)
}
