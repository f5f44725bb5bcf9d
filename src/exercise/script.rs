//! The clients' side of each exercise, played on loopback: the messages the
//! lab's clients would send, in a fixed order, so every run draws the same
//! ladder (only ports, times and sequence numbers change).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::codec::{Frame, Framing};
use crate::spec;

/// Pause between steps: long enough that each step is its own packets,
/// short enough that an exercise takes well under a second.
const STEP: Duration = Duration::from_millis(15);

/// The pause inside the frame sent in two writes (exercise 4).
pub const SPLIT_PAUSE: Duration = Duration::from_millis(40);

/// How long a client waits for an echo.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Bytes of the v2 frame written first when it is sent in two writes: the
/// 9-byte header alone.
pub const SPLIT_AT: usize = 9;

/// Order of the v2 frame that is sent in two writes.
pub const SPLIT_ORDER: u32 = 3;

/// The v3 message that is larger than one loopback segment (a 65,535-byte
/// packet carries at most 65,483 payload bytes with timestamps).
pub const V3_LARGE: usize = 70_000;

/// What one client did.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// The address the OS gave it (the ephemeral port).
    pub local: SocketAddr,
    /// Messages sent.
    pub sent: usize,
    /// Echoes received equal to what was sent.
    pub echoes_ok: usize,
}

/// What the clients did.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Each client, in the order they started.
    pub clients: Vec<ClientRun>,
}

/// Plays exercise `n`'s clients against `server`.
pub fn play(n: u8, server: SocketAddr) -> Result<Exchange> {
    match n {
        1 => udp(server),
        2 => text(server, 2),
        3 => text(server, 3),
        4 => v2(server),
        5 => v3(server),
        _ => bail!("there is no exercise {n} (the lab has 1 to 5)"),
    }
}

fn udp(server: SocketAddr) -> Result<Exchange> {
    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse()?
    } else {
        "[::1]:0".parse()?
    };
    let mut socks = Vec::new();
    for _ in 0..2 {
        // The lab's client never binds: port 0 asks the OS for a port, as
        // the first sendto() of an unbound socket does.
        socks.push(UdpSocket::bind(bind).context("cannot open a UDP socket")?);
    }
    let mut clients: Vec<ClientRun> = socks
        .iter()
        .map(|s| {
            Ok(ClientRun {
                local: s.local_addr()?,
                sent: 0,
                echoes_ok: 0,
            })
        })
        .collect::<Result<_>>()?;
    for round in ["hello from client", "bye from client"] {
        for (i, s) in socks.iter().enumerate() {
            let msg = format!("{round} {}", i + 1);
            s.send_to(msg.as_bytes(), server)
                .with_context(|| format!("client {} cannot send to {server}", i + 1))?;
            clients[i].sent += 1;
            sleep(STEP);
        }
    }
    Ok(Exchange { clients })
}

fn connect(server: SocketAddr, who: usize) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&server, TIMEOUT)
        .with_context(|| format!("client {who} cannot connect to {server}"))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Reads exactly `want.len()` bytes and says whether they equal `want`.
fn echo(s: &mut TcpStream, want: &[u8], who: usize) -> Result<bool> {
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got)
        .with_context(|| format!("client {who}: no whole echo within {TIMEOUT:?}"))?;
    Ok(got == want)
}

fn text(server: SocketAddr, n: usize) -> Result<Exchange> {
    let mut socks = Vec::new();
    let mut clients = Vec::new();
    // All connect first, so the sessions are open at the same time.
    for who in 1..=n {
        let s = connect(server, who)?;
        clients.push(ClientRun {
            local: s.local_addr()?,
            sent: 0,
            echoes_ok: 0,
        });
        socks.push(s);
        sleep(STEP);
    }
    for round in ["hello from client", "bye from client"] {
        for (i, s) in socks.iter_mut().enumerate() {
            let msg = format!("{round} {}", i + 1);
            s.write_all(msg.as_bytes())?;
            clients[i].sent += 1;
            if echo(s, msg.as_bytes(), i + 1)? {
                clients[i].echoes_ok += 1;
            }
            sleep(STEP);
        }
    }
    for s in socks {
        let _ = s.shutdown(std::net::Shutdown::Both);
        drop(s);
        sleep(STEP);
    }
    Ok(Exchange { clients })
}

/// The v2 messages: a short one, one longer than 20 characters (cut), and
/// one sent in two writes (its header alone, then the rest).
pub const V2_MESSAGES: [&str; 3] = [
    "hello",
    "this message is longer than twenty characters",
    "sent in two parts",
];

fn v2(server: SocketAddr) -> Result<Exchange> {
    let mut s = connect(server, 1)?;
    let mut me = ClientRun {
        local: s.local_addr()?,
        sent: 0,
        echoes_ok: 0,
    };
    for (i, msg) in V2_MESSAGES.iter().enumerate() {
        let order = i as u32 + 1;
        let bytes = Frame::v2_python(spec::LAB_VERSION, order, msg)?.to_bytes(Framing::V2);
        if order == SPLIT_ORDER {
            s.write_all(&bytes[..SPLIT_AT])?;
            sleep(SPLIT_PAUSE);
            s.write_all(&bytes[SPLIT_AT..])?;
        } else {
            s.write_all(&bytes)?;
        }
        me.sent += 1;
        if echo(&mut s, &bytes, 1)? {
            me.echoes_ok += 1;
        }
        sleep(STEP);
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    Ok(Exchange { clients: vec![me] })
}

/// The v3 message sizes: empty, short, one Ethernet MTU's worth, and more
/// than a loopback segment.
pub const V3_SIZES: [usize; 4] = [0, 5, 1500, V3_LARGE];

fn v3(server: SocketAddr) -> Result<Exchange> {
    let mut s = connect(server, 1)?;
    let mut me = ClientRun {
        local: s.local_addr()?,
        sent: 0,
        echoes_ok: 0,
    };
    for (i, &size) in V3_SIZES.iter().enumerate() {
        let message: Vec<u8> = if size == 5 {
            b"hello".to_vec()
        } else {
            (0..size).map(|k| b'a' + (k % 26) as u8).collect()
        };
        let bytes = Frame::v3(spec::LAB_VERSION, i as u32 + 1, &message)?.to_bytes(Framing::V3);
        // Sending and reading at once: a 70,000-byte echo may come back
        // while it is still being sent.
        let mut reader = s.try_clone()?;
        let want = bytes.clone();
        let read = std::thread::spawn(move || echo(&mut reader, &want, 1));
        s.write_all(&bytes)?;
        me.sent += 1;
        let ok = read
            .join()
            .map_err(|_| anyhow::anyhow!("the echo reader stopped"))??;
        if ok {
            me.echoes_ok += 1;
        }
        sleep(STEP);
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    Ok(Exchange { clients: vec![me] })
}
