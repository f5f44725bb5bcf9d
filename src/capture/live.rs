//! Reading a live capture on a thread of its own: that thread takes the
//! packets out of libpcap's kernel ring and copies them into batches,
//! while the capture thread decodes the batch before.
//!
//! Why: beside a busy server and its clients (the lab's load test), the
//! kernel shares the cores out thread by thread, and one thread that both
//! drains the ring and decodes every frame got too small a share: the ring
//! overran and the kernel dropped packets, where a nice'd run of the same
//! build dropped none. The ring is now emptied by a thread that does
//! little else, and the decoding thread has its own share.
//!
//! Nothing is dropped here: when the decoder falls behind, the batches in
//! flight fill, this thread waits, the kernel's ring fills, and the kernel
//! drops and counts it (libpcap's counters, the capture's `kernel_dropped`;
//! the bytes are gaps in the streams, as before). The ring is read without
//! blocking: a batch goes over when it is full or when the ring is empty
//! (so a line waits no longer than libpcap's block timeout, as before);
//! with nothing for 100 ms, the capture thread sees [`Got::Idle`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use std::os::fd::AsRawFd;

use pcap::{Active, Capture};

use super::source::{RawPacket, Timestamp};

/// Bytes of packet data gathered before a batch is handed over.
const BATCH_BYTES: usize = 1024 * 1024;
/// Packets per batch at most.
const BATCH_PACKETS: usize = 4096;
/// Batches in flight (memory: about [`BATCH_BYTES`] each, beside the
/// kernel's ring).
const IN_FLIGHT: usize = 4;

/// The kernel counters: received, dropped by the kernel, dropped by the
/// interface.
pub type Stats = (u32, u32, u32);

#[derive(Debug, Clone, Copy)]
struct Meta {
    ts: Timestamp,
    len: u32,
    start: usize,
    end: usize,
}

#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    packets: Vec<Meta>,
    /// A read timed out with nothing after these packets.
    idle: bool,
    /// The capture ended after these packets: `None` inside for a stop
    /// (`pcap_breakloop`), else libpcap's error.
    end: Option<Option<String>>,
}

impl Batch {
    /// Empties the batch for reuse; false if a burst grew it past twice a batch (it is
    /// then freed: memory stays about the batches in flight).
    fn emptied(&mut self) -> bool {
        self.data.clear();
        self.packets.clear();
        self.idle = false;
        self.end = None;
        self.data.capacity() <= 2 * BATCH_BYTES
    }
}

/// What [`LiveAhead::next_packet`] gives.
pub enum Got<'a> {
    /// A packet.
    Packet(RawPacket<'a>),
    /// Nothing came for a read timeout.
    Idle,
    /// Stopped.
    End,
    /// libpcap failed.
    Error(String),
}

/// Stops a live capture from another thread (Ctrl+C): tells the ring
/// thread, which reads without blocking and stops after its batch.
pub struct StopHandle {
    stopping: Arc<AtomicBool>,
}

impl StopHandle {
    /// A handle that sets `stopping`.
    pub fn new(stopping: Arc<AtomicBool>) -> StopHandle {
        StopHandle { stopping }
    }

    /// Asks the capture to stop: what was read so far is still decoded.
    pub fn breakloop(&self) {
        // Not libpcap's breakloop: the ring thread never blocks inside
        // libpcap, and a breakloop seen between two packets drops the one
        // just taken. The thread sees this flag within a batch or 100 ms.
        self.stopping.store(true, Ordering::Release);
    }
}

/// A live capture read on its own thread.
pub struct LiveAhead {
    rx: Receiver<Batch>,
    recycle: SyncSender<Batch>,
    cur: Batch,
    next: usize,
    linktype: i32,
    stats: Arc<Mutex<Option<Stats>>>,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
}

impl LiveAhead {
    /// Starts reading `cap` (its filter already set) on a thread.
    /// `stopping`: set to make the thread end (see [`StopHandle`]).
    pub fn start(
        cap: Capture<Active>,
        linktype: i32,
        stopping: Arc<AtomicBool>,
    ) -> std::io::Result<LiveAhead> {
        // Non-blocking: an empty ring says so at once, and what was taken
        // from it goes to the decoder before the thread waits (see
        // `read_ring`). (`setnonblock` consumes the handle: on failure
        // there is none left to read, so that is an error.)
        let mut cap = cap.setnonblock().map_err(|e| {
            std::io::Error::other(format!("cannot read the capture without blocking: {e}"))
        })?;
        let stop = StopHandle::new(Arc::clone(&stopping));
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (recycle, spare) = sync_channel(IN_FLIGHT + 2);
        let stats = Arc::new(Mutex::new(None));
        let posted = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("rc1-ring".into())
            .spawn(move || read_ring(&mut cap, &tx, &spare, &posted, &stopping))?;
        Ok(LiveAhead {
            rx,
            recycle,
            cur: Batch::default(),
            next: 0,
            linktype,
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// The next packet, an idle read, or the end.
    pub fn next_packet(&mut self) -> Got<'_> {
        if self.next >= self.cur.packets.len() {
            if std::mem::take(&mut self.cur.idle) {
                return Got::Idle;
            }
            if let Some(end) = self.cur.end.take() {
                // Kept, so every later read says the same.
                self.cur.end = Some(end.clone());
                return end.map_or(Got::End, Got::Error);
            }
            let Ok(batch) = self.rx.recv() else {
                return Got::Error("the capture's reading thread stopped unexpectedly".into());
            };
            let mut old = std::mem::replace(&mut self.cur, batch);
            if old.emptied() {
                let _ = self.recycle.try_send(old);
            }
            self.next = 0;
            if self.cur.packets.is_empty() {
                return if std::mem::take(&mut self.cur.idle) {
                    Got::Idle
                } else {
                    match self.cur.end.clone() {
                        Some(end) => end.map_or(Got::End, Got::Error),
                        None => Got::Idle,
                    }
                };
            }
        }
        let Some(m) = self.cur.packets.get(self.next).copied() else {
            return Got::Idle; // not reached
        };
        self.next = self.next.saturating_add(1);
        Got::Packet(RawPacket {
            ts: m.ts,
            len: m.len,
            data: self.cur.data.get(m.start..m.end).unwrap_or_default(),
            linktype: self.linktype,
            interface: 0,
        })
    }

    /// The kernel's counters as the reading thread last read them (after
    /// its last batch once the capture has ended).
    pub fn stats(&self) -> Option<Stats> {
        self.stats.lock().ok().and_then(|s| *s)
    }
}

impl Drop for LiveAhead {
    fn drop(&mut self) {
        // A blocked read returns; a blocked send fails once the receiver
        // is gone (drained first, so the thread is not left waiting).
        self.stop.breakloop();
        while self.rx.try_recv().is_ok() {}
        let rx = std::mem::replace(&mut self.rx, sync_channel(1).1);
        drop(rx);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_ring(
    cap: &mut Capture<Active>,
    tx: &SyncSender<Batch>,
    spare: &Receiver<Batch>,
    stats: &Mutex<Option<Stats>>,
    stopping: &AtomicBool,
) {
    // Readable when the kernel hands a block of the ring over (full, or
    // at libpcap's block timeout). Without it, the thread sleeps 100 ms
    // between looks at an empty ring.
    let mut waiter = Waiter::new(cap.as_raw_fd());
    loop {
        let mut b = spare.try_recv().unwrap_or_default();
        while b.data.len() < BATCH_BYTES && b.packets.len() < BATCH_PACKETS {
            match cap.next_packet() {
                Ok(p) => {
                    let start = b.data.len();
                    b.data.extend_from_slice(p.data);
                    b.packets.push(Meta {
                        ts: Timestamp {
                            sec: p.header.ts.tv_sec,
                            usec: u32::try_from(p.header.ts.tv_usec).unwrap_or(0),
                        },
                        len: p.header.len,
                        start,
                        end: b.data.len(),
                    });
                }
                // Nothing in the ring just now (non-blocking), or a read
                // timeout (blocking): what was taken goes over; with
                // nothing taken, wait for the kernel's next block.
                Err(pcap::Error::TimeoutExpired) => {
                    if stopping.load(Ordering::Acquire) {
                        b.end = Some(None);
                        break;
                    }
                    if !b.packets.is_empty() {
                        break;
                    }
                    let woke = match waiter.as_mut() {
                        Some(w) => w.wait(IDLE),
                        // No way to wait for the descriptor: no busy loop.
                        None => {
                            std::thread::sleep(IDLE);
                            false
                        }
                    };
                    if woke {
                        continue;
                    }
                    b.idle = true;
                    break;
                }
                Err(pcap::Error::NoMorePackets) => {
                    b.end = Some(None);
                    break;
                }
                Err(e) => {
                    b.end = Some(Some(e.to_string()));
                    break;
                }
            }
        }
        if stopping.load(Ordering::Acquire) {
            // (Under load the ring is never empty: the stop is seen here.)
            b.end.get_or_insert(None);
        }
        let ended = b.end.is_some();
        if let (Ok(s), Ok(mut posted)) = (cap.stats(), stats.lock()) {
            *posted = Some((s.received, s.dropped, s.if_dropped));
        }
        if tx.send(b).is_err() || ended {
            return;
        }
    }
}

/// How long the ring thread waits for a block before it says the capture
/// is idle (the capture thread then flushes `-w`; a stop is seen as soon).
const IDLE: Duration = Duration::from_millis(100);

/// Waits for the capture's descriptor to become readable.
struct Waiter {
    poll: mio::Poll,
    events: mio::Events,
}

impl Waiter {
    /// `None` if the descriptor cannot be watched (the ring is then read
    /// looked at every 100 ms).
    fn new(fd: std::os::fd::RawFd) -> Option<Waiter> {
        let poll = mio::Poll::new().ok()?;
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(0),
                mio::Interest::READABLE,
            )
            .ok()?;
        Some(Waiter {
            poll,
            events: mio::Events::with_capacity(4),
        })
    }

    /// Whether the descriptor became readable within `timeout`.
    fn wait(&mut self, timeout: Duration) -> bool {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => !self.events.is_empty(),
            // A signal (Ctrl+C): read again, which sees a stop.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
            // Not a busy loop on an error that stays.
            Err(_) => {
                std::thread::sleep(timeout);
                false
            }
        }
    }
}
