//! Properties of the codec: round trips and chunking independence.

use proptest::prelude::*;
use rc1::codec::{DecodeError, Frame, FrameReader, Framing};

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::V2), Just(Framing::V3)]
}

/// A frame as an rc1 or lab client would build it for `framing`.
fn frame(framing: Framing) -> impl Strategy<Value = Frame> {
    (
        any::<u8>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(move |(v, o, m)| match framing {
            Framing::V2 => Frame::v2(v, o, &m).unwrap(),
            Framing::V3 => Frame::v3(v, o, &m).unwrap(),
            Framing::Custom(_) => panic!("a test of v2 and v3 only"),
        })
}

fn decode_all(framing: Framing, chunks: &[&[u8]]) -> (Vec<Frame>, Result<(), DecodeError>) {
    let mut r = FrameReader::new(framing, 1 << 20);
    let mut got = Vec::new();
    for c in chunks {
        r.push(c);
        while let Some(f) = r.next_frame().unwrap() {
            got.push(f.to_frame());
        }
    }
    (got, r.finish())
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity((framing, f) in framing().prop_flat_map(|fr| (Just(fr), frame(fr)))) {
        let bytes = f.to_bytes(framing);
        let (got, end) = decode_all(framing, &[&bytes]);
        prop_assert_eq!(got, vec![f]);
        prop_assert_eq!(end, Ok(()));
    }

    /// Any 29 bytes are a v2 frame, and re-encoding gives them back: the
    /// decoder loses nothing (padding included).
    #[test]
    fn v2_bytes_survive_decode_and_encode(raw in proptest::collection::vec(any::<u8>(), 29)) {
        let (got, _) = decode_all(Framing::V2, &[&raw]);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].to_bytes(Framing::V2), raw);
    }

    #[test]
    fn every_chunking_yields_the_same_frames(
        (framing, frames) in framing().prop_flat_map(|fr| (Just(fr), proptest::collection::vec(frame(fr), 0..8))),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for f in &frames {
            f.encode(framing, &mut stream);
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        let (got, end) = decode_all(framing, &chunks);
        prop_assert_eq!(&got, &frames);
        prop_assert_eq!(end, Ok(()));
        // One byte at a time, too.
        let single: Vec<&[u8]> = stream.chunks(1).collect();
        let (got, _) = decode_all(framing, &single);
        prop_assert_eq!(got, frames);
    }

    /// A stream cut anywhere inside a frame reports exactly how much came.
    #[test]
    fn a_cut_stream_says_how_much_of_the_frame_came(
        (framing, f) in framing().prop_flat_map(|fr| (Just(fr), frame(fr))),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = f.to_bytes(framing);
        let keep = cut.index(bytes.len()); // 0..len-1: always short
        let (got, end) = decode_all(framing, &[&bytes[..keep]]);
        prop_assert!(got.is_empty());
        if keep == 0 {
            prop_assert_eq!(end, Ok(()));
        } else {
            let need = if framing == Framing::V3 && keep < 9 { 9 } else { bytes.len() as u64 };
            prop_assert_eq!(end, Err(DecodeError::Truncated { framing, have: keep, need }));
        }
    }
}

#[test]
fn oversized_claim_allocates_nothing_and_poisons_the_stream() {
    let mut r = FrameReader::new(Framing::V3, 1 << 20);
    // struct.pack('!BLL', 1, 1, 4_000_000_000)
    r.push(&[1, 0, 0, 0, 1, 0xEE, 0x6B, 0x28, 0x00]);
    let e = r.next_frame().unwrap_err();
    assert_eq!(
        e,
        DecodeError::SizeOverMax {
            claimed: 4_000_000_000,
            max: 1 << 20
        }
    );
    assert_eq!(e.diagnostic().code, "v3.size_over_max");
    // Nothing after an untrustworthy header is decoded.
    r.push(&Frame::v3(1, 2, b"ok").unwrap().to_bytes(Framing::V3));
    assert!(r.next_frame().is_err());
    assert!(r.buffered() < 64);
    assert!(
        r.capacity() < 1024,
        "the claim must not be reserved: capacity {}",
        r.capacity()
    );
}

#[test]
fn large_v3_frame_in_small_reads() {
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let f = Frame::v3(1, 1, &msg).unwrap();
    let bytes = f.to_bytes(Framing::V3);
    let mut r = FrameReader::new(Framing::V3, 1 << 20);
    let mut got = Vec::new();
    let mut reader = std::io::Cursor::new(&bytes);
    loop {
        let n = r.read_from(&mut reader).unwrap();
        while let Some(x) = r.next_frame().unwrap() {
            got.push(x.to_frame());
        }
        if n == 0 {
            break;
        }
    }
    assert_eq!(got, vec![f]);
    assert_eq!(r.finish(), Ok(()));
}

/// A source that hands out one byte per read, like a trickling client.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((&b, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        if let Some(slot) = buf.first_mut() {
            *slot = b;
            self.0 = rest;
            return Ok(1);
        }
        Ok(0)
    }
}

#[test]
fn read_buffers_start_small_and_grow_only_for_a_client_that_sends_a_lot() {
    let mut stream = Vec::new();
    for i in 0..10_000u32 {
        stream.extend(
            Frame::v2(1, i + 1, b"trickle")
                .unwrap()
                .to_bytes(Framing::V2),
        );
    }
    // A byte per read: the buffer stays at its first size.
    let mut r = FrameReader::new(Framing::V2, 1 << 20);
    let mut src = Trickle(&stream[..4000]);
    let mut frames = 0;
    while r.read_from(&mut src).unwrap() > 0 {
        while r.next_frame().unwrap().is_some() {
            frames += 1;
        }
    }
    assert_eq!(frames, 4000 / 29);
    assert!(
        r.capacity() <= rc1::codec::stream::FIRST_READ,
        "{}",
        r.capacity()
    );
    // Bulk: reads grow to READ_CHUNK, and every frame still comes out.
    // (290 kB: more than a few reads' worth.)
    let mut r = FrameReader::new(Framing::V2, 1 << 20);
    let mut src = std::io::Cursor::new(&stream);
    let (mut frames, mut largest) = (0, 0);
    loop {
        let n = r.read_from(&mut src).unwrap();
        largest = largest.max(n);
        while r.next_frame().unwrap().is_some() {
            frames += 1;
        }
        if n == 0 {
            break;
        }
    }
    assert_eq!(frames, 10_000);
    // (Less what a partial frame already holds.)
    assert!(largest > rc1::codec::stream::READ_CHUNK - 29, "{largest}");
}

#[test]
fn a_v3_header_reserves_nothing_for_its_claim_and_a_large_frame_is_not_kept() {
    use rc1::codec::stream::{FIRST_READ, READ_CHUNK, SHRINK_ABOVE};
    // struct.pack('!BLL', 1, 1, 1 << 20) and one byte of the message.
    let mut bytes = vec![1, 0, 0, 0, 1, 0, 0x10, 0, 0, b'x'];
    let mut r = FrameReader::new(Framing::V3, 1 << 20);
    let mut src = std::io::Cursor::new(bytes.clone());
    assert_eq!(r.read_from(&mut src).unwrap(), 10);
    assert_eq!(r.next_frame().unwrap(), None);
    let _ = r.read_from(&mut src).unwrap();
    assert!(
        r.capacity() <= FIRST_READ,
        "a claim of 1 MiB with 1 byte sent holds {} bytes",
        r.capacity()
    );
    // The rest of that frame arrives: it is decoded whole, and once it is
    // out the buffer is given back.
    bytes.resize(9 + (1 << 20), b'x');
    bytes.extend(Frame::v3(1, 2, b"small").unwrap().to_bytes(Framing::V3));
    let mut r = FrameReader::new(Framing::V3, 1 << 20);
    let mut src = std::io::Cursor::new(bytes);
    let (mut sizes, mut most) = (Vec::new(), 0);
    loop {
        let n = r.read_from(&mut src).unwrap();
        most = most.max(r.capacity());
        while let Some(f) = r.next_frame().unwrap() {
            sizes.push(f.message.len());
        }
        if n == 0 {
            break;
        }
    }
    assert_eq!(sizes, [1 << 20, 5]);
    // The buffer doubled up to the frame, not past it.
    assert!(most <= 9 + (1 << 20) + READ_CHUNK, "{most}");
    assert!(r.capacity() <= SHRINK_ABOVE, "{}", r.capacity());

    // A large frame followed by the first byte of the next: the large
    // buffer is not kept for that byte.
    let mut bytes = vec![1, 0, 0, 0, 1, 0, 0x10, 0, 0];
    bytes.resize(9 + (1 << 20), b'x');
    bytes.push(1);
    let mut r = FrameReader::new(Framing::V3, 1 << 20);
    let mut src = std::io::Cursor::new(bytes);
    let mut whole = 0;
    loop {
        let n = r.read_from(&mut src).unwrap();
        while r.next_frame().unwrap().is_some() {
            whole += 1;
        }
        if n == 0 {
            break;
        }
    }
    assert_eq!((whole, r.buffered()), (1, 1));
    assert!(r.capacity() <= SHRINK_ABOVE, "{}", r.capacity());
}
