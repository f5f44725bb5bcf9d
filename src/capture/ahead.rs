//! Reading a file ahead, on a thread of its own: the file's records are
//! read, checked and filtered (BPF) there, in batches, while the main
//! thread decodes the batch before. On two cores this takes the read floor
//! (the kernel's copy of the file, the record walk, the filter) off the
//! decoding thread.
//!
//! Packets come out in file order, each with the counters as they stood
//! when it was read, so `-c N`, progress and the filtered count are what
//! a one-thread read gives; an error comes after the last packet before
//! it, as it would.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::savefile::{FileError, Interface, Reader};
use super::source::{RawPacket, Timestamp, compile, linktype_name};

/// Bytes of packet data gathered before a batch is handed over.
const BATCH_BYTES: usize = 1024 * 1024;
/// Packets per batch at most.
const BATCH_PACKETS: usize = 2048;
/// Batches in flight: enough to keep both threads busy, few enough to
/// bound memory (each about [`BATCH_BYTES`]).
const IN_FLIGHT: usize = 4;

/// One packet of a batch: where its bytes are in the batch's data.
#[derive(Debug, Clone, Copy)]
struct Meta {
    ts: Timestamp,
    len: u32,
    linktype: i32,
    interface: u32,
    start: usize,
    end: usize,
    /// File offset past the packet.
    file_end: u64,
    /// Packets rejected by the filter before this one.
    filtered: u64,
}

/// How a batch ends the file, if it does.
#[derive(Debug)]
pub enum End {
    /// The whole file was read.
    Eof,
    /// The file stops making sense after the batch's packets.
    File(FileError),
    /// Another error (a filter that cannot apply to a link type).
    Other(String),
}

#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    packets: Vec<Meta>,
    /// Set on the last batch.
    end: Option<End>,
    /// Filtered count after the batch.
    filtered: u64,
    /// The interfaces described so far, when they changed in this batch.
    interfaces: Option<Vec<Interface>>,
}

/// A file being read ahead.
pub struct Ahead {
    rx: Receiver<Batch>,
    recycle: SyncSender<Batch>,
    cur: Batch,
    next: usize,
    interfaces: Vec<Interface>,
    thread: Option<JoinHandle<()>>,
}

/// What [`Ahead::next_packet`] gives.
pub enum Got<'a> {
    /// A packet, the file offset past it, and the filtered count so far.
    Packet(RawPacket<'a>, u64, u64),
    /// The end, and the filtered count.
    End(End, u64),
}

impl Ahead {
    /// Starts reading `reader` on a thread, filtering with `filter` ("" for
    /// none), compiled per link type as met.
    pub fn start(reader: Reader, filter: String) -> std::io::Result<Ahead> {
        let interfaces = reader.interfaces().to_vec();
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let (recycle, spare) = sync_channel(IN_FLIGHT + 2);
        let thread = std::thread::Builder::new()
            .name("rc1-read".into())
            .spawn(move || read_all(reader, &filter, &tx, &spare))?;
        Ok(Ahead {
            rx,
            recycle,
            cur: Batch::default(),
            next: 0,
            interfaces,
            thread: Some(thread),
        })
    }

    /// The next packet, or the end.
    pub fn next_packet(&mut self) -> Got<'_> {
        while self.next >= self.cur.packets.len() {
            if let Some(end) = self.cur.end.take() {
                return Got::End(end, self.cur.filtered);
            }
            let Ok(batch) = self.rx.recv() else {
                // The thread is gone without saying why: only a panic does
                // that.
                return Got::End(
                    End::Other("the file reader stopped unexpectedly".into()),
                    self.cur.filtered,
                );
            };
            let mut old = std::mem::replace(&mut self.cur, batch);
            // Reused, unless a large packet grew it (a pcapng block may hold
            // 16 MiB): memory stays about the batches in flight.
            if old.data.capacity() <= 2 * BATCH_BYTES {
                old.data.clear();
                old.packets.clear();
                let _ = self.recycle.try_send(old);
            }
            self.next = 0;
            if let Some(i) = self.cur.interfaces.take() {
                self.interfaces = i;
            }
        }
        let Some(m) = self.cur.packets.get(self.next).copied() else {
            return Got::End(End::Eof, self.cur.filtered); // not reached
        };
        self.next = self.next.saturating_add(1);
        let data = self.cur.data.get(m.start..m.end).unwrap_or_default();
        Got::Packet(
            RawPacket {
                ts: m.ts,
                len: m.len,
                data,
                linktype: m.linktype,
                interface: m.interface,
            },
            m.file_end,
            m.filtered,
        )
    }

    /// The interfaces described up to the packets handed out (or a batch
    /// further).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        // Dropping the receiver makes the thread's next send fail; drain
        // what it has sent so it is not blocked, then wait for it.
        while self.rx.try_recv().is_ok() {}
        let rx = std::mem::replace(&mut self.rx, sync_channel(1).1);
        drop(rx);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_all(mut reader: Reader, filter: &str, tx: &SyncSender<Batch>, spare: &Receiver<Batch>) {
    let mut programs: Vec<(i32, pcap::BpfProgram)> = Vec::new();
    let mut filtered = 0u64;
    let mut known = reader.interfaces().len();
    loop {
        let mut b = spare.try_recv().unwrap_or_default();
        let mut failure = None;
        while b.data.len() < BATCH_BYTES && b.packets.len() < BATCH_PACKETS {
            let got = reader.next_packet_where(&mut |p| {
                if filter.is_empty() || failure.is_some() {
                    return true;
                }
                let at = match programs.iter().position(|(lt, _)| *lt == p.linktype) {
                    Some(at) => at,
                    None => match compile(filter, p.linktype) {
                        Ok(prog) => {
                            programs.push((p.linktype, prog));
                            programs.len().saturating_sub(1)
                        }
                        Err(e) => {
                            failure = Some(format!(
                                "the filter {filter:?} cannot apply to packets of link type \
                                 {} ({}) from interface {}: {e}",
                                p.linktype,
                                linktype_name(p.linktype),
                                p.interface
                            ));
                            return true;
                        }
                    },
                };
                let pass = programs
                    .get(at)
                    .is_some_and(|(_, prog)| prog.filter(p.data));
                if !pass {
                    filtered = filtered.saturating_add(1);
                }
                pass
            });
            if let Some(f) = failure.take() {
                b.end = Some(End::Other(f));
                break;
            }
            match got {
                Ok(Some(p)) => {
                    let start = b.data.len();
                    b.data.extend_from_slice(p.data);
                    b.packets.push(Meta {
                        ts: p.ts,
                        len: p.len,
                        linktype: p.linktype,
                        interface: p.interface,
                        start,
                        end: b.data.len(),
                        file_end: p.end,
                        filtered,
                    });
                }
                Ok(None) => {
                    b.end = Some(End::Eof);
                    break;
                }
                Err(e) => {
                    b.end = Some(End::File(e));
                    break;
                }
            }
        }
        if reader.interfaces().len() != known {
            known = reader.interfaces().len();
            b.interfaces = Some(reader.interfaces().to_vec());
        }
        b.filtered = filtered;
        let last = b.end.is_some();
        if tx.send(b).is_err() || last {
            return;
        }
    }
}
