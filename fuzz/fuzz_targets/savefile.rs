//! The pcap/pcapng reader on arbitrary files: packets or one clear error,
//! never a panic, and never more bytes handed out than the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rc1::capture::savefile::Reader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = Reader::new(Box::new(std::io::Cursor::new(data.to_vec()))) else { return };
    let mut bytes = 0usize;
    loop {
        match r.next_packet() {
            Ok(Some(p)) => {
                bytes += p.data.len();
                assert!(bytes <= data.len());
                assert!(p.end <= data.len() as u64);
            }
            Ok(None) => break,
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
});
