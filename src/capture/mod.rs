//! Capture and offline analysis (in progress): the packet pipeline
//! `source -> link -> segment -> flow + reassembly -> decode -> sink`.
//!
//! Built so far: [`source`] (libpcap, live and files), [`packet`] (link
//! types, IP, TCP/UDP) and [`reassembly`]
//! (per-direction TCP reassembly with explicit gaps and bounded memory),
//! [`decode`] (frames out of a reassembled direction, across gaps).

pub mod decode;
pub mod packet;
pub mod reassembly;
pub mod source;
