//! Saved captures read by hand: classic pcap and pcapng.
//!
//! libpcap reads a pcapng file only when all its interfaces share one link
//! type and snap length (it stops with "an interface has a type different
//! from the type of the first interface"), yet that is what Wireshark
//! writes when it captures on two interfaces at once, e.g. `any` and `eth0`.
//! So rc1 reads both formats itself, following the pcapng specification
//! (draft-ietf-opsawg-pcapng) and libpcap's `pcap-savefile(5)`:
//!
//! * **pcap**: either byte order; microsecond (`a1b2c3d4`) or nanosecond
//!   (`a1b23c4d`) timestamps; the "modified" format (`a1b2cd34`, 24-byte
//!   record headers). A record longer than the file's snap length is cut
//!   to it, as libpcap does (the packet is then reported as snapped).
//! * **pcapng**: every Interface Description Block has its own link type,
//!   snap length, `if_tsresol` (decimal or binary) and `if_tsoffset`;
//!   Enhanced, Simple and obsolete Packet Blocks; any number of Section
//!   Header Blocks, each with its own byte order and interfaces; blocks of
//!   other types (name resolution, statistics, custom, unknown) are skipped.
//!
//! # Hostile files
//!
//! Every length is checked before it is used: a record or block may claim
//! at most [`MAX_RECORD`] / [`MAX_BLOCK`] bytes, and nothing is allocated
//! for a claim before the check. A file that stops making sense (cut inside
//! a record, a block whose lengths disagree, a packet on an interface never
//! described) ends the read with a [`FileError`] that gives the byte offset
//! and the packets read before it; every packet before it has been handed
//! out. Nothing here panics on any input.
//!
//! # Reading
//!
//! The file is read in large chunks into one buffer, and each packet is a
//! slice of that buffer, valid until the next call: no copy per packet.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::source::Timestamp;

/// Largest captured length of a pcap record believed: libpcap's own
/// maximum snap length (256 KiB).
pub const MAX_RECORD: u32 = 256 * 1024;

/// Largest pcapng block believed: libpcap's limit (16 MiB).
pub const MAX_BLOCK: u32 = 16 * 1024 * 1024;

/// Bytes asked of the file per read.
const CHUNK: usize = 1 << 20;

/// One packet of a saved capture, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub struct FilePacket<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Length on the wire (may exceed `data.len()`: cut by the snap length).
    pub len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Its link type (`LINKTYPE_*`).
    pub linktype: i32,
    /// pcapng: the interface (numbered across sections from 0, in the
    /// order they are described); pcap: 0.
    pub interface: u32,
    /// File offset just past this packet's record or block.
    pub end: u64,
}

/// One interface described by the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Link type (`LINKTYPE_*`).
    pub linktype: i32,
    /// Snap length (0: none given).
    pub snaplen: u32,
    /// `if_name`, if the file gives one.
    pub name: Option<String>,
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The file is not pcap or pcapng at all.
    #[error("not a capture file rc1 can read: {0}; rc1 reads pcap and pcapng")]
    NotCapture(String),
    /// The file ends inside a record or block.
    #[error(
        "cut short after packet {packets}: the {what} at byte {offset} needs {need} bytes, \
         the file has {have} left; everything before it was decoded"
    )]
    Cut {
        /// Packets read before it.
        packets: u64,
        /// What was being read.
        what: &'static str,
        /// Its byte offset.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// A record or block that contradicts itself.
    #[error(
        "corrupt after packet {packets}: the {what} at byte {offset} {problem}; \
         everything before it was decoded"
    )]
    Corrupt {
        /// Packets read before it.
        packets: u64,
        /// What was being read.
        what: &'static str,
        /// Its byte offset.
        offset: u64,
        /// What is wrong, as a sentence fragment.
        problem: String,
    },
    /// Reading the file failed.
    #[error("cannot read: {0}")]
    Io(String),
}

/// The file's bytes, read in chunks: `buf[start..end]` is unconsumed.
struct Buffer {
    file: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`.
    offset: u64,
}

impl Buffer {
    fn new(file: Box<dyn Read + Send>) -> Buffer {
        Buffer {
            file,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
        }
    }

    fn available(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Makes `n` bytes available if the file has them; returns how many
    /// are (fewer than `n` only at the end of the file). `n` is bounded by
    /// the callers' checks ([`MAX_BLOCK`] at most).
    fn fill(&mut self, n: usize) -> Result<usize, FileError> {
        while self.available() < n && !self.eof {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end = self.end.saturating_sub(self.start);
                self.start = 0;
            }
            if self.buf.len() < n {
                self.buf.resize(n.max(CHUNK), 0);
            }
            let room = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.file.read(room) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end = self.end.saturating_add(k),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FileError::Io(e.to_string())),
            }
        }
        Ok(self.available().min(n))
    }

    /// The next `n` available bytes (call [`Buffer::fill`] first).
    fn peek(&self, n: usize) -> &[u8] {
        let end = self.start.saturating_add(n).min(self.end);
        self.buf.get(self.start..end).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.available());
        self.start = self.start.saturating_add(n);
        self.offset = self.offset.saturating_add(n as u64);
    }

    /// Bytes left in the file, as far as read (for messages).
    fn left(&self) -> u64 {
        self.available() as u64
    }
}

/// Byte order of a file or section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    /// `N` bytes at `at` (zeros where `b` is too short: callers check
    /// lengths first).
    fn take<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(s) = b.get(at..at.saturating_add(N)) {
            a.copy_from_slice(s);
        }
        a
    }

    fn u16(self, b: &[u8], at: usize) -> u16 {
        let a = Order::take(b, at);
        match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let a = Order::take(b, at);
        match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        }
    }

    fn u64(self, b: &[u8], at: usize) -> u64 {
        let a = Order::take(b, at);
        match self {
            Order::Little => u64::from_le_bytes(a),
            Order::Big => u64::from_be_bytes(a),
        }
    }
}

/// An interface as pcapng describes it, with its clock.
#[derive(Debug, Clone)]
struct NgInterface {
    info: Interface,
    /// Timestamp units per second.
    units: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
    /// Number across the whole file.
    global: u32,
}

/// What kind of file, and its state.
enum Format {
    Pcap {
        order: Order,
        nanos: bool,
        /// Record header length: 16, or 24 in the "modified" format.
        header: usize,
        linktype: i32,
        snaplen: u32,
    },
    PcapNg {
        order: Order,
        /// Interfaces of the current section.
        interfaces: Vec<NgInterface>,
    },
}

/// A pcap or pcapng file being read.
pub struct Reader {
    buf: Buffer,
    format: Format,
    /// Bytes of the last packet handed out, consumed at the next call.
    pending: usize,
    packets: u64,
    /// Every interface described so far, in order.
    interfaces: Vec<Interface>,
    /// Set once an error was returned: nothing more is read.
    failed: bool,
    /// Time of the last packet (a Simple Packet Block has none of its own).
    last_ts: Timestamp,
}

/// pcap magic numbers as read little-endian.
const PCAP_USEC: u32 = 0xA1B2_C3D4;
const PCAP_NSEC: u32 = 0xA1B2_3C4D;
const PCAP_MODIFIED: u32 = 0xA1B2_CD34;
/// pcapng Section Header Block type (the same in both byte orders).
const SHB: u32 = 0x0A0D_0D0A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

impl Reader {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Reader, FileError> {
        let file = File::open(path).map_err(|e| FileError::Io(e.to_string()))?;
        Reader::new(Box::new(file))
    }

    /// Reads a capture from any reader (tests, fuzzing).
    pub fn new(input: Box<dyn Read + Send>) -> Result<Reader, FileError> {
        let mut buf = Buffer::new(input);
        let have = buf.fill(24)?;
        let head = buf.peek(have);
        if head.len() < 4 {
            return Err(FileError::NotCapture(format!(
                "{} byte(s), too short for a file header",
                head.len()
            )));
        }
        let le = Order::Little.u32(head, 0);
        let be = Order::Big.u32(head, 0);
        let pcap = [PCAP_USEC, PCAP_NSEC, PCAP_MODIFIED];
        let format = if pcap.contains(&le) || pcap.contains(&be) {
            let (order, magic) = if pcap.contains(&le) {
                (Order::Little, le)
            } else {
                (Order::Big, be)
            };
            if head.len() < 24 {
                return Err(FileError::NotCapture(format!(
                    "a pcap header of {} bytes (24 needed)",
                    head.len()
                )));
            }
            let major = order.u16(head, 4);
            if major != 2 {
                return Err(FileError::NotCapture(format!(
                    "pcap version {major}.{} (rc1 reads version 2)",
                    order.u16(head, 6)
                )));
            }
            // The low 16 bits are the link type; the upper ones may carry
            // an FCS length (pcap-linktype(7)).
            let linktype = i32::from(u16::try_from(order.u32(head, 20) & 0xFFFF).unwrap_or(0));
            let snaplen = order.u32(head, 16);
            buf.consume(24);
            Format::Pcap {
                order,
                nanos: magic == PCAP_NSEC,
                header: if magic == PCAP_MODIFIED { 24 } else { 16 },
                linktype,
                snaplen,
            }
        } else if le == SHB {
            // The section header is read as the first block.
            Format::PcapNg {
                order: Order::Little,
                interfaces: Vec::new(),
            }
        } else if head.starts_with(&[0x1F, 0x8B]) {
            return Err(FileError::NotCapture(
                "it is gzip-compressed: decompress it first (gunzip)".into(),
            ));
        } else {
            return Err(FileError::NotCapture(format!(
                "unknown file format (first bytes {})",
                head.iter()
                    .take(4)
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )));
        };
        let mut r = Reader {
            buf,
            interfaces: Vec::new(),
            format,
            pending: 0,
            packets: 0,
            failed: false,
            last_ts: Timestamp::default(),
        };
        if let Format::Pcap {
            linktype, snaplen, ..
        } = r.format
        {
            r.interfaces.push(Interface {
                linktype,
                snaplen,
                name: None,
            });
        } else {
            // The first block must be a section header, and a good one.
            r.section_header()?;
        }
        Ok(r)
    }

    /// Every interface the file described so far (pcap: the one).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Whether this is a pcapng file.
    pub fn is_pcapng(&self) -> bool {
        matches!(self.format, Format::PcapNg { .. })
    }

    /// Bytes of the file consumed so far.
    pub fn offset(&self) -> u64 {
        self.buf.offset.saturating_add(self.pending as u64)
    }

    /// Packets read so far (kept or passed over).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The next packet, `None` at the end of the file.
    pub fn next_packet(&mut self) -> Result<Option<FilePacket<'_>>, FileError> {
        self.next_packet_where(&mut |_| true)
    }

    /// The next packet that `keep` accepts (the others are passed over),
    /// `None` at the end of the file.
    pub fn next_packet_where(
        &mut self,
        keep: &mut dyn FnMut(&FilePacket<'_>) -> bool,
    ) -> Result<Option<FilePacket<'_>>, FileError> {
        loop {
            self.buf.consume(self.pending);
            self.pending = 0;
            if self.failed {
                return Ok(None);
            }
            let r = match self.format {
                Format::Pcap { .. } => self.pcap_record(),
                Format::PcapNg { .. } => self.pcapng_packet(),
            };
            let (start, mut meta) = match r {
                Ok(Some(x)) => x,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            };
            match meta.ts {
                None => meta.ts = Some(self.last_ts),
                Some(ts) => self.last_ts = ts,
            }
            let all = self.buf.peek(self.pending).len();
            let b = start.saturating_add(meta.caplen).min(all);
            let a = start.min(b);
            // Every record counts for messages ("cut short after packet
            // N"), kept or not.
            self.packets = self.packets.saturating_add(1);
            let end = self.buf.offset.saturating_add(self.pending as u64);
            let wanted = {
                let p = FilePacket {
                    ts: meta.ts.unwrap_or_default(),
                    len: meta.len,
                    data: self.buf.peek(self.pending).get(a..b).unwrap_or_default(),
                    linktype: meta.linktype,
                    interface: meta.interface,
                    end,
                };
                keep(&p)
            };
            if !wanted {
                continue;
            }
            return Ok(Some(FilePacket {
                ts: meta.ts.unwrap_or_default(),
                len: meta.len,
                data: self.buf.peek(self.pending).get(a..b).unwrap_or_default(),
                linktype: meta.linktype,
                interface: meta.interface,
                end,
            }));
        }
    }

    fn cut(&self, what: &'static str, need: u64) -> FileError {
        FileError::Cut {
            packets: self.packets,
            what,
            offset: self.buf.offset,
            need,
            have: self.buf.left(),
        }
    }

    fn corrupt(&self, what: &'static str, problem: String) -> FileError {
        FileError::Corrupt {
            packets: self.packets,
            what,
            offset: self.buf.offset,
            problem,
        }
    }

    /// One pcap record: where its data starts in the pending bytes.
    fn pcap_record(&mut self) -> Result<Option<(usize, Meta)>, FileError> {
        let Format::Pcap {
            order,
            nanos,
            header,
            linktype,
            snaplen,
        } = self.format
        else {
            return Ok(None);
        };
        let have = self.buf.fill(header)?;
        if have == 0 {
            return Ok(None);
        }
        if have < header {
            return Err(self.cut("record header", header as u64));
        }
        let h = self.buf.peek(header);
        let (sec, frac, caplen, len) = (
            order.u32(h, 0),
            order.u32(h, 4),
            order.u32(h, 8),
            order.u32(h, 12),
        );
        if caplen > MAX_RECORD {
            return Err(self.corrupt(
                "record",
                format!(
                    "claims a captured length of {caplen} bytes, over the {MAX_RECORD}-byte \
                     maximum (the file is damaged from here)"
                ),
            ));
        }
        let total = header.saturating_add(caplen as usize);
        if self.buf.fill(total)? < total {
            return Err(self.cut("record", total as u64));
        }
        // Longer than the snap length: cut to it, as libpcap reads it.
        let keep = if snaplen > 0 && caplen > snaplen {
            snaplen
        } else {
            caplen
        };
        let usec = if nanos { frac / 1000 } else { frac };
        self.pending = total;
        Ok(Some((
            header,
            Meta {
                ts: Some(Timestamp {
                    sec: i64::from(sec),
                    usec: usec.min(999_999),
                }),
                len: len.max(keep),
                caplen: keep as usize,
                linktype,
                interface: 0,
            },
        )))
    }

    /// Reads blocks until a packet (or the end).
    fn pcapng_packet(&mut self) -> Result<Option<(usize, Meta)>, FileError> {
        loop {
            let have = self.buf.fill(8)?;
            if have == 0 {
                return Ok(None);
            }
            if have < 8 {
                return Err(self.cut("block header", 8));
            }
            let head = self.buf.peek(8);
            if Order::Little.u32(head, 0) == SHB {
                self.section_header()?;
                continue;
            }
            let Format::PcapNg { order, .. } = self.format else {
                return Ok(None);
            };
            let (kind, total) = (order.u32(head, 0), order.u32(head, 4));
            let block = self.block(kind, total)?;
            let body_len = block.saturating_sub(12);
            let body_at = 8usize;
            let found = match kind {
                // Interface Description Block.
                1 => {
                    self.interface(order, body_len)?;
                    None
                }
                // Enhanced Packet Block.
                6 => Some(self.packet_block(order, body_len, false)?),
                // Simple Packet Block: interface 0, no timestamp.
                3 => Some(self.simple(order, body_len)?),
                // Packet Block (obsolete).
                2 => Some(self.packet_block(order, body_len, true)?),
                // Name resolution, statistics, custom, unknown: skipped.
                _ => None,
            };
            match found {
                Some((start, meta)) => {
                    self.pending = block;
                    return Ok(Some((body_at.saturating_add(start), meta)));
                }
                None => self.buf.consume(block),
            }
        }
    }

    /// Checks a block's lengths and makes it available; its total length.
    fn block(&mut self, kind: u32, total: u32) -> Result<usize, FileError> {
        let what = block_name(kind);
        if total < 12 || total % 4 != 0 {
            return Err(self.corrupt(
                what,
                format!("has a length of {total} bytes (at least 12, a multiple of 4)"),
            ));
        }
        if total > MAX_BLOCK {
            return Err(self.corrupt(
                what,
                format!(
                    "claims {total} bytes, over the {MAX_BLOCK}-byte maximum (the file is \
                     damaged from here)"
                ),
            ));
        }
        let n = total as usize;
        if self.buf.fill(n)? < n {
            return Err(self.cut(what, u64::from(total)));
        }
        let order = match self.format {
            Format::PcapNg { order, .. } => order,
            Format::Pcap { order, .. } => order,
        };
        let trailer = order.u32(self.buf.peek(n), n.saturating_sub(4));
        if trailer != total {
            return Err(self.corrupt(
                what,
                format!("says {total} bytes at its start and {trailer} at its end"),
            ));
        }
        Ok(n)
    }

    /// A Section Header Block: a new byte order, new interfaces.
    fn section_header(&mut self) -> Result<(), FileError> {
        let have = self.buf.fill(12)?;
        if have < 12 {
            return Err(self.cut("section header", 28));
        }
        let head = self.buf.peek(12);
        let order = match Order::Little.u32(head, 8) {
            BYTE_ORDER_MAGIC => Order::Little,
            _ if Order::Big.u32(head, 8) == BYTE_ORDER_MAGIC => Order::Big,
            m => {
                return Err(self.corrupt(
                    "section header",
                    format!("has byte-order magic {m:#010x}, not 0x1a2b3c4d"),
                ));
            }
        };
        let total = order.u32(head, 4);
        self.format = Format::PcapNg {
            order,
            interfaces: Vec::new(),
        };
        if total < 28 {
            return Err(self.corrupt(
                "section header",
                format!("has a length of {total} bytes (at least 28)"),
            ));
        }
        let n = self.block(SHB, total)?;
        let major = order.u16(self.buf.peek(n), 12);
        if major != 1 {
            return Err(self.corrupt(
                "section header",
                format!("is pcapng version {major} (rc1 reads version 1)"),
            ));
        }
        self.buf.consume(n);
        Ok(())
    }

    fn interface(&mut self, order: Order, body_len: usize) -> Result<(), FileError> {
        if body_len < 8 {
            return Err(self.corrupt(
                "interface description",
                format!("has a body of {body_len} bytes (at least 8)"),
            ));
        }
        let body = self.buf.peek(body_len.saturating_add(8));
        let body = body.get(8..).unwrap_or_default();
        let linktype = i32::from(order.u16(body, 0));
        let snaplen = order.u32(body, 4);
        let mut tsresol = 6u8;
        let mut tsoffset = 0i64;
        let mut name = None;
        for (code, value) in options(order, body.get(8..).unwrap_or_default()) {
            match code {
                2 => name = Some(String::from_utf8_lossy(value).trim_end_matches('\0').into()),
                9 => tsresol = value.first().copied().unwrap_or(6),
                14 => tsoffset = i64::from_ne_bytes(order.u64(value, 0).to_ne_bytes()),
                _ => {}
            }
        }
        let exp = u32::from(tsresol & 0x7F);
        let units = if tsresol & 0x80 != 0 {
            1u128.checked_shl(exp)
        } else {
            10u128.checked_pow(exp)
        };
        let Some(units) = units.filter(|u| *u > 0 && *u <= 1u128 << 64) else {
            return Err(self.corrupt(
                "interface description",
                format!("gives a timestamp resolution (if_tsresol {tsresol:#04x}) rc1 cannot use"),
            ));
        };
        let info = Interface {
            linktype,
            snaplen,
            name,
        };
        let global = u32::try_from(self.interfaces.len()).unwrap_or(u32::MAX);
        self.interfaces.push(info.clone());
        if let Format::PcapNg { interfaces, .. } = &mut self.format {
            interfaces.push(NgInterface {
                info,
                units,
                offset: tsoffset,
                global,
            });
        }
        Ok(())
    }

    fn iface(&self, what: &'static str, id: u32) -> Result<NgInterface, FileError> {
        let Format::PcapNg { interfaces, .. } = &self.format else {
            return Err(self.corrupt(what, "is not in a pcapng section".into()));
        };
        interfaces.get(id as usize).cloned().ok_or_else(|| {
            self.corrupt(
                what,
                format!(
                    "is on interface {id}, but this section describes {} interface(s)",
                    interfaces.len()
                ),
            )
        })
    }

    /// Checks a packet's captured length against its block; the data
    /// start (from the body) and the metadata. `claim`: captured length,
    /// original length, timestamp in the interface's units.
    fn packet_in_block(
        &self,
        what: &'static str,
        iface: &NgInterface,
        fixed: usize,
        body_len: usize,
        (caplen, len, ts): (u32, u32, u64),
    ) -> Result<(usize, Meta), FileError> {
        let room = body_len.saturating_sub(fixed);
        if caplen as usize > room {
            return Err(self.corrupt(
                what,
                format!("says {caplen} captured bytes but holds only {room}"),
            ));
        }
        Ok((
            fixed,
            Meta {
                ts: Some(iface.time(ts)),
                len: len.max(caplen),
                caplen: caplen as usize,
                linktype: iface.info.linktype,
                interface: iface.global,
            },
        ))
    }

    /// An Enhanced Packet Block, or the obsolete Packet Block (`obsolete`:
    /// a 16-bit interface id and a drops count where the EPB has a 32-bit
    /// id); the rest of their layout is the same.
    fn packet_block(
        &mut self,
        order: Order,
        body_len: usize,
        obsolete: bool,
    ) -> Result<(usize, Meta), FileError> {
        let what = if obsolete {
            "packet block"
        } else {
            "enhanced packet block"
        };
        if body_len < 20 {
            return Err(self.corrupt(
                what,
                format!("has a body of {body_len} bytes (at least 20)"),
            ));
        }
        let body = self.buf.peek(body_len.saturating_add(8));
        let body = body.get(8..).unwrap_or_default();
        let id = if obsolete {
            u32::from(order.u16(body, 0))
        } else {
            order.u32(body, 0)
        };
        let ts = u64::from(order.u32(body, 4)) << 32 | u64::from(order.u32(body, 8));
        let (caplen, len) = (order.u32(body, 12), order.u32(body, 16));
        let iface = self.iface(what, id)?;
        self.packet_in_block(what, &iface, 20, body_len, (caplen, len, ts))
    }

    fn simple(&mut self, order: Order, body_len: usize) -> Result<(usize, Meta), FileError> {
        const WHAT: &str = "simple packet block";
        if body_len < 4 {
            return Err(self.corrupt(WHAT, format!("has a body of {body_len} bytes (at least 4)")));
        }
        let body = self.buf.peek(body_len.saturating_add(8));
        let len = order.u32(body.get(8..).unwrap_or_default(), 0);
        let iface = self.iface(WHAT, 0)?;
        // The captured part is the original length cut to the snap length
        // (and to what the block holds: its data is padded to 4 bytes).
        let room = u32::try_from(body_len.saturating_sub(4)).unwrap_or(u32::MAX);
        let mut caplen = len.min(room);
        if iface.info.snaplen > 0 {
            caplen = caplen.min(iface.info.snaplen);
        }
        // No timestamp: the packet is dated by the previous one.
        let (start, mut meta) =
            self.packet_in_block(WHAT, &iface, 4, body_len, (caplen, len, 0))?;
        meta.ts = None;
        meta.len = len;
        Ok((start, meta))
    }
}

/// Metadata of the next packet.
struct Meta {
    /// `None`: the block has no timestamp (dated by the previous packet).
    ts: Option<Timestamp>,
    len: u32,
    caplen: usize,
    linktype: i32,
    interface: u32,
}

impl NgInterface {
    /// A timestamp in this interface's units.
    fn time(&self, ts: u64) -> Timestamp {
        let units = self.units.max(1);
        let ts = u128::from(ts);
        let sec = i64::try_from(ts.checked_div(units).unwrap_or(0)).unwrap_or(i64::MAX);
        let frac = ts.checked_rem(units).unwrap_or(0);
        let usec = u32::try_from(
            frac.saturating_mul(1_000_000)
                .checked_div(units)
                .unwrap_or(0),
        )
        .unwrap_or(0);
        Timestamp {
            sec: sec.saturating_add(self.offset),
            usec: usec.min(999_999),
        }
    }
}

/// The name of a pcapng block type, for messages.
fn block_name(kind: u32) -> &'static str {
    match kind {
        SHB => "section header",
        1 => "interface description",
        2 => "packet block",
        3 => "simple packet block",
        4 => "name resolution block",
        5 => "interface statistics block",
        6 => "enhanced packet block",
        _ => "block",
    }
}

/// pcapng options: `(code, value)` until `opt_endofopt` or the end; a
/// malformed option ends the list (options are informative only).
fn options(order: Order, mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let code = order.u16(b, 0);
        let len = usize::from(order.u16(b, 2));
        if code == 0 {
            break;
        }
        let Some(value) = b.get(4..4usize.saturating_add(len)) else {
            break;
        };
        out.push((code, value));
        let padded = len.div_ceil(4).saturating_mul(4).saturating_add(4);
        b = b.get(padded..).unwrap_or_default();
    }
    out
}

/// Writes packets to a capture file (`-w`): pcapng when the name ends in
/// `.pcapng`, else pcap. A pcap file holds one link type (the first
/// packet's, or the live interface's): packets of another are not written
/// and counted in [`Writer::skipped`]. pcapng gets one interface per link
/// type, described before its first packet.
pub struct Writer {
    out: std::io::BufWriter<File>,
    pcapng: bool,
    /// pcap: the file's link type, once its header is written; pcapng: the
    /// link type of each interface described, in order.
    linktypes: Vec<i32>,
    /// Packets not written: their link type differs from the pcap file's.
    pub skipped: u64,
}

/// Snap length written in headers: libpcap's maximum.
const WRITE_SNAPLEN: u32 = MAX_RECORD;

impl Writer {
    /// Creates `path`; with `linktype`, a pcap header for it is written
    /// at once (a live capture's file is valid even with no packet).
    pub fn create(path: &Path, linktype: Option<i32>) -> std::io::Result<Writer> {
        use std::io::Write;
        let pcapng = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"));
        let mut w = Writer {
            out: std::io::BufWriter::with_capacity(CHUNK, File::create(path)?),
            pcapng,
            linktypes: Vec::new(),
            skipped: 0,
        };
        if pcapng {
            let mut shb = Vec::with_capacity(28);
            shb.extend_from_slice(&SHB.to_le_bytes());
            shb.extend_from_slice(&28u32.to_le_bytes());
            shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
            shb.extend_from_slice(&1u16.to_le_bytes());
            shb.extend_from_slice(&0u16.to_le_bytes());
            shb.extend_from_slice(&u64::MAX.to_le_bytes());
            shb.extend_from_slice(&28u32.to_le_bytes());
            w.out.write_all(&shb)?;
        }
        if let Some(lt) = linktype {
            w.interface_for(lt)?;
        }
        Ok(w)
    }

    /// The interface number of `linktype`, describing it first if needed;
    /// `None` when a pcap file already holds another link type.
    fn interface_for(&mut self, linktype: i32) -> std::io::Result<Option<u32>> {
        use std::io::Write;
        if let Some(i) = self.linktypes.iter().position(|&l| l == linktype) {
            return Ok(u32::try_from(i).ok());
        }
        if !self.pcapng && !self.linktypes.is_empty() {
            return Ok(None);
        }
        let lt = u16::try_from(linktype).unwrap_or(0);
        if self.pcapng {
            let mut idb = Vec::with_capacity(20);
            idb.extend_from_slice(&1u32.to_le_bytes());
            idb.extend_from_slice(&20u32.to_le_bytes());
            idb.extend_from_slice(&lt.to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&WRITE_SNAPLEN.to_le_bytes());
            idb.extend_from_slice(&20u32.to_le_bytes());
            self.out.write_all(&idb)?;
        } else {
            let mut h = Vec::with_capacity(24);
            h.extend_from_slice(&PCAP_USEC.to_le_bytes());
            h.extend_from_slice(&2u16.to_le_bytes());
            h.extend_from_slice(&4u16.to_le_bytes());
            h.extend_from_slice(&[0; 8]);
            h.extend_from_slice(&WRITE_SNAPLEN.to_le_bytes());
            h.extend_from_slice(&u32::from(lt).to_le_bytes());
            self.out.write_all(&h)?;
        }
        self.linktypes.push(linktype);
        Ok(u32::try_from(self.linktypes.len().saturating_sub(1)).ok())
    }

    /// Writes one packet.
    pub fn write(
        &mut self,
        ts: Timestamp,
        len: u32,
        data: &[u8],
        linktype: i32,
    ) -> std::io::Result<()> {
        use std::io::Write;
        let Some(id) = self.interface_for(linktype)? else {
            self.skipped = self.skipped.saturating_add(1);
            return Ok(());
        };
        let cap = data.get(..WRITE_SNAPLEN as usize).unwrap_or(data);
        let caplen = u32::try_from(cap.len()).unwrap_or(WRITE_SNAPLEN);
        let len = len.max(caplen);
        let sec = u32::try_from(ts.sec.max(0)).unwrap_or(u32::MAX);
        if self.pcapng {
            let micros = u64::from(sec)
                .saturating_mul(1_000_000)
                .saturating_add(u64::from(ts.usec));
            let padded = cap.len().div_ceil(4).saturating_mul(4);
            let total = u32::try_from(padded.saturating_add(32)).unwrap_or(u32::MAX);
            let mut h = Vec::with_capacity(28);
            h.extend_from_slice(&6u32.to_le_bytes());
            h.extend_from_slice(&total.to_le_bytes());
            h.extend_from_slice(&id.to_le_bytes());
            h.extend_from_slice(&u32::try_from(micros >> 32).unwrap_or(0).to_le_bytes());
            h.extend_from_slice(
                &u32::try_from(micros & 0xFFFF_FFFF)
                    .unwrap_or(0)
                    .to_le_bytes(),
            );
            h.extend_from_slice(&caplen.to_le_bytes());
            h.extend_from_slice(&len.to_le_bytes());
            self.out.write_all(&h)?;
            self.out.write_all(cap)?;
            self.out.write_all(
                [0u8; 3]
                    .get(..padded.saturating_sub(cap.len()))
                    .unwrap_or_default(),
            )?;
            self.out.write_all(&total.to_le_bytes())?;
        } else {
            let mut h = Vec::with_capacity(16);
            h.extend_from_slice(&sec.to_le_bytes());
            h.extend_from_slice(&ts.usec.to_le_bytes());
            h.extend_from_slice(&caplen.to_le_bytes());
            h.extend_from_slice(&len.to_le_bytes());
            self.out.write_all(&h)?;
            self.out.write_all(cap)?;
        }
        Ok(())
    }

    /// Flushes what is buffered to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        reason = "tests"
    )]

    use super::*;

    /// (time, original length, bytes, link type, interface) of each packet.
    type Got = Vec<(Timestamp, u32, Vec<u8>, i32, u32)>;

    fn read_all(bytes: Vec<u8>) -> (Got, Option<FileError>) {
        let mut r = match Reader::new(Box::new(std::io::Cursor::new(bytes))) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => out.push((p.ts, p.len, p.data.to_vec(), p.linktype, p.interface)),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    /// A little pcapng writer for the tests: blocks in either byte order.
    struct Ng {
        big: bool,
        out: Vec<u8>,
    }

    impl Ng {
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, kind: u32, body: &[u8]) {
            let mut body = body.to_vec();
            while body.len() % 4 != 0 {
                body.push(0);
            }
            let total = (body.len() + 12) as u32;
            let (k, t) = (self.u32(kind), self.u32(total));
            self.out.extend_from_slice(&k);
            self.out.extend_from_slice(&t);
            self.out.extend_from_slice(&body);
            self.out.extend_from_slice(&t);
        }
        fn section(&mut self, big: bool) {
            self.big = big;
            let mut b = Vec::new();
            b.extend_from_slice(&self.u32(BYTE_ORDER_MAGIC));
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&[0xFF; 8]);
            self.block(SHB, &b);
        }
        fn interface(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>) {
            let mut b = Vec::new();
            b.extend_from_slice(&self.u16(linktype));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&self.u32(snaplen));
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.u16(9));
                b.extend_from_slice(&self.u16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            b.extend_from_slice(&[0; 4]);
            self.block(1, &b);
        }
        fn enhanced(&mut self, id: u32, ts: u64, data: &[u8], len: u32) {
            let mut b = Vec::new();
            b.extend_from_slice(&self.u32(id));
            b.extend_from_slice(&self.u32((ts >> 32) as u32));
            b.extend_from_slice(&self.u32(ts as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(&self.u32(len));
            b.extend_from_slice(data);
            self.block(6, &b);
        }
    }

    #[test]
    fn pcapng_with_interfaces_of_different_link_types_and_clocks() {
        let mut ng = Ng {
            big: false,
            out: Vec::new(),
        };
        ng.section(false);
        ng.interface(1, 65535, None);
        ng.interface(276, 96, Some(9));
        ng.interface(101, 0, Some(0x8A));
        ng.enhanced(0, 1_700_000_000_123_456, b"eth", 3);
        ng.enhanced(1, 1_700_000_000_123_456_789, b"sll2", 200);
        ng.block(0x0000_BEEF, b"unknown!");
        ng.enhanced(2, 1_700_000_000u64 << 10 | 512, b"raw", 3);
        // Simple packet block: interface 0, cut to what it holds.
        let mut spb = Vec::new();
        spb.extend_from_slice(&5u32.to_le_bytes());
        spb.extend_from_slice(b"simpl");
        ng.block(3, &spb);
        // A second section, big-endian: interfaces start again at 0.
        ng.section(true);
        ng.interface(0, 65535, Some(3));
        ng.enhanced(0, 1_700_000_000_250, b"null", 4);
        let (got, err) = read_all(ng.out);
        assert_eq!(err, None);
        let ts = |sec, usec| Timestamp { sec, usec };
        assert_eq!(
            got,
            vec![
                (ts(1_700_000_000, 123_456), 3, b"eth".to_vec(), 1, 0),
                (ts(1_700_000_000, 123_456), 200, b"sll2".to_vec(), 276, 1),
                (ts(1_700_000_000, 500_000), 3, b"raw".to_vec(), 101, 2),
                (ts(1_700_000_000, 500_000), 5, b"simpl".to_vec(), 1, 0),
                (ts(1_700_000_000, 250_000), 4, b"null".to_vec(), 0, 3),
            ]
        );
    }

    #[test]
    fn pcapng_damage_is_reported_with_its_offset_after_what_came_before() {
        let mut ng = Ng {
            big: false,
            out: Vec::new(),
        };
        ng.section(false);
        ng.interface(1, 65535, None);
        ng.enhanced(0, 1, b"first", 5);
        let good = ng.out.len();
        ng.enhanced(0, 2, b"second", 6);
        let whole = ng.out.clone();
        // Cut inside the second packet block.
        let (got, err) = read_all(whole[..good + 20].to_vec());
        assert_eq!(got.len(), 1);
        assert!(
            matches!(err, Some(FileError::Cut { packets: 1, offset, .. }) if offset == good as u64),
            "{err:?}"
        );
        // Trailing length disagrees.
        let mut bad = whole.clone();
        let n = bad.len();
        bad[n - 4] ^= 0x40;
        let (got, err) = read_all(bad);
        assert_eq!(got.len(), 1);
        let msg = err.unwrap().to_string();
        assert!(msg.contains(&format!("at byte {good}")), "{msg}");
        // A packet on an interface never described.
        let mut ng2 = Ng {
            big: false,
            out: Vec::new(),
        };
        ng2.section(false);
        ng2.enhanced(3, 1, b"x", 1);
        let (_, err) = read_all(ng2.out);
        assert!(err.unwrap().to_string().contains("interface 3"));
        // A huge claim is refused before anything is allocated for it.
        let mut huge = whole[..good].to_vec();
        huge.extend_from_slice(&6u32.to_le_bytes());
        huge.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let (got, err) = read_all(huge);
        assert_eq!(got.len(), 1);
        assert!(err.unwrap().to_string().contains("maximum"));
    }

    #[test]
    fn pcap_in_both_byte_orders_and_both_resolutions() {
        for (magic, big) in [
            (PCAP_USEC, false),
            (PCAP_NSEC, false),
            (PCAP_USEC, true),
            (PCAP_NSEC, true),
        ] {
            let w = |v: u32| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let h = |v: u16| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let mut f = Vec::new();
            f.extend_from_slice(&w(magic));
            f.extend_from_slice(&h(2));
            f.extend_from_slice(&h(4));
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&w(65535));
            f.extend_from_slice(&w(1));
            let frac = if magic == PCAP_NSEC { 7_000_123 } else { 7_000 };
            for rec in [&b"abc"[..], b"defgh"] {
                f.extend_from_slice(&w(1_700_000_000));
                f.extend_from_slice(&w(frac));
                f.extend_from_slice(&w(rec.len() as u32));
                f.extend_from_slice(&w(rec.len() as u32 + 10));
                f.extend_from_slice(rec);
            }
            let (got, err) = read_all(f.clone());
            assert_eq!(err, None, "{magic:#x} {big}");
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].0.usec, 7_000);
            assert_eq!(got[1].1, 15);
            assert_eq!(got[1].2, b"defgh");
            // Every cut of the file: the packets before it, then an error
            // (or nothing for a cut at a record boundary); never a panic.
            for n in 0..f.len() {
                let (got, err) = read_all(f[..n].to_vec());
                assert!(got.len() <= 2);
                if n > 24 && n != 24 + 19 {
                    assert!(err.is_some(), "cut at {n}");
                }
            }
        }
    }

    #[test]
    fn noise_never_panics() {
        let mut x = 7u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for i in 0..3000 {
            let n = (next() % 300) as usize;
            let mut f: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            // Half of them start as a real file would.
            if i % 2 == 0 && f.len() >= 12 {
                f[..4].copy_from_slice(&SHB.to_le_bytes());
                f[8..12].copy_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
            }
            let _ = read_all(f);
        }
    }
}
