//! One client connection's protocol work, shared by the thread-per-client
//! and the selector servers: read bytes, turn them into messages, log each
//! one and queue its echo.
//!
//! * text (exercises 2 and 3): each read is one message, as the lab server's
//!   `recv()` sees it, echoed as is.
//! * v2 / v3 (exercises 4.3 and 5.3): bytes go through [`FrameReader`], so a
//!   frame split across reads or several frames in one read are handled; each
//!   whole frame is echoed byte for byte (`raw`), padding included.
//!
//! Echo bytes are appended to an output buffer so one `write` carries many
//! echoes (no syscall per frame).

use std::io::{self, Read};
use std::net::SocketAddr;

use super::event::{ConnStats, Event, Log};
use crate::codec::stream::{FIRST_READ, next_read_size};
use crate::codec::{DecodeError, FrameReader, Framing};

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    /// Raw text, echoed per read.
    Text,
    /// v2 or v3 frames.
    Framed(Framing),
}

enum Reader {
    Text {
        buf: Vec<u8>,
        len: usize,
    },
    /// Boxed: the selector holds thousands of idle connections, and the
    /// variant's size is every connection's.
    Framed(Box<FrameReader>),
}

/// A connection's protocol state.
pub struct Conn {
    /// Connection number, from 1.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Selector token (text-sel only).
    pub token: Option<usize>,
    /// Counters.
    pub stats: ConnStats,
    reader: Reader,
}

impl Conn {
    /// A fresh connection.
    pub fn new(id: u64, peer: SocketAddr, speaks: Speaks, max_frame: u32) -> Conn {
        let reader = match speaks {
            // Allocated at the first read: an idle connection (the selector
            // holds thousands) costs no buffer, and one that trickles bytes
            // a small one; it grows for a client that sends a lot.
            Speaks::Text => Reader::Text {
                buf: Vec::new(),
                len: 0,
            },
            Speaks::Framed(f) => Reader::Framed(Box::new(FrameReader::new(f, max_frame))),
        };
        Conn {
            id,
            peer,
            token: None,
            stats: ConnStats::default(),
            reader,
        }
    }

    /// Reads once from `r`. `Ok(0)` is end of stream.
    pub fn read_from<R: Read + ?Sized>(&mut self, r: &mut R) -> io::Result<usize> {
        let n = match &mut self.reader {
            Reader::Text { buf, len } => {
                if buf.is_empty() {
                    buf.resize(FIRST_READ, 0);
                }
                let n = r.read(buf)?;
                *len = n;
                let size = next_read_size(buf.len(), n, buf.len());
                if size > buf.len() {
                    buf.resize(size, 0);
                }
                n
            }
            Reader::Framed(fr) => fr.read_from(r)?,
        };
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(n as u64);
        Ok(n)
    }

    /// Handles what the last read brought: logs each message and appends
    /// its echo to `out`. On a decode error, the echoes of the frames before
    /// it are already in `out`; the connection should then be closed.
    pub fn process(&mut self, log: &Log, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let verbose = log.verbose();
        match &mut self.reader {
            Reader::Text { buf, len } => {
                let data = buf.get(..*len).unwrap_or_default();
                if !data.is_empty() {
                    if verbose {
                        log.emit(&Event::Text {
                            conn: self.id,
                            peer: self.peer,
                            data,
                            token: self.token,
                        });
                    }
                    out.extend_from_slice(data);
                    self.stats.messages = self.stats.messages.saturating_add(1);
                }
                *len = 0;
                Ok(())
            }
            Reader::Framed(fr) => {
                let framing = fr.framing();
                while let Some(frame) = fr.next_frame()? {
                    if verbose {
                        log.emit(&Event::Frame {
                            conn: self.id,
                            peer: self.peer,
                            framing,
                            frame,
                        });
                    }
                    out.extend_from_slice(frame.raw);
                    self.stats.messages = self.stats.messages.saturating_add(1);
                }
                Ok(())
            }
        }
    }

    /// At end of stream: an error when the client left inside a frame.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match &self.reader {
            Reader::Text { .. } => Ok(()),
            Reader::Framed(fr) => fr.finish(),
        }
    }

    /// A read failed (the client reset the connection, or the socket broke):
    /// logs a frame it cut and returns the close reason.
    pub fn read_failed(&self, log: &Log, e: &io::Error) -> String {
        let how = if e.kind() == io::ErrorKind::ConnectionReset {
            "client reset the connection (RST)".to_string()
        } else {
            format!("read failed: {e}")
        };
        match self.finish() {
            Ok(()) => how,
            Err(d) => {
                self.log_decode_error(log, &d, &format!("{how}: "));
                format!("{how} mid-frame")
            }
        }
    }

    /// Logs a decode error for this connection (it will be closed).
    pub fn log_decode_error(&self, log: &Log, e: &DecodeError, when: &str) {
        log.emit(&Event::Error {
            conn: Some(self.id),
            peer: Some(self.peer),
            code: e.diagnostic().code,
            message: format!("{when}{e}; closing this connection, other clients are not affected"),
        });
    }
}
