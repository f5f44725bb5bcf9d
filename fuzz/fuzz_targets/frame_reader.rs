//! The streaming frame decoder fed arbitrary bytes in arbitrary chunks:
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

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let framing = if head & 1 == 0 { Framing::V2 } else { Framing::V3 };
    // A small maximum makes oversized claims common.
    let max = if head & 2 == 0 { 1 << 20 } else { 64 };
    let step = usize::from(head >> 2) + 1;
    let whole = frames(framing, max, &mut std::iter::once(rest));
    let chunked = frames(framing, max, &mut rest.chunks(step));
    assert_eq!(whole, chunked, "chunking changed the frames");
});
