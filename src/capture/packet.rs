//! From captured bytes to the IP/TCP/UDP fields rc1 needs, for every link
//! type and encapsulation a user's capture may hold.
//!
//! A packet is peeled layer by layer, each a slice of the one before (no
//! copy): the link layer, then any number of VLAN tags (802.1Q, 802.1ad
//! QinQ, the older 0x9100/0x9200 tags), MPLS labels, a PPPoE session or an
//! 802.2 LLC/SNAP header, then IPv4 (options skipped by its header length)
//! or IPv6 (its whole extension-header chain walked: hop-by-hop, routing,
//! destination options, fragment, authentication, mobility, ...), and
//! finally TCP or UDP. Tunnels are opened as Zeek opens them, so the inner
//! connection is what the user sees: IP-in-IP (IPv4 or IPv6 inside IPv4 or
//! IPv6), GRE (and PPTP's enhanced GRE, ERSPAN types I to III, transparent
//! Ethernet bridging), VXLAN (UDP 4789) and Geneve (UDP 6081). A UDP
//! tunnel whose inner packet is not TCP/UDP stays the UDP datagram it is.
//!
//! | link type | value |
//! |---|---|
//! | Ethernet | 1 |
//! | Linux cooked SLL, SLL2 | 113, 276 |
//! | BSD loopback NULL, LOOP | 0, 108 |
//! | raw IP | 12, 14, 101, 228 (IPv4), 229 (IPv6) |
//! | PPP, PPP in HDLC framing, PPPoE | 9, 50, 51 |
//! | Cisco HDLC | 104 |
//! | 802.11, with radiotap, with PPI | 105, 127, 192 |
//! | Linux NFLOG | 239 |
//! | OpenBSD pflog | 117 |
//! | Apple PKTAP | 149, 258 |
//! | Linux ARCNET (RFC 1051, RFC 1201) | 129 |
//! | IP over InfiniBand | 242 |
//!
//! An IP fragment is handed out as a [`Fragment`] for
//! [`super::defrag`] to put back together. A packet cut by the snap
//! length still yields its headers and the payload bytes that were
//! captured, flagged [`Packet::truncated`], so the reassembler can report
//! what is missing instead of the packet vanishing. Whatever is not TCP or
//! UDP is a [`PacketError`] naming its cause, which the caller counts.
//! Nothing here panics on any input.

#![warn(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// libpcap link-layer header types (`LINKTYPE_*`) rc1 reads.
pub mod linktype {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: i32 = 0;
    /// Ethernet II, with optional VLAN tags.
    pub const ETHERNET: i32 = 1;
    /// PPP, with or without HDLC-like address and control bytes.
    pub const PPP: i32 = 9;
    /// Raw IP (the `DLT_RAW` value on most systems).
    pub const RAW_DLT: i32 = 12;
    /// Raw IP (`DLT_RAW` on OpenBSD).
    pub const RAW_OPENBSD: i32 = 14;
    /// PPP in HDLC-like framing (RFC 1662), or Cisco HDLC framing.
    pub const PPP_HDLC: i32 = 50;
    /// PPPoE session header then PPP.
    pub const PPP_ETHER: i32 = 51;
    /// Raw IP (`LINKTYPE_RAW`, what pcap files say).
    pub const RAW: i32 = 101;
    /// Cisco HDLC: address, control, EtherType.
    pub const C_HDLC: i32 = 104;
    /// IEEE 802.11 frames (no radio header).
    pub const IEEE802_11: i32 = 105;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: i32 = 108;
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: i32 = 113;
    /// OpenBSD pflog.
    pub const PFLOG: i32 = 117;
    /// IEEE 802.11 with a radiotap header.
    pub const IEEE802_11_RADIOTAP: i32 = 127;
    /// Apple PKTAP (as `LINKTYPE_USER2`, which macOS wrote).
    pub const PKTAP_USER2: i32 = 149;
    /// Per-Packet Information header, then the link type it names.
    pub const PPI: i32 = 192;
    /// Raw IPv4.
    pub const IPV4: i32 = 228;
    /// Raw IPv6.
    pub const IPV6: i32 = 229;
    /// Linux netfilter NFLOG.
    pub const NFLOG: i32 = 239;
    /// Apple PKTAP.
    pub const PKTAP: i32 = 258;
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: i32 = 276;
    /// Linux ARCNET.
    pub const ARCNET_LINUX: i32 = 129;
    /// IP over InfiniBand (RFC 4391).
    pub const IPOIB: i32 = 242;

    /// Every link type rc1 reads.
    pub const ALL: &[i32] = &[
        NULL,
        ETHERNET,
        PPP,
        RAW_DLT,
        RAW_OPENBSD,
        PPP_HDLC,
        PPP_ETHER,
        RAW,
        C_HDLC,
        IEEE802_11,
        LOOP,
        LINUX_SLL,
        PFLOG,
        IEEE802_11_RADIOTAP,
        ARCNET_LINUX,
        PKTAP_USER2,
        PPI,
        IPV4,
        IPV6,
        NFLOG,
        IPOIB,
        PKTAP,
        LINUX_SLL2,
    ];
}

/// What rc1 reads, in words, for messages.
pub const SUPPORTED: &str = "Ethernet (VLAN/QinQ, MPLS, PPPoE, LLC/SNAP), Linux SLL/SLL2, \
     BSD NULL/LOOP, raw IP, PPP, Cisco HDLC, 802.11 (plain, radiotap, PPI), NFLOG, pflog, \
     PKTAP, ARCNET and IP over InfiniBand";

/// The name of a link type, for messages: libpcap's own name table
/// (`pcap_datalink_val_to_name` and its description).
pub fn linktype_name(lt: i32) -> String {
    let dlt = pcap::Linktype(super::source::linktype_to_dlt(lt));
    match (dlt.get_name(), dlt.get_description()) {
        (Ok(n), Ok(d)) => format!("{n}: {d}"),
        (Ok(n), Err(_)) => n,
        _ => "a number libpcap has no name for".into(),
    }
}

/// Whether rc1 can parse packets of link type `lt`.
pub fn linktype_supported(lt: i32) -> bool {
    linktype::ALL.contains(&lt)
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

impl Transport<'_> {
    /// (source port, destination port).
    pub fn ports(&self) -> (u16, u16) {
        match self {
            Transport::Tcp(t) => (t.src_port, t.dst_port),
            Transport::Udp {
                src_port, dst_port, ..
            } => (*src_port, *dst_port),
        }
    }
}

/// One layer a packet came through, worth telling the user about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A VLAN tag: its TPID and VLAN id.
    Vlan(u16, u16),
    /// An MPLS label.
    Mpls(u32),
    /// A PPPoE session id.
    Pppoe(u16),
    /// IPv4 or IPv6 inside IP.
    IpInIp,
    /// GRE, with its key if any.
    Gre(Option<u32>),
    /// ERSPAN (type I to III), with its session id.
    Erspan(u16),
    /// VXLAN, with its VNI.
    Vxlan(u32),
    /// Geneve, with its VNI.
    Geneve(u32),
    /// PPTP's enhanced GRE, with its call id.
    Pptp(u16),
    /// A PIM Register message (a multicast packet sent to the RP).
    PimRegister,
    /// WCCP redirection in GRE.
    Wccp,
    /// MACsec without encryption (integrity only).
    Macsec,
    /// A Network Service Header (service function chaining).
    Nsh(u32),
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Vlan(0x8100, id) => write!(f, "vlan {id}"),
            Layer::Vlan(tpid, id) => write!(f, "vlan {id} (tpid {tpid:#06x})"),
            Layer::Mpls(l) => write!(f, "mpls {l}"),
            Layer::Pppoe(s) => write!(f, "pppoe session {s:#06x}"),
            Layer::IpInIp => f.write_str("ip-in-ip"),
            Layer::Gre(None) => f.write_str("gre"),
            Layer::Gre(Some(k)) => write!(f, "gre key {k}"),
            Layer::Erspan(s) => write!(f, "erspan session {s}"),
            Layer::Vxlan(v) => write!(f, "vxlan vni {v}"),
            Layer::Geneve(v) => write!(f, "geneve vni {v}"),
            Layer::Pptp(c) => write!(f, "pptp call {c}"),
            Layer::PimRegister => f.write_str("pim register"),
            Layer::Wccp => f.write_str("wccp"),
            Layer::Macsec => f.write_str("macsec (not encrypted)"),
            Layer::Nsh(path) => write!(f, "nsh path {path}"),
        }
    }
}

/// Most layers remembered per packet (more are peeled, not listed).
pub const MAX_LAYERS: usize = 6;

/// The layers worth naming that a packet came through, outermost first
/// (for a session's `via`): fixed size, no allocation per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Encap {
    layers: [Option<Layer>; MAX_LAYERS],
    /// Layers peeled in all (may exceed what is listed).
    pub depth: u8,
    /// The outermost tunnel's endpoints, and the layer they go with.
    outer: Option<(u8, IpAddr, IpAddr)>,
}

impl Encap {
    fn push(&mut self, l: Layer) {
        if let Some(slot) = self.layers.get_mut(usize::from(self.depth)) {
            *slot = Some(l);
        }
        self.depth = self.depth.saturating_add(1);
    }

    /// A tunnel between `src` and `dst` (the first one met is kept).
    fn tunnel(&mut self, l: Layer, src: IpAddr, dst: IpAddr) {
        if self.outer.is_none() {
            self.outer = Some((self.depth, src, dst));
        }
        self.push(l);
    }

    /// The layers listed, outermost first.
    pub fn layers(&self) -> impl Iterator<Item = Layer> + '_ {
        self.layers.iter().flatten().copied()
    }

    /// Whether the packet came through no layer worth naming.
    pub fn is_empty(&self) -> bool {
        self.depth == 0
    }
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.layers().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{l}")?;
            if let Some((at, src, dst)) = self.outer
                && usize::from(at) == i
            {
                write!(f, " ({src} -> {dst})")?;
            }
        }
        if usize::from(self.depth) > MAX_LAYERS {
            write!(
                f,
                " (+{} more)",
                usize::from(self.depth).saturating_sub(MAX_LAYERS)
            )?;
        }
        Ok(())
    }
}

/// A parsed TCP/UDP packet.
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
    /// The VLAN tags, labels and tunnels it came through.
    pub encap: Encap,
    /// The start of an IP datagram whose other fragments never came (so
    /// `truncated`, but not by the snap length; reported as such).
    pub incomplete: bool,
}

/// One IP fragment (IPv4 with MF or an offset; IPv6 with a Fragment
/// header), for the defragmenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (IPv4: 16 bits; IPv6: 32).
    pub id: u32,
    /// The protocol of the whole datagram (TCP 6, UDP 17, ...).
    pub protocol: u8,
    /// Offset of these bytes in the datagram's payload.
    pub offset: u32,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    /// This fragment's part of the payload (as captured).
    pub data: &'a [u8],
    /// The fragment was cut by the snap length.
    pub truncated: bool,
    /// The layers it came through.
    pub encap: Encap,
}

/// What a captured frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A TCP segment or UDP datagram.
    Packet(Packet<'a>),
    /// An IP fragment of some datagram.
    Fragment(Fragment<'a>),
}

/// Why a packet is not a TCP/UDP packet rc1 can use: each variant is a
/// cause the totals count under its own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// rc1 does not know this link type.
    UnsupportedLinktype(i32),
    /// Not IP at all (ARP, LLDP, STP, 802.11 management, PPP control, ...).
    NotIp,
    /// Encrypted below TCP/UDP (802.11 protected frames, MACsec, ESP).
    Encrypted(&'static str),
    /// IP, but neither TCP nor UDP (ICMP, OSPF, ...).
    NotTcpUdp(u8),
    /// A header at `layer` is malformed or cut.
    Malformed {
        /// The layer.
        layer: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::UnsupportedLinktype(lt) => f.write_str(&super::source::unsupported(*lt)),
            PacketError::NotIp => f.write_str("not an IP packet"),
            PacketError::Encrypted(what) => write!(f, "encrypted ({what})"),
            PacketError::NotTcpUdp(p) => write!(f, "IP protocol {p}, not TCP or UDP"),
            PacketError::Malformed { layer, reason } => write!(f, "malformed {layer}: {reason}"),
        }
    }
}

impl std::error::Error for PacketError {}

/// How deep encapsulations may nest (tunnels in tunnels, PKTAP in PPI...):
/// a hostile packet must not recurse without end.
pub const MAX_DEPTH: u8 = 8;

type R<'a> = Result<Parsed<'a>, PacketError>;

fn malformed<T>(layer: &'static str, reason: String) -> Result<T, PacketError> {
    Err(PacketError::Malformed { layer, reason })
}

fn short<T>(layer: &'static str, need: usize, have: usize) -> Result<T, PacketError> {
    malformed(layer, format!("{have} of {need} bytes"))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    be16(b, at).map(u16::swap_bytes)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(s))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    be32(b, at).map(u32::swap_bytes)
}

fn rest(b: &[u8], at: usize) -> &[u8] {
    b.get(at..).unwrap_or_default()
}

/// Parses one captured frame of link type `linktype`.
pub fn parse(linktype: i32, data: &[u8]) -> R<'_> {
    link(linktype, data, Encap::default(), 0)
}

fn link(linktype: i32, data: &[u8], e: Encap, depth: u8) -> R<'_> {
    use linktype::*;
    let depth = depth.saturating_add(1);
    if depth > MAX_DEPTH {
        return malformed(
            "encapsulation",
            format!("more than {MAX_DEPTH} layers deep"),
        );
    }
    match linktype {
        ETHERNET => ethernet(data, e, depth),
        LINUX_SLL => {
            // 16 bytes: packet type, ARPHRD type, address length, address,
            // protocol (an EtherType, or 1/4 for 802.3 / 802.2 frames).
            let Some(proto) = be16(data, 14) else {
                return short("Linux SLL header", 16, data.len());
            };
            if be16(data, 2) == Some(824) {
                return Err(PacketError::NotIp); // netlink
            }
            sll_protocol(proto, rest(data, 16), e, depth)
        }
        LINUX_SLL2 => {
            if data.len() < 20 {
                return short("Linux SLL2 header", 20, data.len());
            }
            let proto = be16(data, 0).unwrap_or(0);
            sll_protocol(proto, rest(data, 20), e, depth)
        }
        NULL | LOOP => {
            // A 4-byte address family: host order for NULL (the capturing
            // machine's, so try both), network order for LOOP.
            let (Some(le), Some(be)) = (le32(data, 0), be32(data, 0)) else {
                return short("BSD loopback header", 4, data.len());
            };
            let family = if linktype == LOOP || le >= 256 {
                be
            } else {
                le
            };
            match family {
                // AF_INET everywhere; AF_INET6 is 24 (BSDs), 28 (FreeBSD),
                // 30 (macOS), 10 (Linux).
                2 | 10 | 24 | 28 | 30 => ip(rest(data, 4), e, depth),
                _ => Err(PacketError::NotIp),
            }
        }
        RAW_DLT | RAW_OPENBSD | RAW | IPV4 | IPV6 => ip(data, e, depth),
        PPP => {
            let body = match data {
                [0xFF, 0x03, tail @ ..] => tail,
                _ => data,
            };
            ppp(body, e, depth)
        }
        PPP_HDLC => match data {
            [0xFF, 0x03, tail @ ..] => ppp(tail, e, depth),
            [0x0F | 0x8F, ..] => chdlc(data, e, depth),
            _ => ppp(data, e, depth),
        },
        PPP_ETHER => pppoe(data, e, depth),
        C_HDLC => chdlc(data, e, depth),
        IEEE802_11 => wifi(data, false, false, e, depth),
        IEEE802_11_RADIOTAP => radiotap(data, e, depth),
        PPI => {
            // version, flags, header length (LE), link type (LE, 32 bits).
            let (Some(len), Some(dlt)) = (le16(data, 2), le32(data, 4)) else {
                return short("PPI header", 8, data.len());
            };
            let Some(inner) = data.get(usize::from(len)..) else {
                return short("PPI header", usize::from(len), data.len());
            };
            link(i32::try_from(dlt).unwrap_or(-1), inner, e, depth)
        }
        NFLOG => nflog(data, e, depth),
        PFLOG => {
            // Header length (then padded to 4) in the first byte, address
            // family in the second.
            let (Some(&len), Some(&af)) = (data.first(), data.get(1)) else {
                return short("pflog header", 4, data.len());
            };
            let len = usize::from(len).div_ceil(4).saturating_mul(4);
            match (af, data.get(len..)) {
                (2 | 10 | 24 | 28 | 30, Some(inner)) => ip(inner, e, depth),
                (_, None) => short("pflog header", len, data.len()),
                _ => Err(PacketError::NotIp),
            }
        }
        PKTAP | PKTAP_USER2 => {
            // Header length and the inner link type (a DLT), little-endian.
            let (Some(len), Some(dlt)) = (le32(data, 0), le32(data, 4)) else {
                return short("PKTAP header", 8, data.len());
            };
            let Some(inner) = data.get(usize::try_from(len).unwrap_or(usize::MAX)..) else {
                return short("PKTAP header", len as usize, data.len());
            };
            let lt = super::source::dlt_to_linktype(i32::try_from(dlt).unwrap_or(-1));
            link(lt, inner, e, depth)
        }
        ARCNET_LINUX => {
            // Source, destination, offset (2), then the protocol id; RFC
            // 1201 types add a split flag and a sequence number (4 more
            // bytes when the flag says "exception").
            let Some(&proto) = data.get(4) else {
                return short("ARCNET header", 5, data.len());
            };
            let len = match proto {
                240 | 241 | 80 => 5, // RFC 1051 IP, ARP; diagnostics
                _ if data.get(5) == Some(&0xFF) => 12,
                _ => 8,
            };
            match (proto, data.get(len..)) {
                (_, None) => short("ARCNET header", len, data.len()),
                (212 | 240 | 196, Some(inner)) => ip(inner, e, depth),
                _ => Err(PacketError::NotIp),
            }
        }
        IPOIB => {
            // 40 bytes of addresses, then an EtherType and 2 reserved bytes.
            let Some(et) = be16(data, 40) else {
                return short("IPoIB header", 44, data.len());
            };
            ether(et, rest(data, 44), e, depth)
        }
        other => Err(PacketError::UnsupportedLinktype(other)),
    }
}

/// The protocol field of Linux SLL/SLL2: an EtherType, or a small number
/// for frames that carry none.
fn sll_protocol(proto: u16, b: &[u8], e: Encap, depth: u8) -> R<'_> {
    match proto {
        0x0004 => llc(b, e, depth), // 802.2 LLC
        p if p < 0x0600 => Err(PacketError::NotIp),
        p => ether(p, b, e, depth),
    }
}

fn ethernet(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    let Some(et) = be16(b, 12) else {
        return short("Ethernet header", 14, b.len());
    };
    if et < 0x0600 {
        // 802.3: a length, then 802.2 LLC.
        return llc(rest(b, 14), e, depth);
    }
    ether(et, rest(b, 14), e, depth)
}

/// 802.2 LLC: only SNAP (`aa aa 03`, an OUI, an EtherType) can carry IP.
fn llc(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    match b {
        [0xAA, 0xAA, 0x03, _, _, _, t0, t1, tail @ ..] => {
            ether(u16::from_be_bytes([*t0, *t1]), tail, e, depth)
        }
        _ => Err(PacketError::NotIp),
    }
}

/// What follows an EtherType.
fn ether(et: u16, b: &[u8], mut e: Encap, depth: u8) -> R<'_> {
    let (mut et, mut b) = (et, b);
    loop {
        match et {
            0x0800 | 0x86DD => return ip(b, e, depth),
            // VLAN tags, any depth: 802.1Q, 802.1ad, and older QinQ TPIDs.
            0x8100 | 0x88A8 | 0x9100 | 0x9200 | 0x9300 => {
                let (Some(tci), Some(inner)) = (be16(b, 0), be16(b, 2)) else {
                    return short("VLAN tag", 4, b.len());
                };
                e.push(Layer::Vlan(et, tci & 0x0FFF));
                if inner < 0x0600 {
                    return llc(rest(b, 4), e, depth);
                }
                et = inner;
                b = rest(b, 4);
            }
            0x8847 | 0x8848 => return mpls(b, e, depth),
            0x8864 => return pppoe(b, e, depth),
            0x6558 => return ethernet(b, e, depth.saturating_add(1)),
            0x88E5 => {
                // SecTAG: TCI/AN, short length, packet number, then an SCI
                // when SC is set. E set: the rest is encrypted.
                let Some(&tci) = b.first() else {
                    return short("MACsec header", 6, 0);
                };
                if tci & 0x08 != 0 {
                    return Err(PacketError::Encrypted("MACsec"));
                }
                let len = if tci & 0x20 != 0 { 14 } else { 6 };
                let Some(inner) = be16(b, len) else {
                    return short("MACsec header", len.saturating_add(2), b.len());
                };
                e.push(Layer::Macsec);
                et = inner;
                b = rest(b, len.saturating_add(2));
            }
            0x894F => {
                // NSH: its length (4-byte words) in byte 1, the next
                // protocol in byte 3, the service path in bytes 4..7.
                let (Some(&l), Some(&next), Some(path)) = (b.get(1), b.get(3), be32(b, 4)) else {
                    return short("NSH header", 8, b.len());
                };
                let len = usize::from(l & 0x3F).saturating_mul(4);
                let Some(inner) = b.get(len.max(8)..) else {
                    return short("NSH header", len, b.len());
                };
                e.push(Layer::Nsh(path >> 8));
                return match next {
                    1 | 2 => ip(inner, e, depth),
                    3 => ethernet(inner, e, depth.saturating_add(1)),
                    5 => mpls(inner, e, depth),
                    _ => Err(PacketError::NotIp),
                };
            }
            _ => return Err(PacketError::NotIp),
        }
    }
}

fn mpls(b: &[u8], mut e: Encap, depth: u8) -> R<'_> {
    let mut at = 0usize;
    loop {
        let Some(entry) = be32(b, at) else {
            return short("MPLS label stack", at.saturating_add(4), b.len());
        };
        e.push(Layer::Mpls(entry >> 12));
        at = at.saturating_add(4);
        if entry & 0x100 != 0 {
            break; // bottom of stack
        }
    }
    let inner = rest(b, at);
    // No protocol field: the first nibble tells IPv4 or IPv6; 0 is a
    // pseudowire control word before an Ethernet frame.
    match inner.first().map(|v| v >> 4) {
        Some(4 | 6) => ip(inner, e, depth),
        Some(0) => ethernet(rest(inner, 4), e, depth.saturating_add(1)),
        _ => Err(PacketError::NotIp),
    }
}

fn pppoe(b: &[u8], mut e: Encap, depth: u8) -> R<'_> {
    // ver/type, code, session id, length, then a PPP protocol number.
    let (Some(session), Some(len)) = (be16(b, 2), be16(b, 4)) else {
        return short("PPPoE header", 6, b.len());
    };
    e.push(Layer::Pppoe(session));
    let body = rest(b, 6);
    let body = body.get(..usize::from(len)).unwrap_or(body);
    ppp(body, e, depth)
}

/// A PPP protocol number (1 byte when compressed: odd first byte), then
/// its payload.
fn ppp(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    let (proto, body) = match b {
        [p, tail @ ..] if p & 1 == 1 => (u16::from(*p), tail),
        [p0, p1, tail @ ..] => (u16::from_be_bytes([*p0, *p1]), tail),
        _ => return short("PPP header", 2, b.len()),
    };
    match proto {
        0x0021 | 0x0057 => ip(body, e, depth),
        0x0281 | 0x0283 => mpls(body, e, depth),
        _ => Err(PacketError::NotIp),
    }
}

fn chdlc(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    let Some(et) = be16(b, 2) else {
        return short("Cisco HDLC header", 4, b.len());
    };
    ether(et, rest(b, 4), e, depth)
}

/// Radiotap: skip its length; its Flags field says whether an FCS ends
/// the frame and whether the 802.11 header is padded.
fn radiotap(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    let (Some(len), Some(present)) = (le16(b, 2), le32(b, 4)) else {
        return short("radiotap header", 8, b.len());
    };
    let len = usize::from(len);
    let Some(frame) = b.get(len..) else {
        return short("radiotap header", len, b.len());
    };
    // Fields follow the present words (more while bit 31 is set).
    let mut at = 8usize;
    let mut word = present;
    while word & 0x8000_0000 != 0 {
        let Some(w) = le32(b, at) else { break };
        word = w;
        at = at.saturating_add(4);
    }
    let mut flags = 0u8;
    if present & 1 != 0 {
        at = at.div_ceil(8).saturating_mul(8).saturating_add(8); // TSFT, aligned
    }
    if present & 2 != 0 {
        flags = b.get(at).copied().unwrap_or(0);
    }
    wifi(frame, flags & 0x10 != 0, flags & 0x20 != 0, e, depth)
}

/// An 802.11 frame: data frames carry LLC/SNAP; the rest carries no IP.
fn wifi(b: &[u8], fcs: bool, datapad: bool, e: Encap, depth: u8) -> R<'_> {
    let b = if fcs {
        b.get(..b.len().saturating_sub(4)).unwrap_or_default()
    } else {
        b
    };
    let Some(fc) = le16(b, 0) else {
        return short("802.11 header", 2, b.len());
    };
    let (kind, subtype, flags) = ((fc >> 2) & 3, (fc >> 4) & 0xF, fc >> 8);
    if kind != 2 {
        return Err(PacketError::NotIp); // management, control, extension
    }
    if subtype & 0x4 != 0 {
        return Err(PacketError::NotIp); // null data: no body
    }
    let mut hdr = 24usize;
    if flags & 0x03 == 0x03 {
        hdr = hdr.saturating_add(6); // a fourth address (WDS, mesh)
    }
    if subtype & 0x8 != 0 {
        let qos = b.get(hdr).copied().unwrap_or(0);
        hdr = hdr.saturating_add(2);
        if flags & 0x80 != 0 {
            hdr = hdr.saturating_add(4); // HT control
        }
        if qos & 0x80 != 0 {
            return Err(PacketError::NotIp); // A-MSDU aggregate: not opened
        }
    }
    if datapad {
        hdr = hdr.div_ceil(4).saturating_mul(4);
    }
    if b.len() < hdr {
        return short("802.11 header", hdr, b.len());
    }
    if flags & 0x40 != 0 {
        return Err(PacketError::Encrypted("802.11 protected frame"));
    }
    llc(rest(b, hdr), e, depth)
}

/// NFLOG: a 4-byte header (family, version, resource id), then TLVs in
/// the capturing host's byte order; the packet is in NFULA_PAYLOAD (9).
fn nflog(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    if b.len() < 4 {
        return short("NFLOG header", 4, b.len());
    }
    let mut at = 4usize;
    while at < b.len() {
        let (Some(l), Some(t)) = (le16(b, at), le16(b, at.saturating_add(2))) else {
            break;
        };
        // Host order is almost always little-endian; a length that cannot
        // be is read the other way.
        let fits = |n: u16| n >= 4 && at.saturating_add(usize::from(n)) <= b.len();
        let (len, kind) = if fits(l) {
            (l, t)
        } else {
            (l.swap_bytes(), t.swap_bytes())
        };
        if !fits(len) {
            return malformed("NFLOG TLV", format!("length {l} at byte {at} does not fit"));
        }
        let value = b
            .get(at.saturating_add(4)..at.saturating_add(usize::from(len)))
            .unwrap_or_default();
        if kind & 0x7FFF == 9 {
            return ip(value, e, depth);
        }
        at = at.saturating_add(usize::from(len).div_ceil(4).saturating_mul(4));
    }
    Err(PacketError::NotIp) // no payload attribute
}

/// A hostile packet must not nest without end (each tunnel or inner frame
/// goes one level deeper).
fn too_deep<T>() -> Result<T, PacketError> {
    malformed(
        "encapsulation",
        format!("more than {MAX_DEPTH} layers deep"),
    )
}

/// IPv4 or IPv6, by the version nibble.
fn ip(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    match b.first().map(|v| v >> 4) {
        Some(4) => ipv4(b, e, depth),
        Some(6) => ipv6(b, e, depth),
        Some(v) => malformed("IP header", format!("version {v}, not 4 or 6")),
        None => short("IP header", 20, 0),
    }
}

fn ipv4(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    if b.len() < 20 {
        return short("IPv4 header", 20, b.len());
    }
    let ihl = usize::from(b.first().copied().unwrap_or(0) & 0x0F).saturating_mul(4);
    if ihl < 20 {
        return malformed("IPv4 header", format!("header length {ihl} (at least 20)"));
    }
    if b.len() < ihl {
        return malformed(
            "IPv4 header",
            format!("header of {ihl} bytes, {} captured", b.len()),
        );
    }
    let total = usize::from(be16(b, 2).unwrap_or(0));
    // 0: a segmentation-offload packet captured before the NIC split it.
    let total = if total == 0 { b.len() } else { total };
    if total < ihl {
        return malformed(
            "IPv4 header",
            format!("total length {total} is less than its header ({ihl})"),
        );
    }
    let truncated = b.len() < total;
    let payload = b.get(ihl..total.min(b.len())).unwrap_or_default();
    let flags = be16(b, 6).unwrap_or(0);
    let proto = b.get(9).copied().unwrap_or(0);
    let src = IpAddr::V4(Ipv4Addr::from(be32(b, 12).unwrap_or(0)));
    let dst = IpAddr::V4(Ipv4Addr::from(be32(b, 16).unwrap_or(0)));
    let more = flags & 0x2000 != 0;
    let offset = u32::from(flags & 0x1FFF).saturating_mul(8);
    if more || offset > 0 {
        return Ok(Parsed::Fragment(Fragment {
            src,
            dst,
            id: u32::from(be16(b, 4).unwrap_or(0)),
            protocol: proto,
            offset,
            more,
            data: payload,
            truncated,
            encap: e,
        }));
    }
    transport(proto, payload, src, dst, truncated, e, depth)
}

fn ipv6(b: &[u8], e: Encap, depth: u8) -> R<'_> {
    if b.len() < 40 {
        return short("IPv6 header", 40, b.len());
    }
    let plen = usize::from(be16(b, 4).unwrap_or(0));
    let end = if plen == 0 {
        b.len() // a jumbogram, or segmentation offload
    } else {
        plen.saturating_add(40)
    };
    let truncated = b.len() < end;
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        if let Some(s) = b.get(at..at.saturating_add(16)) {
            a.copy_from_slice(s);
        }
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let (src, dst) = (addr(8), addr(24));
    let next = b.get(6).copied().unwrap_or(0);
    let p = b.get(40..end.min(b.len())).unwrap_or_default();
    match v6_chain(next, p, src, dst, truncated, e)? {
        Ok((next, p)) => transport(next, p, src, dst, truncated, e, depth),
        Err(f) => Ok(Parsed::Fragment(f)),
    }
}

/// IPv6's extension-header chain from `next`, whatever its order: the
/// upper protocol and its bytes, or the fragment a Fragment header makes
/// of the rest. Each header is at least 8 bytes, so the walk ends.
fn v6_chain<'a>(
    mut next: u8,
    mut p: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    truncated: bool,
    e: Encap,
) -> Result<Result<(u8, &'a [u8]), Fragment<'a>>, PacketError> {
    loop {
        let len = match next {
            // Hop-by-hop, routing, destination options, mobility, HIP,
            // shim6, experimental: (length + 1) * 8 bytes.
            0 | 43 | 60 | 135 | 139 | 140 | 253 | 254 => {
                usize::from(p.get(1).copied().unwrap_or(0))
                    .saturating_add(1)
                    .saturating_mul(8)
            }
            // Authentication header: (length + 2) * 4 bytes.
            51 => usize::from(p.get(1).copied().unwrap_or(0))
                .saturating_add(2)
                .saturating_mul(4),
            44 => {
                let (Some(&nh), Some(off), Some(id)) = (p.first(), be16(p, 2), be32(p, 4)) else {
                    return short("IPv6 fragment header", 8, p.len());
                };
                let offset = u32::from(off & 0xFFF8);
                let more = off & 1 != 0;
                if offset == 0 && !more {
                    // An atomic fragment (RFC 6946): a whole packet.
                    next = nh;
                    p = rest(p, 8);
                    continue;
                }
                return Ok(Err(Fragment {
                    src,
                    dst,
                    id,
                    protocol: nh,
                    offset,
                    more,
                    data: rest(p, 8),
                    truncated,
                    encap: e,
                }));
            }
            _ => return Ok(Ok((next, p))),
        };
        if p.len() < len.max(8) {
            let why = if truncated {
                ", cut by the snap length"
            } else {
                ""
            };
            return malformed(
                "IPv6 extension header",
                format!("header {next} needs {len} bytes, {} left{why}", p.len()),
            );
        }
        next = p.first().copied().unwrap_or(59);
        p = rest(p, len);
    }
}

/// A datagram put back together from fragments: its payload, of IP
/// protocol `protocol` (for IPv6, the header after the Fragment header,
/// which may be another extension header).
pub fn reassembled<'a>(
    protocol: u8,
    data: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    truncated: bool,
    e: Encap,
) -> R<'a> {
    if src.is_ipv6() {
        return match v6_chain(protocol, data, src, dst, truncated, e)? {
            Ok((next, p)) => transport(next, p, src, dst, truncated, e, 0),
            Err(f) => Ok(Parsed::Fragment(f)),
        };
    }
    transport(protocol, data, src, dst, truncated, e, 0)
}

/// The payload of IP protocol `proto`: TCP, UDP, or a tunnel.
pub fn transport<'a>(
    proto: u8,
    b: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    truncated: bool,
    mut e: Encap,
    depth: u8,
) -> R<'a> {
    match proto {
        6 => tcp(b, src, dst, truncated, e),
        17 => udp(b, src, dst, truncated, e, depth),
        4 | 41 => {
            e.tunnel(Layer::IpInIp, src, dst);
            ip(b, e, depth.saturating_add(1))
        }
        47 => gre(b, src, dst, e, depth.saturating_add(1)),
        103 => {
            // PIM: version 2, type 1 (Register): 4-byte header, 4 bytes of
            // flags, then the multicast packet itself.
            match b.first() {
                Some(0x21) => {
                    e.tunnel(Layer::PimRegister, src, dst);
                    ip(rest(b, 8), e, depth.saturating_add(1))
                }
                _ => Err(PacketError::NotTcpUdp(proto)),
            }
        }
        50 => Err(PacketError::Encrypted("IPsec ESP")),
        51 => {
            // IPsec AH (IPv4; IPv6 walks it in its chain): (length + 2) * 4
            // bytes, then the protected packet's own protocol.
            if depth > MAX_DEPTH {
                return too_deep();
            }
            let (Some(&next), Some(&l)) = (b.first(), b.get(1)) else {
                return short("AH header", 12, b.len());
            };
            let len = usize::from(l).saturating_add(2).saturating_mul(4);
            let Some(inner) = b.get(len..) else {
                return short("AH header", len, b.len());
            };
            transport(next, inner, src, dst, truncated, e, depth.saturating_add(1))
        }
        other => Err(PacketError::NotTcpUdp(other)),
    }
}

/// A TCP header cut by the snap length still gives its ports, numbers and
/// flags once this many bytes are there: a segment with no captured
/// payload (the missing bytes become a gap, as for any snapped segment).
const TCP_FLAGS_END: usize = 14;

fn tcp<'a>(b: &'a [u8], src: IpAddr, dst: IpAddr, truncated: bool, e: Encap) -> R<'a> {
    let cut = if truncated {
        " (cut by the snap length)"
    } else {
        ""
    };
    let need = if truncated { TCP_FLAGS_END } else { 20 };
    if b.len() < need {
        return malformed("TCP header", format!("{} of 20 bytes{cut}", b.len()));
    }
    let doff = usize::from(b.get(12).copied().unwrap_or(0) >> 4).saturating_mul(4);
    if doff < 20 {
        return malformed("TCP header", format!("data offset {doff} (at least 20)"));
    }
    let payload = match b.get(doff..) {
        Some(p) => p,
        None if truncated => &[],
        None => {
            return malformed(
                "TCP header",
                format!("header of {doff} bytes, {} there", b.len()),
            );
        }
    };
    let flags = b.get(13).copied().unwrap_or(0);
    Ok(Parsed::Packet(Packet {
        src,
        dst,
        transport: Transport::Tcp(Tcp {
            src_port: be16(b, 0).unwrap_or(0),
            dst_port: be16(b, 2).unwrap_or(0),
            seq: be32(b, 4).unwrap_or(0),
            ack_no: be32(b, 8).unwrap_or(0),
            fin: flags & 0x01 != 0,
            syn: flags & 0x02 != 0,
            rst: flags & 0x04 != 0,
            ack: flags & 0x10 != 0,
            payload,
        }),
        truncated,
        encap: e,
        incomplete: false,
    }))
}

/// UDP ports of the tunnels opened: VXLAN, Geneve.
const VXLAN_PORT: u16 = 4789;
const GENEVE_PORT: u16 = 6081;

fn udp<'a>(b: &'a [u8], src: IpAddr, dst: IpAddr, truncated: bool, e: Encap, depth: u8) -> R<'a> {
    // Cut by the snap length after its ports: a datagram with nothing
    // captured of its payload.
    if truncated && (4..8).contains(&b.len()) {
        return Ok(Parsed::Packet(Packet {
            src,
            dst,
            transport: Transport::Udp {
                src_port: be16(b, 0).unwrap_or(0),
                dst_port: be16(b, 2).unwrap_or(0),
                payload: &[],
            },
            truncated,
            encap: e,
            incomplete: false,
        }));
    }
    if b.len() < 8 {
        let cut = if truncated {
            " (cut by the snap length)"
        } else {
            ""
        };
        return malformed("UDP header", format!("{} of 8 bytes{cut}", b.len()));
    }
    let len = usize::from(be16(b, 4).unwrap_or(0));
    if (1..8).contains(&len) {
        return malformed("UDP header", format!("length {len} (at least 8)"));
    }
    // 0: a jumbogram; longer than the packet: as much as there is.
    let end = if len == 0 { b.len() } else { len.min(b.len()) };
    let payload = b.get(8..end).unwrap_or_default();
    let (sp, dp) = (be16(b, 0).unwrap_or(0), be16(b, 2).unwrap_or(0));
    let outer = Parsed::Packet(Packet {
        src,
        dst,
        transport: Transport::Udp {
            src_port: sp,
            dst_port: dp,
            payload,
        },
        truncated,
        encap: e,
        incomplete: false,
    });
    let inner = match dp {
        VXLAN_PORT => vxlan(payload, e, src, dst, depth),
        GENEVE_PORT => geneve(payload, e, src, dst, depth),
        _ => return Ok(outer),
    };
    // A tunnel whose inner packet is TCP/UDP is opened; otherwise the
    // datagram stays what it is (as tshark counts it: UDP).
    match inner {
        Ok(p) => Ok(p),
        Err(_) => Ok(outer),
    }
}

fn vxlan(b: &[u8], mut e: Encap, src: IpAddr, dst: IpAddr, depth: u8) -> R<'_> {
    let (Some(&flags), Some(word)) = (b.first(), be32(b, 4)) else {
        return short("VXLAN header", 8, b.len());
    };
    if flags & 0x08 == 0 {
        return malformed("VXLAN header", "no VNI flag".into());
    }
    e.tunnel(Layer::Vxlan(word >> 8), src, dst);
    ethernet(rest(b, 8), e, depth.saturating_add(1))
}

fn geneve(b: &[u8], mut e: Encap, src: IpAddr, dst: IpAddr, depth: u8) -> R<'_> {
    let (Some(&v), Some(proto), Some(word)) = (b.first(), be16(b, 2), be32(b, 4)) else {
        return short("Geneve header", 8, b.len());
    };
    if v >> 6 != 0 {
        return malformed("Geneve header", format!("version {}", v >> 6));
    }
    let len = usize::from(v & 0x3F).saturating_mul(4).saturating_add(8);
    let Some(inner) = b.get(len..) else {
        return short("Geneve header", len, b.len());
    };
    e.tunnel(Layer::Geneve(word >> 8), src, dst);
    if proto == 0x6558 {
        ethernet(inner, e, depth.saturating_add(1))
    } else {
        ether(proto, inner, e, depth.saturating_add(1))
    }
}

/// GRE (RFC 2784/2890), PPTP's enhanced GRE (RFC 2637), and ERSPAN.
fn gre(b: &[u8], src: IpAddr, dst: IpAddr, mut e: Encap, depth: u8) -> R<'_> {
    let (Some(flags), Some(proto)) = (be16(b, 0), be16(b, 2)) else {
        return short("GRE header", 4, b.len());
    };
    let version = flags & 0x7;
    let mut at = 4usize;
    let mut key = None;
    let routing = flags & 0x4000 != 0;
    if flags & 0x8000 != 0 || routing {
        at = at.saturating_add(4); // checksum and offset (RFC 1701)
    }
    if flags & 0x2000 != 0 {
        key = be32(b, at);
        at = at.saturating_add(4);
    }
    let seq = flags & 0x1000 != 0;
    if seq {
        at = at.saturating_add(4);
    }
    if version == 1 && flags & 0x0080 != 0 {
        at = at.saturating_add(4); // PPTP acknowledgment number
    }
    if routing {
        // Source route entries (RFC 1701), up to a null one.
        loop {
            let (Some(af), Some(&len)) = (be16(b, at), b.get(at.saturating_add(3))) else {
                return short("GRE source route", at.saturating_add(4), b.len());
            };
            at = at.saturating_add(4).saturating_add(usize::from(len));
            if af == 0 && len == 0 {
                break;
            }
        }
    }
    let Some(body) = b.get(at..) else {
        return short("GRE header", at, b.len());
    };
    match (version, proto) {
        (0, 0x88BE) => {
            // ERSPAN type II (8-byte header) when sequenced, else type I.
            if !seq {
                e.tunnel(Layer::Erspan(0), src, dst);
                return ethernet(body, e, depth);
            }
            if body.len() < 8 {
                return short("ERSPAN header", 8, body.len());
            }
            let session = be16(body, 2).unwrap_or(0) & 0x3FF;
            e.tunnel(Layer::Erspan(session), src, dst);
            ethernet(rest(body, 8), e, depth)
        }
        (0, 0x22EB) => {
            // ERSPAN type III: 12 bytes, and 8 more when O is set.
            let Some(&last) = body.get(11) else {
                return short("ERSPAN III header", 12, body.len());
            };
            let len = if last & 1 != 0 { 20 } else { 12 };
            let session = be16(body, 2).unwrap_or(0) & 0x3FF;
            e.tunnel(Layer::Erspan(session), src, dst);
            ethernet(rest(body, len), e, depth)
        }
        (0, 0x883E) => {
            // WCCP: a 4-byte redirect header (WCCPv2), or IPv4 at once (v1).
            e.tunnel(Layer::Wccp, src, dst);
            match body.first().map(|v| v >> 4) {
                Some(4) => ip(body, e, depth),
                _ => ip(rest(body, 4), e, depth),
            }
        }
        (0, p) => {
            e.tunnel(Layer::Gre(key), src, dst);
            ether(p, body, e, depth)
        }
        (1, 0x880B) => {
            // PPTP: the key is the payload length and the call id.
            if body.is_empty() {
                return Err(PacketError::NotIp); // an acknowledgment only
            }
            let call = key.map_or(0, |k| u16::try_from(k & 0xFFFF).unwrap_or(0));
            e.tunnel(Layer::Pptp(call), src, dst);
            // PPP in HDLC-like framing, often without address and control.
            match body {
                [0xFF, 0x03, tail @ ..] => ppp(tail, e, depth),
                _ => ppp(body, e, depth),
            }
        }
        (v, _) => malformed("GRE header", format!("version {v}")),
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

    fn packet(p: R<'_>) -> Packet<'_> {
        match p {
            Ok(Parsed::Packet(p)) => p,
            other => panic!("not a packet: {other:?}"),
        }
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

    fn eth(et: u16, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&et.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn every_link_type_and_encapsulation() {
        let ip = tcp_ipv4(b"hello");
        let cat = |parts: &[&[u8]]| parts.concat();
        let snap = cat(&[&[0xAA, 0xAA, 3, 0, 0, 0, 8, 0], &ip]);
        let mut wifi = vec![0x88, 0x01]; // QoS data, to DS
        wifi.extend_from_slice(&[0; 22]);
        wifi.extend_from_slice(&[0, 0]); // QoS control
        wifi.extend_from_slice(&snap);
        let mut radiotap = vec![0, 0, 18, 0];
        radiotap.extend_from_slice(&0x3u32.to_le_bytes()); // TSFT, flags
        radiotap.extend_from_slice(&[0; 8]); // TSFT
        radiotap.extend_from_slice(&[0x10, 0]); // flags: FCS at end; pad
        radiotap.extend_from_slice(&wifi);
        radiotap.extend_from_slice(&[1, 2, 3, 4]); // the FCS
        let mut nflog = vec![2, 0, 0, 0];
        nflog.extend_from_slice(&8u16.to_le_bytes());
        nflog.extend_from_slice(&10u16.to_le_bytes());
        nflog.extend_from_slice(b"pre\0");
        nflog.extend_from_slice(&((ip.len() + 4) as u16).to_le_bytes());
        nflog.extend_from_slice(&9u16.to_le_bytes());
        nflog.extend_from_slice(&ip);
        let mut gre_key = vec![0x20, 0, 0x08, 0];
        gre_key.extend_from_slice(&42u32.to_be_bytes());
        gre_key.extend_from_slice(&ip);
        let mut outer = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .udp(12345, VXLAN_PORT)
            .write(
                &mut outer,
                &cat(&[&[8, 0, 0, 0, 0, 0, 7, 0], &eth(0x0800, &ip)]),
            )
            .unwrap();
        let mut gre_outer = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 47, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        gre_outer[2..4].copy_from_slice(&((20 + gre_key.len()) as u16).to_be_bytes());
        gre_outer.extend_from_slice(&gre_key);
        let cases: Vec<(i32, Vec<u8>, &str)> = vec![
            (linktype::ETHERNET, eth(0x0800, &ip), ""),
            (
                linktype::ETHERNET,
                eth(0x88A8, &cat(&[&[0, 10, 0x81, 0], &[0, 100, 8, 0], &ip])),
                "vlan 10 (tpid 0x88a8), vlan 100",
            ),
            (
                linktype::ETHERNET,
                eth(
                    0x9100,
                    &cat(&[&[0, 1, 0x81, 0], &[0, 2, 0x81, 0], &[0, 3, 8, 0], &ip]),
                ),
                "vlan 1 (tpid 0x9100), vlan 2, vlan 3",
            ),
            (
                linktype::ETHERNET,
                eth(0x8847, &cat(&[&[0, 1, 0, 0], &[0, 2, 1, 0], &ip])),
                "mpls 16, mpls 32",
            ),
            (
                linktype::ETHERNET,
                eth(
                    0x8864,
                    &cat(&[
                        &[0x11, 0, 0, 7],
                        &((ip.len() + 2) as u16).to_be_bytes(),
                        &[0, 0x21],
                        &ip,
                    ]),
                ),
                "pppoe session 0x0007",
            ),
            (linktype::ETHERNET, cat(&[&[0; 12], &[0, 50], &snap]), ""),
            (linktype::LINUX_SLL, cat(&[&[0; 14], &[8, 0], &ip]), ""),
            (linktype::LINUX_SLL2, cat(&[&[8, 0], &[0; 18], &ip]), ""),
            (linktype::NULL, cat(&[&2u32.to_le_bytes(), &ip]), ""),
            (linktype::NULL, cat(&[&2u32.to_be_bytes(), &ip]), ""),
            (linktype::LOOP, cat(&[&2u32.to_be_bytes(), &ip]), ""),
            (linktype::RAW, ip.clone(), ""),
            (linktype::IPV4, ip.clone(), ""),
            (linktype::PPP, cat(&[&[0xFF, 3, 0, 0x21], &ip]), ""),
            (linktype::PPP, cat(&[&[0x21], &ip]), ""),
            (linktype::PPP_HDLC, cat(&[&[0xFF, 3, 0, 0x21], &ip]), ""),
            (linktype::C_HDLC, cat(&[&[0x0F, 0, 8, 0], &ip]), ""),
            (linktype::IEEE802_11, wifi.clone(), ""),
            (linktype::IEEE802_11_RADIOTAP, radiotap, ""),
            (linktype::NFLOG, nflog, ""),
            (
                linktype::RAW,
                gre_outer,
                "gre key 42 (192.0.2.1 -> 192.0.2.2)",
            ),
            (linktype::RAW, outer, "vxlan vni 7 (192.0.2.1 -> 192.0.2.2)"),
        ];
        for (lt, data, via) in cases {
            let p = packet(parse(lt, &data));
            check_tcp(&p, b"hello");
            assert!(!p.truncated, "{lt}");
            assert_eq!(p.encap.to_string(), via, "{lt}");
        }
    }

    #[test]
    fn ipv6_extension_headers_and_ipv4_options() {
        let mut out = Vec::new();
        PacketBuilder::ipv6([0; 16], [1; 16], 64)
            .udp(40000, 5005)
            .write(&mut out, b"hi")
            .unwrap();
        assert!(matches!(
            packet(parse(linktype::RAW, &out)).transport,
            Transport::Udp {
                src_port: 40000,
                dst_port: 5005,
                payload: b"hi"
            }
        ));
        // Hop-by-hop, then destination options, then UDP.
        let udp = out[40..].to_vec();
        let mut v6 = out[..40].to_vec();
        v6[6] = 0;
        v6.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        v6.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v6.extend_from_slice(&udp);
        let plen = (v6.len() - 40) as u16;
        v6[4..6].copy_from_slice(&plen.to_be_bytes());
        assert!(matches!(
            packet(parse(linktype::RAW, &v6)).transport,
            Transport::Udp { payload: b"hi", .. }
        ));
        // IPv4 with 4 bytes of options (router alert).
        let ip = tcp_ipv4(b"opt");
        let mut v4 = vec![0x46];
        v4.extend_from_slice(&ip[1..20]);
        v4.extend_from_slice(&[0x94, 4, 0, 0]);
        v4.extend_from_slice(&ip[20..]);
        let total = v4.len() as u16;
        v4[2..4].copy_from_slice(&total.to_be_bytes());
        check_tcp(&packet(parse(linktype::RAW, &v4)), b"opt");
        // Ethernet padding after a short packet is not payload.
        let mut padded = eth(0x0800, &ip);
        padded.extend_from_slice(&[0xEE; 6]);
        check_tcp(&packet(parse(linktype::ETHERNET, &padded)), b"opt");
    }

    #[test]
    fn a_reassembled_ipv6_datagram_may_start_with_an_extension_header() {
        let v6 = IpAddr::from([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let mut data = vec![17, 0, 1, 4, 0, 0, 0, 0]; // destination options
        data.extend_from_slice(&[0x9c, 0x40, 0x13, 0x8d, 0, 10, 0, 0, b'h', b'i']);
        let p = packet(reassembled(60, &data, v6, v6, false, Encap::default()));
        assert!(matches!(
            p.transport,
            Transport::Udp {
                src_port: 40000,
                dst_port: 5005,
                payload: b"hi"
            }
        ));
        // IPv4 carries the protocol itself; AH is walked there too.
        let v4 = IpAddr::from([10, 0, 0, 1]);
        let mut ah = vec![17, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]; // AH, 12 bytes
        ah.extend_from_slice(&data[8..]);
        let p = packet(reassembled(51, &ah, v4, v4, false, Encap::default()));
        assert!(matches!(p.transport, Transport::Udp { payload: b"hi", .. }));
    }

    #[test]
    fn fragments_are_handed_out_as_fragments() {
        let ip = tcp_ipv4(b"0123456789");
        let mut first = ip.clone();
        first[6] = 0x20; // MF
        let Ok(Parsed::Fragment(f)) = parse(linktype::RAW, &first) else {
            panic!("not a fragment")
        };
        assert_eq!((f.protocol, f.offset, f.more), (6, 0, true));
        assert_eq!(f.data.len(), ip.len() - 20);
        let mut later = ip.clone();
        later[6] = 0x00;
        later[7] = 0x03; // offset 24
        let Ok(Parsed::Fragment(f)) = parse(linktype::RAW, &later) else {
            panic!("not a fragment")
        };
        assert_eq!((f.offset, f.more), (24, false));
    }

    #[test]
    fn snaplen_cut_payload_is_kept_and_flagged() {
        let ip = tcp_ipv4(b"0123456789");
        let cut = &ip[..ip.len() - 4];
        let p = packet(parse(linktype::RAW, cut));
        assert!(p.truncated);
        let Transport::Tcp(t) = p.transport else {
            panic!()
        };
        assert_eq!(t.payload, b"012345");
    }

    #[test]
    fn causes_are_named() {
        assert_eq!(parse(107, b"x"), Err(PacketError::UnsupportedLinktype(107)));
        let msg = parse(107, b"").unwrap_err().to_string();
        assert!(msg.contains("link type 107 (FRELAY: Frame Relay)"), "{msg}");
        assert!(matches!(
            parse(linktype::LINUX_SLL2, &[0; 7]),
            Err(PacketError::Malformed { .. })
        ));
        // ARP over Ethernet: not IP, not an error.
        assert_eq!(
            parse(linktype::ETHERNET, &eth(0x0806, &[0; 28])),
            Err(PacketError::NotIp)
        );
        let mut icmp = tcp_ipv4(b"");
        icmp[9] = 1;
        assert_eq!(parse(linktype::RAW, &icmp), Err(PacketError::NotTcpUdp(1)));
        let mut prot = vec![0x08, 0x41];
        prot.extend_from_slice(&[0; 40]);
        assert_eq!(
            parse(linktype::IEEE802_11, &prot),
            Err(PacketError::Encrypted("802.11 protected frame"))
        );
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        // Every prefix of a good packet, for every link type.
        let ip = tcp_ipv4(b"payload");
        let all = linktype::ALL;
        assert_eq!(all.len(), 23);
        for &lt in all {
            for n in 0..ip.len() {
                let _ = parse(lt, &ip[..n]);
            }
        }
        // Deterministic noise.
        let mut x = 1u32;
        for _ in 0..5000 {
            let data: Vec<u8> = (0..(x % 120))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for &lt in all {
                let _ = parse(lt, &data);
            }
        }
        // PKTAP inside PKTAP inside...: bounded.
        let mut nest = Vec::new();
        for _ in 0..20 {
            let mut h = 8u32.to_le_bytes().to_vec();
            h.extend_from_slice(&258u32.to_le_bytes());
            nest.extend_from_slice(&h);
        }
        assert!(matches!(
            parse(linktype::PKTAP, &nest),
            Err(PacketError::Malformed { .. })
        ));
    }
}
