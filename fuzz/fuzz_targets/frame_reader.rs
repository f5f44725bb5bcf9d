//! The streaming frame decoder fed arbitrary bytes in arbitrary chunks,
//! pushed or read from a socket-like source (its read buffer sizes adapt):
//! never a panic, and the frames (or the error) are the same as when the
//! bytes come in one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rc1::codec::{FrameReader, Framing};

fn frames(framing: Framing, max: u32, chunks: &mut dyn Iterator<Item = &[u8]>) -> (Vec<Vec<u8>>, bool) {
    let mut r = FrameReader::new(framing, max);
    let mut out = Vec::new();
    for c in chunks {
        r.push(c);
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push(f.raw.to_vec()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, r.finish().is_err())
}

/// A source whose reads return at most `step` bytes.
struct Steps<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Steps<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = rest;
        Ok(n)
    }
}

fn frames_read(framing: Framing, max: u32, data: &[u8], step: usize) -> (Vec<Vec<u8>>, bool) {
    let mut r = FrameReader::new(framing, max);
    let mut src = Steps { data, step };
    let mut out = Vec::new();
    loop {
        let n = r.read_from(&mut src).expect("reads from memory do not fail");
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push(f.raw.to_vec()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        if n == 0 {
            return (out, r.finish().is_err());
        }
    }
}

/// One of the framing files of fixtures/framings, loaded once.
fn custom(head: u8) -> Framing {
    static CUSTOMS: std::sync::OnceLock<Vec<Framing>> = std::sync::OnceLock::new();
    let all = CUSTOMS.get_or_init(|| {
        [
            ("le16.toml", include_str!("../../fixtures/framings/le16.toml")),
            ("crc-trailer.toml", include_str!("../../fixtures/framings/crc-trailer.toml")),
            ("typed.toml", include_str!("../../fixtures/framings/typed.toml")),
        ]
        .into_iter()
        .map(|(name, text)| {
            let def: &'static rc1::framing::FramingDef =
                Box::leak(Box::new(rc1::framing::parse(text, name).expect("a fixture framing")));
            Framing::Custom(def)
        })
        .collect()
    });
    all[usize::from(head >> 4) % all.len()]
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    // v2, v3, or (one run in four) a framing file rc1 has no code for.
    let framing = match (head & 1, head & 0x80 != 0) {
        (_, true) => custom(head),
        (0, false) => Framing::V2,
        _ => Framing::V3,
    };
    // A small maximum makes oversized claims common.
    let max = if head & 2 == 0 { 1 << 20 } else { 64 };
    let step = usize::from(head >> 2) + 1;
    let whole = frames(framing, max, &mut std::iter::once(rest));
    let chunked = frames(framing, max, &mut rest.chunks(step));
    assert_eq!(whole, chunked, "chunking changed the frames");
    // Large steps too: reads of up to 256 kB.
    let read = frames_read(framing, max, rest, step * step * step);
    assert_eq!(whole, read, "reading in steps changed the frames");
});
