//! The UDP server (lab exercise 1, `serverUDP.py`): prints every datagram
//! with its sender's `ip:port` — the client's ephemeral port, chosen by its
//! OS — and, with `--echo`, sends it back (the lab server does not answer).
//!
//! UDP keeps message boundaries: one datagram is one message, so no framing
//! is needed. The socket waits in a `mio` poll beside a waker, so Ctrl+C
//! ends it at once.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::event::{Event, Log};
use crate::stop::Stop;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

/// Largest UDP payload (IPv4: 65,507; IPv6 jumbograms aside).
const MAX_DATAGRAM: usize = 65_536;

/// Serves until `stop`; returns how many datagrams were received.
pub fn run(socket: UdpSocket, echo: bool, log: Arc<Log>, stop: Stop) -> io::Result<u64> {
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    let mut poll = Poll::new()?;
    let fd = socket.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), SOCKET, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    {
        let waker = waker.clone();
        stop.on_stop(move || {
            let _ = waker.wake();
        });
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut events = Events::with_capacity(8);
    let mut received: u64 = 0;
    while !stop.is_stopped() {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut errors_in_a_row = 0u32;
        loop {
            // `from` is what to answer to; `peer` is how it is shown.
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error from an earlier echo (the client is gone)
                // surfaces here on Linux: report it and keep serving.
                Err(e) => {
                    log.emit(&Event::Error {
                        conn: None,
                        peer: None,
                        code: "io.udp",
                        message: format!("receive failed: {e}; still serving"),
                    });
                    errors_in_a_row = errors_in_a_row.saturating_add(1);
                    if errors_in_a_row > 16 {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        errors_in_a_row = 0;
                    }
                    continue;
                }
            };
            errors_in_a_row = 0;
            let peer = super::net::canonical(from);
            received = received.saturating_add(1);
            let data = buf.get(..n).unwrap_or_default();
            let mut echoed = false;
            if echo {
                match socket.send_to(data, from) {
                    Ok(_) => echoed = true,
                    Err(e) => log.emit(&Event::Error {
                        conn: None,
                        peer: Some(peer),
                        code: "io.udp",
                        message: format!("echo failed: {e}"),
                    }),
                }
            }
            log.emit(&Event::Datagram {
                peer,
                local,
                data,
                echoed,
            });
        }
    }
    Ok(received)
}
