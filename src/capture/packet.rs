//! From captured bytes to the IP/TCP/UDP fields rc1 needs, for every link
//! type the lab meets.
//!
//! Ethernet (with 802.1Q VLAN tags) goes to `etherparse`. Linux cooked
//! capture SLL (what `-i any` gave before libpcap 1.10) and SLL2 (what it
//! gives now), BSD/macOS loopback (NULL, LOOP) and raw IP are stripped here
//! and the rest handed to `etherparse` by EtherType or as IP.
//!
//! Parsing is *lax*: a packet cut by the snap length still yields its
//! headers and the payload bytes that were captured, flagged
//! [`Packet::truncated`], so the reassembler can report what is missing
//! instead of the packet vanishing. Whatever cannot be parsed is a
//! [`PacketError`] that says at which layer and why; the caller counts and
//! reports it. Nothing here panics on any input.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::net::IpAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

/// libpcap link-layer header types (`DLT_*` / `LINKTYPE_*`) rc1 reads.
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: i32 = 0;
    /// Ethernet II, with optional VLAN tags.
    pub const ETHERNET: i32 = 1;
    /// Raw IP (the `DLT_RAW` value on most systems).
    pub const RAW_DLT: i32 = 12;
    /// Raw IP (`DLT_RAW` on OpenBSD).
    pub const RAW_OPENBSD: i32 = 14;
    /// Raw IP (`LINKTYPE_RAW`, what pcap files say).
    pub const RAW: i32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: i32 = 108;
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: i32 = 113;
    /// Raw IPv4.
    pub const IPV4: i32 = 228;
    /// Raw IPv6.
    pub const IPV6: i32 = 229;
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: i32 = 276;
}

/// The name of a link type, for messages.
pub fn linktype_name(lt: i32) -> &'static str {
    match lt {
        linktype::NULL => "NULL (BSD loopback)",
        linktype::ETHERNET => "EN10MB (Ethernet)",
        linktype::RAW_DLT | linktype::RAW_OPENBSD | linktype::RAW => "RAW (raw IP)",
        linktype::LOOP => "LOOP (OpenBSD loopback)",
        linktype::LINUX_SLL => "LINUX_SLL (Linux cooked v1)",
        linktype::IPV4 => "IPV4 (raw IPv4)",
        linktype::IPV6 => "IPV6 (raw IPv6)",
        linktype::LINUX_SLL2 => "LINUX_SLL2 (Linux cooked v2)",
        105 => "IEEE802_11 (Wi-Fi)",
        127 => "IEEE802_11_RADIOTAP (Wi-Fi with radiotap)",
        _ => "unknown",
    }
}

/// Whether rc1 can parse packets of link type `lt`.
pub fn linktype_supported(lt: i32) -> bool {
    matches!(
        lt,
        linktype::NULL
            | linktype::ETHERNET
            | linktype::RAW_DLT
            | linktype::RAW_OPENBSD
            | linktype::RAW
            | linktype::LOOP
            | linktype::LINUX_SLL
            | linktype::IPV4
            | linktype::IPV6
            | linktype::LINUX_SLL2
    )
}

/// TCP header fields rc1 uses, and the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `ack` is set).
    pub ack_no: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// Payload bytes that were captured.
    pub payload: &'a [u8],
}

/// The transport layer of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp(Tcp<'a>),
    /// A UDP datagram.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload bytes that were captured.
        payload: &'a [u8],
    },
}

/// A parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TCP or UDP.
    pub transport: Transport<'a>,
    /// The IP packet was longer than what was captured (snap length): the
    /// payload holds only the captured part.
    pub truncated: bool,
}

/// Why a packet could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// rc1 does not know this link type.
    UnsupportedLinktype(i32),
    /// The link-layer header is cut short.
    ShortLink {
        /// Link type.
        linktype: i32,
        /// Bytes the header needs.
        need: usize,
        /// Bytes there were.
        have: usize,
    },
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): not an error, just not ours.
    NotIp,
    /// IP, but neither TCP nor UDP (ICMP, ...), or a later IP fragment.
    NotTcpUdp(&'static str),
    /// A header at `layer` is malformed or cut.
    Malformed {
        /// The layer, as etherparse names it.
        layer: String,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::UnsupportedLinktype(lt) => write!(
                f,
                "link type {lt} ({}) is not supported; rc1 reads Ethernet, Linux SLL/SLL2, BSD NULL/LOOP and raw IP",
                linktype_name(*lt)
            ),
            PacketError::ShortLink {
                linktype,
                need,
                have,
            } => write!(
                f,
                "{} header cut short: {have} of {need} bytes",
                linktype_name(*linktype)
            ),
            PacketError::NotIp => f.write_str("not an IP packet"),
            PacketError::NotTcpUdp(what) => write!(f, "not TCP or UDP ({what})"),
            PacketError::Malformed { layer, reason } => write!(f, "malformed {layer}: {reason}"),
        }
    }
}

impl std::error::Error for PacketError {}

/// Parses one captured frame of link type `linktype`.
pub fn parse(linktype: i32, data: &[u8]) -> Result<Packet<'_>, PacketError> {
    let sliced = match linktype {
        linktype::ETHERNET => {
            LaxSlicedPacket::from_ethernet(data).map_err(|e| PacketError::Malformed {
                layer: "Ethernet header".into(),
                reason: e.to_string(),
            })?
        }
        linktype::LINUX_SLL => {
            // 16 bytes; the protocol (an EtherType) in the last two.
            let (hdr, rest) = split(linktype, data, 16)?;
            LaxSlicedPacket::from_ether_type(ether_type(hdr, 14), rest)
        }
        linktype::LINUX_SLL2 => {
            // 20 bytes; the protocol (an EtherType) in the first two.
            let (hdr, rest) = split(linktype, data, 20)?;
            LaxSlicedPacket::from_ether_type(ether_type(hdr, 0), rest)
        }
        linktype::NULL | linktype::LOOP => {
            // A 4-byte address family: host order for NULL (the capturing
            // machine's, so try both), network order for LOOP.
            let (hdr, rest) = split(linktype, data, 4)?;
            let b: [u8; 4] = hdr.try_into().unwrap_or_default();
            let family = if linktype == linktype::LOOP {
                u32::from_be_bytes(b)
            } else {
                let le = u32::from_le_bytes(b);
                if le < 256 { le } else { u32::from_be_bytes(b) }
            };
            match family {
                // AF_INET everywhere; AF_INET6 is 24 (BSDs), 28 (FreeBSD), 30 (macOS).
                2 | 24 | 28 | 30 => from_ip(rest)?,
                _ => return Err(PacketError::NotIp),
            }
        }
        linktype::RAW_DLT
        | linktype::RAW_OPENBSD
        | linktype::RAW
        | linktype::IPV4
        | linktype::IPV6 => from_ip(data)?,
        other => return Err(PacketError::UnsupportedLinktype(other)),
    };
    from_sliced(sliced)
}

fn split(linktype: i32, data: &[u8], n: usize) -> Result<(&[u8], &[u8]), PacketError> {
    if data.len() < n {
        return Err(PacketError::ShortLink {
            linktype,
            need: n,
            have: data.len(),
        });
    }
    Ok(data.split_at(n))
}

fn ether_type(hdr: &[u8], at: usize) -> EtherType {
    let b = hdr.get(at..at.saturating_add(2)).unwrap_or(&[0, 0]);
    EtherType(u16::from_be_bytes([
        b.first().copied().unwrap_or(0),
        b.get(1).copied().unwrap_or(0),
    ]))
}

fn from_ip(data: &[u8]) -> Result<LaxSlicedPacket<'_>, PacketError> {
    LaxSlicedPacket::from_ip(data).map_err(|e| PacketError::Malformed {
        layer: "IP header".into(),
        reason: e.to_string(),
    })
}

fn from_sliced(p: LaxSlicedPacket<'_>) -> Result<Packet<'_>, PacketError> {
    let (src, dst, payload) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                v4.payload(),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.payload(),
            )
        }
        Some(LaxNetSlice::Arp(_)) | None => {
            return Err(match p.stop_err {
                Some((e, layer))
                    if p.net.is_none()
                        && !matches!(layer, etherparse::err::Layer::EtherPayload) =>
                {
                    PacketError::Malformed {
                        layer: layer.to_string(),
                        reason: e.to_string(),
                    }
                }
                _ => PacketError::NotIp,
            });
        }
    };
    let truncated = payload.incomplete;
    let transport = match p.transport {
        Some(TransportSlice::Tcp(t)) => Transport::Tcp(Tcp {
            src_port: t.source_port(),
            dst_port: t.destination_port(),
            seq: t.sequence_number(),
            ack_no: t.acknowledgment_number(),
            syn: t.syn(),
            ack: t.ack(),
            fin: t.fin(),
            rst: t.rst(),
            payload: t.payload(),
        }),
        Some(TransportSlice::Udp(u)) => Transport::Udp {
            src_port: u.source_port(),
            dst_port: u.destination_port(),
            payload: u.payload(),
        },
        Some(_) => return Err(PacketError::NotTcpUdp("ICMP or IGMP")),
        None => {
            if payload.fragmented {
                return Err(PacketError::NotTcpUdp(
                    "IP fragment; fragments are not reassembled",
                ));
            }
            return Err(match p.stop_err {
                Some((e, layer)) => PacketError::Malformed {
                    layer: layer.to_string(),
                    reason: e.to_string(),
                },
                None => PacketError::NotTcpUdp("another IP protocol"),
            });
        }
    };
    Ok(Packet {
        src,
        dst,
        transport,
        truncated,
    })
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
    use etherparse::PacketBuilder;

    fn tcp_ipv4(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
            .tcp(54321, 5005, 1000, 65535)
            .ack(77)
            .psh()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn check_tcp(p: &Packet<'_>, payload: &[u8]) {
        assert_eq!(p.src, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(p.dst, IpAddr::from([127, 0, 0, 2]));
        let Transport::Tcp(t) = p.transport else {
            panic!("not tcp")
        };
        assert_eq!(
            (t.src_port, t.dst_port, t.seq, t.ack_no),
            (54321, 5005, 1000, 77)
        );
        assert!(t.ack && !t.syn && !t.fin && !t.rst);
        assert_eq!(t.payload, payload);
    }

    #[test]
    fn every_supported_link_type() {
        let ip = tcp_ipv4(b"hello");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let mut vlan = vec![0u8; 12];
        vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a, 0x08, 0x00]);
        vlan.extend_from_slice(&ip);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(&ip);
        let mut lo = 2u32.to_be_bytes().to_vec();
        lo.extend_from_slice(&ip);
        for (lt, data) in [
            (linktype::ETHERNET, &eth),
            (linktype::ETHERNET, &vlan),
            (linktype::LINUX_SLL, &sll),
            (linktype::LINUX_SLL2, &sll2),
            (linktype::NULL, &null),
            (linktype::NULL, &null_be),
            (linktype::LOOP, &lo),
            (linktype::RAW, &ip),
            (linktype::IPV4, &ip),
        ] {
            let p = parse(lt, data).unwrap_or_else(|e| panic!("{lt}: {e}"));
            check_tcp(&p, b"hello");
            assert!(!p.truncated);
        }
    }

    #[test]
    fn ipv6_udp() {
        let mut out = Vec::new();
        PacketBuilder::ipv6([0; 16], [1; 16], 64)
            .udp(40000, 5005)
            .write(&mut out, b"hi")
            .unwrap();
        let p = parse(linktype::RAW, &out).unwrap();
        assert!(p.src.is_ipv6());
        assert_eq!(
            p.transport,
            Transport::Udp {
                src_port: 40000,
                dst_port: 5005,
                payload: b"hi"
            }
        );
    }

    #[test]
    fn snaplen_cut_payload_is_kept_and_flagged() {
        let ip = tcp_ipv4(b"0123456789");
        let cut = &ip[..ip.len() - 4];
        let p = parse(linktype::RAW, cut).unwrap();
        assert!(p.truncated);
        let Transport::Tcp(t) = p.transport else {
            panic!()
        };
        assert_eq!(t.payload, b"012345");
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        assert_eq!(parse(147, b"x"), Err(PacketError::UnsupportedLinktype(147)));
        assert!(
            parse(147, b"")
                .unwrap_err()
                .to_string()
                .contains("link type 147")
        );
        assert_eq!(
            parse(linktype::LINUX_SLL2, &[0; 7]),
            Err(PacketError::ShortLink {
                linktype: linktype::LINUX_SLL2,
                need: 20,
                have: 7
            })
        );
        // ARP over Ethernet: not ours, not an error.
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(parse(linktype::ETHERNET, &arp), Err(PacketError::NotIp));
        // Every prefix of a good packet, for every link type: no panic.
        let ip = tcp_ipv4(b"payload");
        for lt in [0, 1, 12, 14, 101, 108, 113, 228, 229, 276] {
            for n in 0..ip.len() {
                let _ = parse(lt, &ip[..n]);
            }
        }
        // Deterministic noise.
        let mut x = 1u32;
        for _ in 0..2000 {
            let data: Vec<u8> = (0..(x % 90))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for lt in [0, 1, 101, 113, 276] {
                let _ = parse(lt, &data);
            }
        }
    }
}
