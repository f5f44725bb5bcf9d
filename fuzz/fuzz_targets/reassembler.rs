//! The reassembler on arbitrary segments of one direction, checked against
//! a per-byte model: what comes out tiles the stream from offset 0 in
//! order; every delivered byte is the first one supplied for its offset;
//! a gap covers only offsets never supplied before it was declared.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use rc1::capture::reassembly::{Chunk, Reassembler};

fuzz_target!(|data: &[u8]| {
    const ISN: u32 = 0xFFFF_FF00; // wraps within the first 256 bytes
    let mut r = Reassembler::new(512);
    // The handshake fixes offset 0 at ISN (without it the first segment
    // would).
    r.syn(ISN.wrapping_sub(1));
    let mut first: HashMap<u64, u8> = HashMap::new();
    let mut next = 0u64;
    let check = |c: Chunk<'_>, first: &HashMap<u64, u8>, next: &mut u64| match c {
        Chunk::Data { offset, bytes } => {
            assert_eq!(offset, *next, "data out of order");
            for (i, b) in bytes.iter().enumerate() {
                let at = offset + i as u64;
                assert_eq!(first.get(&at), Some(b), "byte {at} is not the first supplied");
            }
            *next += bytes.len() as u64;
        }
        Chunk::Gap { offset, len } => {
            assert_eq!(offset, *next, "gap out of order");
            assert!(len > 0);
            for at in offset..offset + len {
                assert!(!first.contains_key(&at), "gap over supplied byte {at}");
            }
            *next += len;
        }
    };
    // Segments: offset (2 bytes), flags (1), length (1), then payload.
    let mut rest = data;
    while let [o0, o1, flags, len, tail @ ..] = rest {
        let off = u64::from(u16::from_le_bytes([*o0, *o1]) % 2048);
        let len = usize::from(*len).min(tail.len());
        let (payload, after) = tail.split_at(len);
        rest = after;
        let seq = ISN.wrapping_add(off as u32);
        // An ACK first (it may declare holes lost before this payload).
        if flags & 1 == 1 {
            let mut out = Vec::new();
            r.ack(ISN.wrapping_add(u32::from(*o0) * 8), &mut |c| out.push(own(c)));
            for c in out {
                check(c.as_chunk(), &first, &mut next);
            }
        }
        // The model records first data for offsets not yet delivered
        // (bytes before `next` were delivered or declared lost already).
        for (i, b) in payload.iter().enumerate() {
            let at = off + i as u64;
            if at >= next {
                first.entry(at).or_insert(*b);
            }
        }
        let mut out = Vec::new();
        r.segment(seq, flags & 2 == 2, payload, &mut |c| out.push(own(c)));
        for c in out {
            check(c.as_chunk(), &first, &mut next);
        }
    }
    let mut out = Vec::new();
    r.flush(&mut |c| out.push(own(c)));
    for c in out {
        check(c.as_chunk(), &first, &mut next);
    }
});

/// A chunk kept past the callback.
enum Owned {
    Data(u64, Vec<u8>),
    Gap(u64, u64),
}

fn own(c: Chunk<'_>) -> Owned {
    match c {
        Chunk::Data { offset, bytes } => Owned::Data(offset, bytes.to_vec()),
        Chunk::Gap { offset, len } => Owned::Gap(offset, len),
    }
}

impl Owned {
    fn as_chunk(&self) -> Chunk<'_> {
        match self {
            Owned::Data(offset, bytes) => Chunk::Data { offset: *offset, bytes },
            Owned::Gap(offset, len) => Chunk::Gap { offset: *offset, len: *len },
        }
    }
}
