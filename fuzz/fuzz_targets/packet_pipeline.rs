//! The capture pipeline on arbitrary packets under each supported link
//! type: parsing, tunnels, IP reassembly, sessions, TCP reassembly,
//! decoding and both output formats. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rc1::capture::Pipeline;
use rc1::capture::packet::linktype;
use rc1::capture::session::{ProtoChoice, TrackerOptions};
use rc1::capture::source::{RawPacket, Timestamp};
use rc1::capture::output::{Printer, ReportOptions};

/// The three framing files of fixtures/framings, loaded once.
fn customs() -> &'static [rc1::codec::Framing] {
    static CUSTOMS: std::sync::OnceLock<Vec<rc1::codec::Framing>> = std::sync::OnceLock::new();
    CUSTOMS.get_or_init(|| {
        [
            ("le16.toml", include_str!("../../fixtures/framings/le16.toml")),
            ("crc-trailer.toml", include_str!("../../fixtures/framings/crc-trailer.toml")),
            ("typed.toml", include_str!("../../fixtures/framings/typed.toml")),
        ]
        .into_iter()
        .map(|(name, text)| {
            let def: &'static rc1::framing::FramingDef =
                Box::leak(Box::new(rc1::framing::parse(text, name).expect("a fixture framing")));
            rc1::codec::Framing::Custom(def)
        })
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut rest)) = data.split_first() else { return };
    // Some runs also try the framing files of fixtures/framings (the
    // generic codec on hostile bytes).
    let framings: &'static [rc1::codec::Framing] = if head & 0x10 != 0 { customs() } else { &[] };
    let opts = TrackerOptions {
        port: 5005,
        proto: ProtoChoice::Auto,
        max_frame: 1 << 16,
        max_buffered: 1 << 16,
        framings,
    };
    // Half the runs keep only the lab's port, as without -f.
    let select = (head & 0x40 != 0).then_some(5005);
    let mut pipeline = Pipeline::new(opts, true, select);
    let mut printer = Printer::new(
        std::io::sink(),
        ReportOptions { json: head & 0x80 != 0, tcp_events: true, quiet: false, flush_each: false, hex: head & 0x20 != 0, ..Default::default() },
    );
    let mut n = 0u64;
    // Packets: a link-type byte, a length byte pair, then that many bytes.
    while let [lt, a, b, tail @ ..] = rest {
        let lt = linktype::ALL[usize::from(*lt) % linktype::ALL.len()];
        let len = usize::from(u16::from_le_bytes([*a, *b])).min(tail.len());
        let (pkt, after) = tail.split_at(len);
        rest = after;
        n += 1;
        let raw = RawPacket {
            ts: Timestamp { sec: 1_700_000_000 + (n as i64) / 1000, usec: (n % 1000) as u32 * 1000 },
            len: pkt.len() as u32,
            data: pkt,
            linktype: lt,
            interface: 0,
        };
        pipeline.packet(&raw, n, &mut printer);
    }
    let totals = pipeline.finish(n, 0, None, &mut printer);
    // Every packet is in a session or counted under a cause.
    assert_eq!(totals.packets, totals.in_sessions + totals.not_in_sessions());
});
