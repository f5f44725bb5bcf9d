//! The capture pipeline on arbitrary packets under each supported link
//! type: parsing, sessions, reassembly, decoding and both output formats.
//! Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rc1::capture::packet::{self, linktype};
use rc1::capture::session::{ProtoChoice, Tracker, TrackerOptions};
use rc1::capture::source::Timestamp;
use rc1::report::{Printer, ReportOptions};

const LINKTYPES: [i32; 7] = [
    linktype::ETHERNET,
    linktype::NULL,
    linktype::LOOP,
    linktype::RAW,
    linktype::RAW_DLT,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut rest)) = data.split_first() else { return };
    let lt = LINKTYPES[usize::from(head) % LINKTYPES.len()];
    let mut tracker = Tracker::new(TrackerOptions {
        port: 5005,
        proto: ProtoChoice::Auto,
        max_frame: 1 << 16,
        max_buffered: 1 << 16,
    });
    let mut printer = Printer::new(
        std::io::sink(),
        ReportOptions { json: head & 0x80 != 0, tcp_events: true, quiet: false, flush_each: false },
    );
    let mut n = 0u64;
    // Packets: a length byte pair, then that many bytes.
    while let [a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
        let (pkt, after) = tail.split_at(len);
        rest = after;
        n += 1;
        let ts = Timestamp { sec: 1_700_000_000 + (n as i64) / 1000, usec: (n % 1000) as u32 * 1000 };
        match packet::parse(lt, pkt) {
            Ok(p) => tracker.packet(ts, &p, &mut printer),
            Err(e) => tracker.unparsed(ts, n, &e.to_string(), &mut printer),
        }
    }
    tracker.finish(&mut printer);
});
