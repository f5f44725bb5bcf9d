//! The printer on a thread of its own: events are packed into batches (the
//! bytes they borrow copied into one buffer per batch) and formatted and
//! written by a [`Printer`] on another thread, while the capture thread
//! decodes on. On two cores, formatting a line per frame (and the JSON
//! lines' hex) no longer adds to the decoding time. The lines are the
//! same, in the same order: the other thread replays the same events into
//! the same printer (a test compares the two on every fixture).

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{Printer, ReportOptions};
use crate::capture::event::{Dir, EchoMatch, Event, SessionSummary, Sink, Totals, Where};
use crate::codec::{FrameRef, Framing};

/// Bytes of copied data per batch before it is handed over.
const BATCH_BYTES: usize = 1024 * 1024;
/// Events per batch at most.
const BATCH_EVENTS: usize = 4096;
/// Batches in flight (bounds memory, about [`BATCH_BYTES`] each).
const IN_FLIGHT: usize = 4;

/// A byte range of a batch's data.
type Span = (usize, usize);

/// One event, its bytes in the batch's data.
enum Rec {
    Frame {
        at: Where,
        dir: Dir,
        offset: u64,
        framing: Framing,
        version: u8,
        order: u32,
        size: u32,
        raw: Span,
        message: Span,
        padding: Span,
        echo: Option<EchoMatch>,
    },
    Text {
        at: Where,
        dir: Dir,
        offset: u64,
        data: Span,
        echo: Option<EchoMatch>,
    },
    Udp {
        at: Where,
        dir: Dir,
        data: Span,
        truncated: bool,
    },
    /// An event that borrows nothing (detections, TCP events, diagnostics).
    Owned(Event<'static>),
    Session(Box<SessionSummary>),
    Finish(Box<Totals>),
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    recs: Vec<Rec>,
}

impl Batch {
    fn put(&mut self, bytes: &[u8]) -> Span {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        (start, self.data.len())
    }

    /// `part` of `whole` (a frame's message within its raw bytes) as a span
    /// of `whole`'s copy at `at`, or a copy of its own.
    fn put_within(&mut self, whole: &[u8], at: Span, part: &[u8]) -> Span {
        let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
        match p.checked_sub(w) {
            Some(off) if off.saturating_add(part.len()) <= whole.len() => {
                let start = at.0.saturating_add(off);
                (start, start.saturating_add(part.len()))
            }
            _ => self.put(part),
        }
    }

    fn get(&self, s: Span) -> &[u8] {
        self.data.get(s.0..s.1).unwrap_or_default()
    }
}

/// A [`Sink`] that prints on another thread.
pub struct Threaded<W: Write + Send + 'static> {
    opts: ReportOptions,
    batch: Batch,
    tx: Option<SyncSender<Batch>>,
    spare: Receiver<Batch>,
    thread: Option<JoinHandle<Option<W>>>,
    done: Option<W>,
}

impl<W: Write + Send + 'static> Threaded<W> {
    /// Starts a printer writing to `out` on its own thread.
    pub fn new(out: W, opts: ReportOptions) -> std::io::Result<Threaded<W>> {
        let (tx, rx) = sync_channel::<Batch>(IN_FLIGHT);
        let (recycle, spare) = sync_channel::<Batch>(IN_FLIGHT + 2);
        let thread = std::thread::Builder::new()
            .name("rc1-print".into())
            .spawn(move || {
                let mut p = Printer::new(out, opts);
                for mut b in rx {
                    for rec in &b.recs {
                        replay(&mut p, rec, &b);
                    }
                    // Reused, unless a large message grew it.
                    if b.data.capacity() <= 2 * BATCH_BYTES {
                        b.data.clear();
                        b.recs.clear();
                        let _ = recycle.try_send(b);
                    }
                }
                p.into_inner()
            })?;
        Ok(Threaded {
            opts,
            batch: Batch::default(),
            tx: Some(tx),
            spare,
            thread: Some(thread),
            done: None,
        })
    }

    fn push(&mut self, rec: Rec) {
        self.batch.recs.push(rec);
        if self.batch.data.len() >= BATCH_BYTES || self.batch.recs.len() >= BATCH_EVENTS {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.batch.recs.is_empty() {
            return;
        }
        let next = self.spare.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.tx
            && tx.send(full).is_err()
        {
            // The printing thread is gone (it only ends when told to, or
            // by a panic): nothing more can be printed.
            self.tx = None;
        }
    }

    /// Waits for every line to be written; the writer back.
    pub fn into_inner(mut self) -> Option<W> {
        self.close();
        self.done.take()
    }

    fn close(&mut self) {
        self.send();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            self.done = t.join().ok().flatten();
        }
    }
}

impl<W: Write + Send + 'static> Drop for Threaded<W> {
    /// Lines of a capture that stopped early (an error) are still written.
    fn drop(&mut self) {
        self.close();
    }
}

impl<W: Write + Send + 'static> Sink for Threaded<W> {
    fn event(&mut self, ev: &Event<'_>) {
        if !self.opts.prints(ev) {
            return;
        }
        let rec = match ev {
            Event::Frame {
                at,
                dir,
                offset,
                framing,
                frame,
                echo,
            } => {
                let raw = self.batch.put(frame.raw);
                let message = self.batch.put_within(frame.raw, raw, frame.message);
                let padding = self.batch.put_within(frame.raw, raw, frame.padding);
                Rec::Frame {
                    at: *at,
                    dir: *dir,
                    offset: *offset,
                    framing: *framing,
                    version: frame.version,
                    order: frame.order,
                    size: frame.size,
                    raw,
                    message,
                    padding,
                    echo: *echo,
                }
            }
            Event::Text {
                at,
                dir,
                offset,
                data,
                echo,
            } => Rec::Text {
                at: *at,
                dir: *dir,
                offset: *offset,
                data: self.batch.put(data),
                echo: *echo,
            },
            Event::Udp {
                at,
                dir,
                data,
                truncated,
            } => Rec::Udp {
                at: *at,
                dir: *dir,
                data: self.batch.put(data),
                truncated: *truncated,
            },
            Event::Detected {
                at,
                framing,
                reason,
            } => Rec::Owned(Event::Detected {
                at: *at,
                framing,
                reason: reason.clone(),
            }),
            Event::Tcp { at, what } => Rec::Owned(Event::Tcp {
                at: *at,
                what: *what,
            }),
            Event::Diagnostic {
                ts,
                at,
                dir,
                code,
                message,
                facts,
            } => Rec::Owned(Event::Diagnostic {
                ts: *ts,
                at: *at,
                dir: *dir,
                code,
                message: message.clone(),
                facts: facts.clone(),
            }),
        };
        self.push(rec);
    }

    fn session_end(&mut self, s: &SessionSummary) {
        self.push(Rec::Session(Box::new(s.clone())));
    }

    fn finish(&mut self, totals: &Totals) {
        self.push(Rec::Finish(Box::new(totals.clone())));
        self.close();
    }
}

/// Gives one recorded event to the printer.
fn replay<W: Write>(p: &mut Printer<W>, rec: &Rec, b: &Batch) {
    match rec {
        Rec::Frame {
            at,
            dir,
            offset,
            framing,
            version,
            order,
            size,
            raw,
            message,
            padding,
            echo,
        } => p.event(&Event::Frame {
            at: *at,
            dir: *dir,
            offset: *offset,
            framing: *framing,
            frame: FrameRef {
                version: *version,
                order: *order,
                size: *size,
                message: b.get(*message),
                padding: b.get(*padding),
                raw: b.get(*raw),
            },
            echo: *echo,
        }),
        Rec::Text {
            at,
            dir,
            offset,
            data,
            echo,
        } => p.event(&Event::Text {
            at: *at,
            dir: *dir,
            offset: *offset,
            data: b.get(*data),
            echo: *echo,
        }),
        Rec::Udp {
            at,
            dir,
            data,
            truncated,
        } => p.event(&Event::Udp {
            at: *at,
            dir: *dir,
            data: b.get(*data),
            truncated: *truncated,
        }),
        Rec::Owned(ev) => p.event(ev),
        Rec::Session(s) => p.session_end(s),
        Rec::Finish(t) => p.finish(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::event::{Fact, TcpWhat};
    use crate::capture::source::Timestamp;
    use std::net::SocketAddr;

    /// Events of every kind, over several batches; frames' messages are
    /// slices of their raw bytes, as the decoder gives them.
    fn feed(sink: &mut dyn Sink) {
        let at = |n: u64| Where {
            ts: Timestamp {
                sec: 1_700_000_000 + n as i64,
                usec: (n % 1_000_000) as u32,
            },
            session: 1 + n % 3,
            client: SocketAddr::from(([10, 0, 0, 1], 40000 + (n % 3) as u16)),
            server: SocketAddr::from(([10, 0, 0, 2], 5005)),
        };
        for n in 0..10_000u64 {
            let mut raw = vec![1u8, 0, 0, 0, n as u8, 0, 0, 0, 5];
            raw.extend_from_slice(format!("m\"{n}\n").as_bytes());
            raw.extend_from_slice(b"----x");
            let msg_end = raw.len() - 5;
            let frame = FrameRef {
                version: 1,
                order: n as u32,
                size: 25,
                message: &raw[9..msg_end],
                padding: &raw[msg_end..],
                raw: &raw,
            };
            let dir = if n % 2 == 0 {
                Dir::ToServer
            } else {
                Dir::ToClient
            };
            let echo = (n % 2 == 1).then_some(EchoMatch::Ok { latency_us: n });
            sink.event(&Event::Frame {
                at: at(n),
                dir,
                offset: n * 29,
                framing: Framing::V2,
                frame,
                echo,
            });
            sink.event(&Event::Text {
                at: at(n),
                dir,
                offset: n,
                data: &raw[..],
                echo: None,
            });
            if n % 1000 == 0 {
                sink.event(&Event::Udp {
                    at: at(n),
                    dir,
                    data: &[0xff, 0, b'a'],
                    truncated: true,
                });
                sink.event(&Event::Tcp {
                    at: at(n),
                    what: TcpWhat::Established { rtt_us: n },
                });
                sink.event(&Event::Detected {
                    at: at(n),
                    framing: "v2",
                    reason: format!("reason {n}"),
                });
                sink.event(&Event::Diagnostic {
                    ts: at(n).ts,
                    at: Some(at(n)),
                    dir: Some(dir),
                    code: "tcp.gap",
                    message: format!("gap {n}"),
                    facts: vec![("offset", Fact::Num(n)), ("length", Fact::Num(7))],
                });
            }
        }
        sink.finish(&Totals::default());
    }

    #[test]
    fn lines_are_the_same_as_the_printer_on_this_thread_writes() {
        for json in [false, true] {
            let opts = ReportOptions {
                json,
                tcp_events: true,
                ..ReportOptions::default()
            };
            let mut direct = Printer::new(Vec::new(), opts);
            feed(&mut direct);
            let want = direct.into_inner().unwrap();
            let mut threaded = Threaded::new(Vec::new(), opts).unwrap();
            feed(&mut threaded);
            let got = threaded.into_inner().unwrap();
            assert!(want.len() > 1_000_000, "{}", want.len());
            assert!(got == want, "json={json}: the threaded output differs");
        }
    }
}
