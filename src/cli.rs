//! The command line (clap derive): flags as typed, then validated options
//! for the library. Each field's doc comment is its `--help` text.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lab::client::{ClientOptions, ClientProto};
use crate::lab::{ServerOptions, ServerProto};
use crate::spec;
use crate::units::{parse_duration, parse_size};

const EXIT_CODES: &str = "\
Exit status: 0 success; 1 error (connection refused, timeout, bad input, an echo
that differs from what was sent); 2 usage error.";

/// rc1: the RC1 sockets lab in one binary.
///
/// Runs the lab's UDP, TCP text, v2 and v3 servers and clients, byte for
/// byte compatible with the lab's Python scripts (struct formats !BLL20s and
/// !BLL), and shows what crosses the wire.
#[derive(Debug, Parser)]
#[command(name = "rc1", version, about, long_about, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one of the lab's servers (exercises 1.1, 2.1, 3.1, 4.1/4.3, 5.1/5.3).
    #[command(after_help = EXIT_CODES)]
    Server(ServerArgs),
    /// Run one of the lab's clients: send messages, check each echo.
    #[command(after_help = EXIT_CODES)]
    Client(ClientArgs),
    /// Decode the lab's traffic live (-i) or from a pcap/pcapng file (-r):
    /// sessions, frames, echoes, gaps (exercises 1.2, 2.2, 3.2, 4.2, 5.2).
    #[command(after_help = CAPTURE_EXIT_CODES)]
    Capture(CaptureArgs),
    /// Print the Wireshark Lua dissector generated from rc1's field spec,
    /// write it (-o), install it for Wireshark (--install) or check that
    /// Wireshark loads it (--check).
    #[command(after_help = DISSECTOR_HELP)]
    Dissector(DissectorArgs),
    /// Load a lab server with many requests and measure what gets through:
    /// echoes verified, mismatched, missing; rates; latency percentiles.
    #[command(after_help = FLOOD_HELP)]
    Flood(FloodArgs),
    /// Run one exercise of the lab guide on loopback (its server, its
    /// clients, a capture), draw its ladder and answer its questions from
    /// what was measured (`rc1 lab 4`, `rc1 lab 2.2`).
    #[command(after_help = LAB_HELP)]
    Lab(LabArgs),
    /// Describe a binary framing in a small TOML file (from a Python
    /// struct format): check a file and print its layout, or print the
    /// built-in v2 and v3 files.
    #[command(after_help = crate::framing::HELP)]
    Framing(FramingArgs),
}

const LAB_HELP: &str = "\
Examples:
  sudo rc1 lab 1          # UDP: two clients, their source ports, no handshake
  sudo rc1 lab 2.2        # TCP text, thread per client: two clients at once
  sudo rc1 lab 3          # the selector server with three clients
  sudo rc1 lab 4 --keep out/   # v2 frames, a frame split in two; keeps the pcap and the Mermaid diagram
  rc1 lab 5 --json        # the same facts as one JSON object

Capturing on lo needs root or, once:
  sudo setcap cap_net_raw,cap_net_admin=eip \"$(command -v rc1)\"
Without it the exercise still runs, and the ladder and the wire facts come
from the exercise's shipped capture (fixtures/), said in the output.

Exit status: 0 the exercise ran and every echo matched; 1 error (the port is
busy, a client failed, an echo differed); 2 usage error.";

/// `rc1 lab`.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    /// The exercise (1 to 5) or one question of it (1.2, 2.2, 3.2, 4.2, 4.3, 5.2, ...).
    #[arg(value_name = "N", value_parser = clap::value_parser!(crate::exercise::Exercise))]
    pub exercise: crate::exercise::Exercise,
    /// The server's port: the lab's 5005; 0 takes any free port (when 5005
    /// is busy, or for tests).
    #[arg(long, default_value_t = 5005)]
    pub port: u16,
    /// Keep the capture (exercise-N.pcap) and the Mermaid diagram
    /// (exercise-N.mmd) in this directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
    /// Do not capture: draw and answer from the exercise's shipped capture
    /// (what happens anyway when capturing is not allowed).
    #[arg(long)]
    pub fixture: bool,
    /// Width of the ladder and the answers, at least 72 (default: the
    /// terminal's, or 80).
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,
    /// Colour in the ladder.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    /// `--json`: the same facts as one JSON object; `-q`: the answers
    /// only, without the ladder.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `rc1 framing`.
#[derive(Debug, Clone, Args)]
pub struct FramingArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: FramingAction,
}

/// `rc1 framing check|show`.
#[derive(Debug, Clone, Subcommand)]
pub enum FramingAction {
    /// Load a framing file and print its layout (fields, offsets, widths,
    /// the length field, checks), or its first mistake as FILE:LINE:COL.
    #[command(
        after_help = "Exit status: 0 the file is a framing; 1 it is not (the reason on stderr); 2 usage error."
    )]
    Check {
        /// The framing file (a built-in name, v2 or v3, when no such file exists).
        file: String,
        /// `--json`: the layout as one JSON object; `-q`: nothing, only
        /// the exit status (and the mistake on stderr).
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print a built-in framing file (v2 or v3), to read or to copy.
    Show {
        /// v2 or v3.
        name: String,
        /// `--json`: `{name, text}`; `-q`: nothing, only whether it exists.
        #[command(flatten)]
        output: OutputArgs,
    },
}

const FLOOD_HELP: &str = "\
Examples:
  rc1 server --proto v2 -q &                      # rc1's v2 server, not logging each frame
  rc1 flood --proto v2 -c 8 --max -d 10s          # as fast as it echoes, 8 connections
  rc1 flood --proto v3 --rate 20000 -n 100000 --size 100..1500 -i 1
  rc1 server --proto udp --echo -q & rc1 flood --proto udp -n 10000
  rc1 flood --proto v2 -n 100000 -q --json        # one JSON object, the final report
  rc1 flood --framing fixtures/framings/le16.toml -n 10000 --size 0..1500   # a framing file's frames

--max keeps up to --pipeline requests in flight per connection. --rate sends
on a fixed schedule and measures latency from each request's intended send
time (a stalled server cannot hide its delay). Each echo must equal its
request; a request unanswered for --drain counts as missing.

Exit status: 0 when every request was echoed and verified; 1 when any echo
was missing or mismatched, a connection failed, or nothing could connect;
2 usage error.";

/// `--proto` of `rc1 flood`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FloodProtoArg {
    /// v2 frames (29 bytes each).
    V2,
    /// v3 frames (9-byte header + message).
    V3,
    /// TCP text (text and text-sel servers): echoes checked as a byte stream.
    Text,
    /// UDP datagrams (the server needs --echo).
    Udp,
}

/// `rc1 flood`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("pace").args(["rate", "max"])))]
#[command(group(clap::ArgGroup::new("amount").args(["duration", "count"])))]
pub struct FloodArgs {
    /// What to send.
    #[arg(long, short = 'p', value_enum, required_unless_present = "framing")]
    pub proto: Option<FloodProtoArg>,
    /// Send frames of a framing file instead (see `rc1 framing --help`;
    /// v2 and v3 name the built-in ones): bodies of --size bytes (within
    /// the file's max_body), each echo compared byte for byte with its
    /// frame. --pipeline is at most the values its echo key takes. A file
    /// that does not load: exit status 1.
    #[arg(long, value_name = "FILE", conflicts_with = "proto")]
    pub framing: Option<String>,
    /// Server host name or address.
    #[arg(long, short = 'H', default_value = "127.0.0.1")]
    pub host: String,
    /// Server port. Default: 5005, or the framing file's `port`.
    #[arg(long)]
    pub port: Option<u16>,
    /// Connections (UDP: sockets), opened at once.
    #[arg(long, short = 'c', default_value_t = 1, value_name = "N")]
    pub connections: usize,
    /// Requests per second over all connections, evenly paced.
    #[arg(long, value_name = "FRAMES_PER_S")]
    pub rate: Option<f64>,
    /// As fast as the server echoes (the default).
    #[arg(long)]
    pub max: bool,
    /// Send for this long (default 10s), e.g. 30s, 500ms.
    #[arg(long, short = 'd', value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Send this many requests in all.
    #[arg(long, short = 'n', value_name = "COUNT")]
    pub count: Option<u64>,
    /// Message size in bytes: N, or MIN..MAX (uniform). v2 carries 20 at
    /// most (longer messages are cut, as the lab's client cuts them).
    #[arg(long, default_value = "16", value_name = "N|MIN..MAX")]
    pub size: String,
    /// Requests in flight per connection with --max (default 256; UDP 16,
    /// as more overflow the server's socket buffer and are lost for real).
    #[arg(long, value_name = "K")]
    pub pipeline: Option<usize>,
    /// Count echoes without comparing their bytes.
    #[arg(long)]
    pub no_verify: bool,
    /// Seed of the random messages (the same seed sends the same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print a report every SECONDS (e.g. 1, 0.5).
    #[arg(long, short = 'i', value_name = "SECONDS")]
    pub interval: Option<f64>,
    /// How long to wait for the last echoes; a request unanswered this long
    /// counts as missing.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Connect timeout.
    #[arg(long, short = 't', default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Keep the connections open this long after the last echo before
    /// closing them (e.g. so a live capture that fell behind catches up
    /// before the FINs). Default: close as soon as everything is sent.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Interval and final reports as JSON lines (the final object last).
    #[arg(long)]
    pub json: bool,
    /// Print only the final report (text, or its one JSON object with
    /// --json): no interval lines, no progress bar.
    #[arg(long, short = 'q', conflicts_with = "interval")]
    pub quiet: bool,
}

/// `N` or `MIN..MAX`.
pub fn parse_size_range(s: &str) -> Result<(usize, usize), String> {
    let one = |t: &str| {
        parse_size(t.trim())
            .map(|n| n as usize)
            .map_err(|e| format!("bad size {t:?}: {e}"))
    };
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b.trim_start_matches('='))?);
            if a > b {
                return Err(format!("size range {s}: the minimum is above the maximum"));
            }
            Ok((a, b))
        }
        None => one(s).map(|n| (n, n)),
    }
}

impl TryFrom<&FloodArgs> for crate::flood::FloodOptions {
    type Error = anyhow::Error;

    fn try_from(a: &FloodArgs) -> anyhow::Result<crate::flood::FloodOptions> {
        use crate::flood::{Limit, Proto};
        use std::net::ToSocketAddrs;
        let framing = load_framing(a.framing.as_deref())?;
        let proto = match (a.proto, framing) {
            (_, Some(crate::codec::Framing::V2)) => Proto::V2,
            (_, Some(crate::codec::Framing::V3)) => Proto::V3,
            (_, Some(crate::codec::Framing::Custom(def))) => Proto::Custom(def),
            (Some(FloodProtoArg::V2), None) => Proto::V2,
            (Some(FloodProtoArg::V3), None) => Proto::V3,
            (Some(FloodProtoArg::Text), None) => Proto::Text,
            (Some(FloodProtoArg::Udp), None) => Proto::Udp,
            (None, None) => anyhow::bail!("give --proto or --framing FILE"),
        };
        let port = a.port.unwrap_or(framing_port(framing));
        // `[::1]` as well as `::1`.
        let host = a.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("cannot resolve {}: {e}", a.host))?
            .collect();
        // A name with several addresses (localhost: ::1 and 127.0.0.1):
        // the first that accepts a TCP connection.
        let addr = match addrs.as_slice() {
            [] => anyhow::bail!("{} has no address", a.host),
            [one] => *one,
            many if proto != Proto::Udp => many
                .iter()
                .copied()
                .find(|x| std::net::TcpStream::connect_timeout(x, a.timeout).is_ok())
                .unwrap_or(many[0]),
            many => many
                .iter()
                .copied()
                .find(SocketAddr::is_ipv4)
                .unwrap_or(many[0]),
        };
        if a.pipeline == Some(0) {
            anyhow::bail!("--pipeline must be at least 1");
        }
        if a.duration.is_some_and(|d| d.is_zero()) {
            anyhow::bail!("-d 0 sends nothing: give a duration, e.g. -d 10s");
        }
        if a.connections == 0 || a.connections > 10_000 {
            anyhow::bail!("--connections must be 1 to 10000");
        }
        let size = parse_size_range(&a.size).map_err(|e| anyhow::anyhow!(e))?;
        let max_size = match proto {
            Proto::Udp => 65_507 - crate::flood::link::UDP_SEQ,
            Proto::Text => 1 << 20,
            Proto::V2 | Proto::V3 => 16 << 20,
            Proto::Custom(def) => {
                // The largest body must make a frame: max_body, and the
                // width of its length field, both say.
                let mut probe = Vec::new();
                crate::flood::link::custom_frame(def, 1, &vec![b'a'; size.1], &mut probe).map_err(
                    |e| anyhow::anyhow!("--size {}: no frame of {}: {e}", size.1, def.spec.name),
                )?;
                usize::MAX
            }
        };
        if size.1 > max_size {
            anyhow::bail!(
                "--size {} is over {max_size} bytes for {}",
                size.1,
                proto.name()
            );
        }
        if proto == Proto::Text && size.0 == 0 {
            anyhow::bail!(
                "--size 0: a text message needs at least one byte (nothing would be echoed)"
            );
        }
        let span = proto.order_span();
        if let Some(k) = a.pipeline
            && k as u64 > span
        {
            anyhow::bail!(
                "--pipeline {k}: {} has only {span} echo key values, so at most {span} requests can be told apart in flight",
                proto.name()
            );
        }
        if let Some(r) = a.rate
            && !(r.is_finite() && r > 0.0)
        {
            anyhow::bail!("--rate must be a positive number of requests per second");
        }
        let interval = match a.interval {
            Some(i) if !(i.is_finite() && i >= 0.01) => {
                anyhow::bail!("--interval must be at least 0.01 seconds")
            }
            Some(i) => Some(Duration::from_secs_f64(i)),
            None => None,
        };
        let limit = match (a.duration, a.count) {
            (_, Some(0)) => anyhow::bail!("--count 0 sends nothing"),
            (_, Some(n)) => Limit::Count(n),
            (Some(d), None) => Limit::Duration(d),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        };
        Ok(crate::flood::FloodOptions {
            proto,
            addr,
            connections: a.connections,
            rate: a.rate,
            limit,
            size,
            pipeline: a
                .pipeline
                .unwrap_or(if proto == Proto::Udp { 16 } else { 256 })
                .min(usize::try_from(span).unwrap_or(usize::MAX)),
            verify: !a.no_verify,
            seed: a.seed,
            interval,
            drain: a.drain,
            connect_timeout: a.timeout,
            hold: a.hold,
            // Drawn on stderr, and only when the report goes to a terminal
            // too (not when stdout is piped or redirected).
            progress: !a.quiet
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        })
    }
}

const DISSECTOR_HELP: &str = "\
Load the dissector without installing it:
  wireshark -X lua_script:dissectors/rc1.lua capture.pcap
  tshark -X lua_script:dissectors/rc1.lua -o tcp.reassemble_out_of_order:TRUE -r capture.pcap
tshark 4.0 reassembles out-of-order TCP segments only with that -o option.

A framing file's own dissector (here fixtures/framings/le16.toml, protocol le16):
  rc1 dissector --framing fixtures/framings/le16.toml -o le16.lua
  tshark -X lua_script:le16.lua -d tcp.port==5006,le16 -r capture.pcap -T fields -e le16.order -e le16.data

Exit status: 0 success; 1 error (cannot write, tshark missing or not loading
the dissector, a bad or unreadable framing file); 2 usage error.";

/// `rc1 dissector`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("action").args(["output", "install", "check"])))]
pub struct DissectorArgs {
    /// Generate the dissector of this framing file instead of rc1's v2/v3
    /// one (`rc1 framing --help`; v2 and v3 name the built-in files): its
    /// own protocol and filter fields (PREFIX.FIELD), TCP framing on the
    /// file's port (other ports with -d tcp.port==PORT,PREFIX), expert info
    /// for failed checks. --install writes it as NAME.lua. A bad file: its
    /// mistake on stderr and status 1, as `rc1 framing check`.
    #[arg(long, value_name = "FILE")]
    pub framing: Option<String>,
    /// Write the dissector to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Write it into Wireshark's personal Lua plugins folder (found with
    /// `tshark -G folders`, else ~/.local/lib/wireshark/plugins/).
    #[arg(long)]
    pub install: bool,
    /// Check that the installed Wireshark loads it: plugin listed, rc1.*
    /// fields known; report Wireshark's Lua version.
    #[arg(long)]
    pub check: bool,
    /// Say what was done as one JSON object on stdout: --check gives
    /// {plugin, fields, lua, current}; -o and --install {path, bytes} (and
    /// --install `how` the folder was found); alone, {lua, bytes} with the
    /// dissector's text in `lua`.
    #[arg(long)]
    pub json: bool,
    /// Say nothing on success (the exit status tells): no "wrote", no
    /// "installed", no --check report. Errors, and the warning that the
    /// installed rc1.lua is stale, still go to stderr; without -o,
    /// --install or --check the Lua is still printed (it is the output).
    #[arg(long, short)]
    pub quiet: bool,
}

const CAPTURE_EXIT_CODES: &str = "\
Exit status: 0 success; 1 error (cannot open the interface or file, bad
filter, a file cut short — everything before the cut is still decoded and
printed); 2 usage error.

Note for tshark users: tshark 4.0 does not reassemble out-of-order TCP
segments unless given -o tcp.reassemble_out_of_order:TRUE; rc1 always does.";

/// `--proto` of `rc1 capture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CaptureProtoArg {
    /// Decide per session from the client's first bytes (the rules are in
    /// `rc1 capture --help`'s module: v2 stride and padding, v3 header and
    /// length consistency, else text).
    Auto,
    /// Force v2 (29-byte frames).
    V2,
    /// Force v3 (header + size bytes).
    V3,
    /// Force text.
    Text,
    /// Force the framing file given with --framing (exactly one).
    Framing,
}

/// `--table` of `rc1 capture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableArg {
    /// Compact when standard output is a terminal, full otherwise.
    Auto,
    /// The main columns, fitted to the terminal's width ($COLUMNS when set,
    /// else the terminal's size, else 80).
    Compact,
    /// Every column, as wide as its content (about 190 columns).
    Full,
}

/// `rc1 capture`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["interface", "read", "list_interfaces"])))]
pub struct CaptureArgs {
    /// Capture live on this interface (e.g. lo, eth0, any). Needs root or
    /// CAP_NET_RAW.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// Read a saved capture (pcap or pcapng).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Option<std::path::PathBuf>,
    /// List the interfaces a live capture can use, and exit (-q: the names
    /// alone, one a line; --json: one object a line with name,
    /// description, addresses, loopback, up, running).
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,
    /// A BPF capture filter (tcpdump syntax); it replaces rc1's own choice
    /// of sessions (-f "" keeps every TCP/UDP session). Default: sessions
    /// on --port, chosen after tunnels are opened and IP fragments
    /// reassembled (a live capture's kernel filter keeps the port and what
    /// may hide it: VLAN tags, fragments, IPv6 extension headers, tunnels).
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// The lab server's port: it tells client from server. Default 5005,
    /// or the `port` of the --framing files when they all name the same.
    #[arg(long)]
    pub port: Option<u16>,
    /// Framing of TCP sessions.
    #[arg(long, value_enum, default_value_t = CaptureProtoArg::Auto)]
    pub proto: CaptureProtoArg,
    /// A framing file (see `rc1 framing --help`; `v2` and `v3` name the
    /// built-in ones), repeatable. With --proto auto each file is tried
    /// on every session before the built-in v2/v3 rules: a file fits when
    /// the client's first bytes are whole frames of it, every `equals`
    /// holding (a wrong checksum does not rule it out: it is reported as
    /// framing.checksum and decoding goes on). Of the files that fit,
    /// frames ending exactly where the bytes before the server's answer
    /// end beat a partial tail; then more equals/checksum checks verified
    /// beat fewer; then no checksum failure beats one; ties keep the
    /// order given. A file none of whose checks verified (it has none)
    /// loses to v2/v3 frames ending exactly and to printable text. The
    /// detection line says why (and why the others ranked lower or did not
    /// fit). A bad file is an error with its line and column (status 1, as
    /// `rc1 framing check`).
    #[arg(long = "framing", value_name = "FILE")]
    pub framing: Vec<String>,
    /// Stop after this many packets.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Also print TCP handshakes, FIN/RST and retransmissions.
    #[arg(long)]
    pub tcp_events: bool,
    /// Layout of the sessions table. On a terminal (auto) it fits the
    /// width: client and server as ip:port, retransmissions and gaps
    /// folded into anomalies, long cells wrapped. A pipe or a file gets
    /// every column; --json has every field either way.
    #[arg(long, value_enum, default_value_t = TableArg::Auto, value_name = "LAYOUT")]
    pub table: TableArg,
    /// Under each frame line, the frame's bytes as a hex dump with its
    /// fields marked (from the field spec), where each TCP segment's bytes
    /// begin (▸), and bytes never captured (..); text messages and UDP
    /// datagrams as hex + ASCII. Text output only.
    #[arg(long, conflicts_with_all = ["follow", "ladder"])]
    pub hex: bool,
    /// Print only the reassembled bytes of session N (numbers as in the
    /// sessions table), both directions, gaps marked: like Wireshark's
    /// Follow TCP Stream. With --ladder: draw session N only.
    #[arg(long, value_name = "N", conflicts_with = "dump_streams")]
    pub follow: Option<u64>,
    /// Also write each TCP session's directions to DIR (sNNN-…-c2s.bin /
    /// -s2c.bin, captured bytes only; gaps listed in a .gaps file beside).
    #[arg(long, value_name = "DIR")]
    pub dump_streams: Option<std::path::PathBuf>,
    /// Also write the packets read to this file, to open in Wireshark
    /// later: pcapng if the name ends in .pcapng (every interface), else
    /// pcap (one link type). With -f, the packets it lets through; without,
    /// every packet of a file, and what a live capture's kernel filter keeps.
    #[arg(short = 'w', long = "write", value_name = "OUT.pcap")]
    pub write: Option<std::path::PathBuf>,
    /// Largest v3 message believed (k, M, G suffixes); a bigger claim is
    /// reported as v3.size_over_max.
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_size)]
    pub max_frame: u32,
    /// Out-of-order bytes held per direction before a hole is declared a gap.
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub max_buffered: u32,
    /// Live capture: the kernel's buffer for packets not yet read (k, M, G
    /// suffixes), as tcpdump's -B. When it fills, the kernel drops packets:
    /// the summary gives the count and each lost stretch is a reported gap.
    #[arg(short = 'B', long, value_name = "BYTES", value_parser = parse_size)]
    pub buffer_size: Option<u32>,
    /// Draw the events as a ladder diagram instead of a line each: one
    /// lane per endpoint, time going down (text, the default, or a Mermaid
    /// sequenceDiagram to paste into a report). The sessions table and
    /// totals follow. Labels are cut to fit: the full text is in --json
    /// (without --ladder). With --ladder, --follow N draws session N only.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "text", value_name = "STYLE", conflicts_with = "json")]
    pub ladder: Option<LadderArg>,
    /// Width of the ladder or of the --hex panes in columns (at least 40).
    /// Default: the terminal's width on a terminal, else 80.
    #[arg(long, value_name = "N")]
    pub width: Option<usize>,
    /// Ladder colours: auto (on a terminal, unless NO_COLOR is set and not
    /// empty), always (even with NO_COLOR), never.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN", requires = "ladder")]
    pub color: ColorArg,
    /// Events drawn in the ladder at most; the rest are counted and the
    /// ladder says how to narrow it (-c, --follow, --from/--to).
    #[arg(long, value_name = "N", default_value_t = crate::capture::output::ladder::DEFAULT_MAX_EVENTS, requires = "ladder")]
    pub ladder_max: usize,
    /// Ladder: only events from this time: seconds after the first packet
    /// (1.5 or +1.5), epoch seconds (1700000000.25), or the time of day of
    /// the first packet's day, UTC as the event lines print it
    /// (18:50:51 or 18:50:51.2).
    #[arg(long, value_name = "T", requires = "ladder", value_parser = parse_when)]
    pub from: Option<When>,
    /// Ladder: only events up to this time (the same forms as --from).
    #[arg(long, value_name = "T", requires = "ladder", value_parser = parse_when)]
    pub to: Option<When>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `--ladder` of `rc1 capture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LadderArg {
    /// Lanes of text that fit --width.
    Text,
    /// A Mermaid sequenceDiagram (GitHub and GitLab draw it).
    Mermaid,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    /// On a terminal, unless NO_COLOR is set (and not empty).
    Auto,
    /// Always, even with NO_COLOR.
    Always,
    /// Never.
    Never,
}

/// A time given to `--from` / `--to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// Microseconds after the first packet.
    After(u64),
    /// Microseconds since the epoch.
    Epoch(u64),
    /// Microseconds after midnight (UTC) of the first packet's day.
    OfDay(u64),
}

/// Epoch seconds are told from seconds after the first packet by size:
/// from this many seconds (1973) a plain number is an epoch time.
const EPOCH_FROM: f64 = 1e8;

/// Parses `--from` / `--to`.
pub fn parse_when(s: &str) -> Result<When, String> {
    let bad = || {
        format!(
            "cannot read the time {s:?}: give seconds after the first packet (1.5 or +1.5), \
             epoch seconds (1700000000.25) or a time of day HH:MM:SS[.frac] (UTC)"
        )
    };
    let secs = |t: &str| -> Result<f64, String> {
        let v: f64 = t.parse().map_err(|_| bad())?;
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(bad())
        }
    };
    let us = |v: f64| (v * 1e6).round() as u64;
    if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        let [h, m, sec] = parts.as_slice() else {
            return Err(bad());
        };
        let h: u64 = h.parse().map_err(|_| bad())?;
        let m: u64 = m.parse().map_err(|_| bad())?;
        let sec = secs(sec)?;
        if h > 23 || m > 59 || sec >= 60.0 {
            return Err(bad());
        }
        return Ok(When::OfDay((h * 3600 + m * 60) * 1_000_000 + us(sec)));
    }
    if let Some(rest) = s.strip_prefix('+') {
        return Ok(When::After(us(secs(rest)?)));
    }
    let v = secs(s)?;
    if v >= EPOCH_FROM {
        Ok(When::Epoch(us(v)))
    } else {
        Ok(When::After(us(v)))
    }
}

/// `--proto` of `rc1 server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerProtoArg {
    /// UDP datagrams, printed with the sender's ip:port (serverUDP.py).
    Udp,
    /// TCP text, one thread per client, echo (serverTCP.py).
    Text,
    /// TCP text, one thread and a selector (mio), echo (serverTCPsel.py).
    TextSel,
    /// TCP v2 frames, !BLL20s (29 bytes), echo (serverTCPv2.py + 4.3).
    V2,
    /// TCP v3 frames, !BLL + size bytes, echo (serverTCPv3.py + 5.3).
    V3,
}

/// `--proto` of `rc1 client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientProtoArg {
    /// UDP datagrams (clientUDP.py).
    Udp,
    /// TCP text (clientTCP.py).
    Text,
    /// TCP v2 frames (clientTCPv2.py): size = characters typed, as the
    /// lab's Python computes it.
    V2,
    /// TCP v3 frames (clientTCPv3.py): size = number of message bytes
    /// (UTF-8), which for non-ASCII text is more than Python's len().
    V3,
}

/// Options shared by commands that print events.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print one JSON object per event (for scripts) instead of text lines.
    #[arg(long)]
    pub json: bool,
    /// No line per event: only errors, a server's listening, refuse and
    /// pause lines and its idle-timeout closes, and a capture's ready line
    /// and summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `rc1 server`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Which lab server.
    #[arg(long, short = 'p', value_enum, required_unless_present = "framing")]
    pub proto: Option<ServerProtoArg>,
    /// Serve the frames of a framing file instead (see `rc1 framing
    /// --help`; v2 and v3 name the built-in ones): a thread per client,
    /// each whole frame echoed byte for byte; a frame that breaks the file
    /// (bad checksum, wrong constant, lying length) closes its connection
    /// with the diagnostic code. A file that does not load: exit status 1.
    #[arg(long, value_name = "FILE", conflicts_with = "proto")]
    pub framing: Option<String>,
    /// Address to listen on: 0.0.0.0 is every IPv4 interface (as the lab);
    /// use :: for IPv6 (on Linux it also accepts IPv4 clients).
    #[arg(long, short = 'b', default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind: IpAddr,
    /// Port to listen on (0: let the OS choose, and print it). Default:
    /// 5005, or the framing file's `port`.
    #[arg(long)]
    pub port: Option<u16>,
    /// UDP only: send each datagram back to its sender (the lab server does not).
    #[arg(long)]
    pub echo: bool,
    /// Most TCP connections open at once; more are accepted, logged and
    /// closed at once. Default: 1000 for thread-per-client servers, 10000
    /// for text-sel.
    #[arg(long, value_name = "N")]
    pub max_conns: Option<usize>,
    /// Largest v3 message accepted (k, M, G suffixes). A header claiming
    /// more closes that connection with a clear log line; nothing is
    /// allocated for the claim.
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_size)]
    pub max_frame: u32,
    /// TCP servers: close a connection that sends nothing for this long, or
    /// that reads none of its echoes for this long (reading from it stops
    /// as soon as its echoes back up, with a `pause` line), with a log line.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `rc1 client`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Which lab client.
    #[arg(long, short = 'p', value_enum, required_unless_present = "framing")]
    pub proto: Option<ClientProtoArg>,
    /// Send frames of a framing file instead (see `rc1 framing --help`;
    /// v2 and v3 name the built-in ones): each message is the body, the
    /// echo key counts from 1 (wrapping as its field does), lengths and
    /// checksums are computed; each echo must equal the frame sent. A
    /// file that does not load: exit status 1.
    #[arg(long, value_name = "FILE", conflicts_with = "proto")]
    pub framing: Option<String>,
    /// With --framing: set an integer field of every frame (default 0),
    /// e.g. --field flags=3 (repeat for several). Not the echo key, the
    /// body, or a length, checksum or constant: those rc1 computes.
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// Server host name or address.
    #[arg(long, short = 'H', default_value = "127.0.0.1")]
    pub host: String,
    /// Server port. Default: 5005, or the framing file's `port`.
    #[arg(long)]
    pub port: Option<u16>,
    /// Message to send (repeat for several). Without it, messages are read
    /// one per line from stdin, after the lab's prompt when stdin is a
    /// terminal (end with Ctrl+D).
    #[arg(long, short = 'm', value_name = "M")]
    pub message: Vec<String>,
    /// How long to wait to connect and for each echo (e.g. 3s, 500ms).
    #[arg(long, short = 't', default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Version byte of v2/v3 frames (the lab client sends 1).
    #[arg(long = "version", value_name = "N", default_value_t = spec::LAB_VERSION)]
    pub frame_version: u8,
    /// UDP only: wait for each datagram's echo (server run with --echo).
    #[arg(long)]
    pub echo: bool,
    /// Largest v3 message sent or echo accepted (k, M, G suffixes).
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_size)]
    pub max_frame: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

impl TryFrom<&CaptureArgs> for crate::capture::CaptureOptions {
    type Error = anyhow::Error;

    fn try_from(a: &CaptureArgs) -> anyhow::Result<crate::capture::CaptureOptions> {
        use crate::capture::decode::Carries;
        use crate::capture::session::{ProtoChoice, TrackerOptions};
        use crate::codec::Framing;
        let input = match (&a.interface, &a.read) {
            (Some(i), None) => crate::capture::Input::Live(i.clone()),
            (None, Some(r)) => crate::capture::Input::File(r.clone()),
            _ => anyhow::bail!("give one of -i IFACE (live) or -r FILE (saved capture)"),
        };
        let framings = capture_framings(&a.framing)?;
        let proto = match a.proto {
            CaptureProtoArg::Auto => ProtoChoice::Auto,
            CaptureProtoArg::V2 => ProtoChoice::Force(Carries::Framed(Framing::V2)),
            CaptureProtoArg::V3 => ProtoChoice::Force(Carries::Framed(Framing::V3)),
            CaptureProtoArg::Text => ProtoChoice::Force(Carries::Text),
            CaptureProtoArg::Framing => match framings {
                [f] => ProtoChoice::Force(Carries::Framed(*f)),
                _ => anyhow::bail!(
                    "--proto framing forces the one framing file given: give exactly one \
                     --framing FILE ({} given)",
                    framings.len()
                ),
            },
        };
        let port = match a.port {
            Some(p) => p,
            None => capture_port(framings)?,
        };
        if port == 0 {
            anyhow::bail!("--port 0 is not a server port");
        }
        if a.buffer_size.is_some() && a.read.is_some() {
            anyhow::bail!(
                "-B/--buffer-size is the kernel's buffer of a live capture (-i); a file (-r) needs none"
            );
        }
        if let Some(b) = a.buffer_size
            && !(64 * 1024..=i32::MAX as u32).contains(&b)
        {
            anyhow::bail!(
                "-B/--buffer-size {b} is out of range: give 64k to 2047M (the kernel buffer of a live capture)"
            );
        }
        Ok(crate::capture::CaptureOptions {
            input,
            filter: a.filter.clone(),
            tracker: TrackerOptions {
                port,
                proto,
                max_frame: a.max_frame,
                max_buffered: a.max_buffered as usize,
                framings,
            },
            count: a.count,
            // The ladder draws the handshake, FIN and RST.
            tcp_events: a.tcp_events || a.ladder.is_some(),
            write: a.write.clone(),
            buffer: a.buffer_size.unwrap_or(crate::capture::source::LIVE_BUFFER),
            progress: !a.output.quiet,
        })
    }
}

/// Loads `--framing FILE` (a built-in name, v2 or v3, when no such file
/// exists) as the framing it stands for ([`crate::lab::framing_of`]). A
/// file that does not load is an error carrying the
/// [`crate::framing::FramingError`] itself, so `run` can tell it from a
/// usage error: it exits 1, as `rc1 framing check` does.
pub fn load_framing(file: Option<&str>) -> anyhow::Result<Option<crate::codec::Framing>> {
    match file {
        None => Ok(None),
        Some(f) => Ok(Some(crate::lab::framing_of(crate::framing::load(f)?))),
    }
}

/// The default port with `framing`: a framing file's `port`, else the lab's 5005.
fn framing_port(framing: Option<crate::codec::Framing>) -> u16 {
    framing
        .and_then(crate::codec::Framing::def)
        .map_or(crate::framing::DEFAULT_PORT, |d| d.port)
}

/// `--field NAME=VALUE` of `rc1 client --framing`: an integer field of
/// `def` that rc1 does not fill itself, and a value that fits it.
fn parse_field(
    def: &'static crate::framing::FramingDef,
    arg: &str,
) -> anyhow::Result<(&'static str, i128)> {
    use crate::spec::{Check, FieldKind};
    let Some((name, value)) = arg.split_once('=') else {
        anyhow::bail!("--field {arg:?}: write NAME=VALUE, e.g. --field flags=3");
    };
    let (name, value) = (name.trim(), value.trim());
    let names = || {
        def.spec
            .fields
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(field) = def.field(name) else {
        anyhow::bail!(
            "--field {arg:?}: framing {} has no field {name:?}; its fields are {}",
            def.spec.name,
            names()
        );
    };
    let Some((lo, hi)) = field.kind.int_range() else {
        anyhow::bail!(
            "--field {arg:?}: {name} is a byte field; --field sets integer fields (the message is the body)"
        );
    };
    let computed = def.checks.iter().any(|c| match *c {
        Check::Equals { field, .. } | Check::Checksum { field, .. } => field == name,
        Check::Expect { .. } => false,
    }) || def.spec.fields.iter().any(|g| match g.kind {
        FieldKind::SizedBy(by) | FieldKind::FixedBytes { len_by: by, .. } => by == name,
        _ => false,
    });
    if computed {
        anyhow::bail!(
            "--field {arg:?}: rc1 computes {name} (a length, checksum or constant); leave it out"
        );
    }
    if def.echo_key == Some(name) {
        anyhow::bail!(
            "--field {arg:?}: {name} is the echo key, which counts the messages from 1; leave it out"
        );
    }
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(h) => i128::from_str_radix(h, 16),
        None => value.parse::<i128>(),
    };
    let Ok(v) = parsed else {
        anyhow::bail!("--field {arg:?}: {value:?} is not an integer (decimal, or hex as 0x1F)");
    };
    if !(lo..=hi).contains(&v) {
        anyhow::bail!("--field {arg:?}: {v} does not fit {name} ({lo}..={hi})");
    }
    Ok((field.name, v))
}

/// A framing file could not be loaded (`--framing`): the message is the
/// file's mistake (`FILE:LINE:COL: what; fix`); `rc1 capture` exits with
/// status 1 on it, as `rc1 framing check` does.
#[derive(Debug)]
pub struct BadFraming(pub crate::framing::FramingError);

impl std::fmt::Display for BadFraming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--framing {}", self.0)
    }
}

impl std::error::Error for BadFraming {}

/// The framings of `--framing FILE …`, loaded once for the process, in
/// the order given (a file given twice counts once).
fn capture_framings(files: &[String]) -> anyhow::Result<&'static [crate::codec::Framing]> {
    use crate::codec::Framing;
    let mut out: Vec<Framing> = Vec::with_capacity(files.len());
    for file in files {
        let def = crate::framing::load(file).map_err(BadFraming)?;
        let f = match def.spec.name {
            // The built-in files are the built-in framings.
            "v2" if crate::framing::builtin("v2").is_some_and(|b| std::ptr::eq(b, def)) => {
                Framing::V2
            }
            "v3" if crate::framing::builtin("v3").is_some_and(|b| std::ptr::eq(b, def)) => {
                Framing::V3
            }
            _ => Framing::Custom(def),
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(Box::leak(out.into_boxed_slice()))
}

/// The server port without `--port`: the framing files' `port` when they
/// all name the same one, else the lab's 5005 (no files); files that
/// disagree need `--port`.
fn capture_port(framings: &[crate::codec::Framing]) -> anyhow::Result<u16> {
    let ports: Vec<(&str, u16)> = framings
        .iter()
        .map(|f| {
            (
                f.name(),
                f.def().map_or(crate::framing::DEFAULT_PORT, |d| d.port),
            )
        })
        .collect();
    match ports.first() {
        None => Ok(crate::framing::DEFAULT_PORT),
        Some(&(_, p)) if ports.iter().all(|&(_, q)| q == p) => Ok(p),
        Some(_) => {
            let list: Vec<String> = ports.iter().map(|(n, p)| format!("{n} {p}")).collect();
            anyhow::bail!(
                "the --framing files name different ports ({}): give --port P (sessions on P are \
                 read and their echoes checked; add -f 'tcp port A or tcp port B' to read the others too)",
                list.join(", ")
            )
        }
    }
}

impl TryFrom<&ServerArgs> for ServerOptions {
    type Error = anyhow::Error;

    fn try_from(a: &ServerArgs) -> anyhow::Result<ServerOptions> {
        let framing = load_framing(a.framing.as_deref())?;
        let proto = match (a.proto, framing) {
            (_, Some(crate::codec::Framing::V2)) => ServerProto::V2,
            (_, Some(crate::codec::Framing::V3)) => ServerProto::V3,
            (_, Some(crate::codec::Framing::Custom(def))) => ServerProto::Custom(def),
            (Some(ServerProtoArg::Udp), None) => ServerProto::Udp,
            (Some(ServerProtoArg::Text), None) => ServerProto::Text,
            (Some(ServerProtoArg::TextSel), None) => ServerProto::TextSel,
            (Some(ServerProtoArg::V2), None) => ServerProto::V2,
            (Some(ServerProtoArg::V3), None) => ServerProto::V3,
            (None, None) => anyhow::bail!("give --proto or --framing FILE"),
        };
        let port = a.port.unwrap_or(framing_port(framing));
        if a.echo && proto != ServerProto::Udp {
            anyhow::bail!(
                "--echo is for --proto udp; the TCP servers always echo (exercises 2.1, 3.1, 4.3, 5.3)"
            );
        }
        let max_conns = a.max_conns.unwrap_or(proto.default_max_conns());
        if max_conns == 0 {
            anyhow::bail!("--max-conns 0 would refuse every client; give at least 1");
        }
        if a.idle_timeout < Duration::from_millis(100) {
            anyhow::bail!(
                "--idle-timeout {} ms would close connections before they can say anything; give at least 100ms (e.g. 30s, 5m)",
                a.idle_timeout.as_millis()
            );
        }
        Ok(ServerOptions {
            proto,
            addr: SocketAddr::new(a.bind, port),
            echo: a.echo,
            max_conns,
            max_frame: a.max_frame,
            idle_timeout: a.idle_timeout,
        })
    }
}

impl TryFrom<&ClientArgs> for ClientOptions {
    type Error = anyhow::Error;

    fn try_from(a: &ClientArgs) -> anyhow::Result<ClientOptions> {
        let framing = load_framing(a.framing.as_deref())?;
        let proto = match (a.proto, framing) {
            (_, Some(crate::codec::Framing::V2)) => ClientProto::V2,
            (_, Some(crate::codec::Framing::V3)) => ClientProto::V3,
            (_, Some(crate::codec::Framing::Custom(def))) => ClientProto::Custom(def),
            (Some(ClientProtoArg::Udp), None) => ClientProto::Udp,
            (Some(ClientProtoArg::Text), None) => ClientProto::Text,
            (Some(ClientProtoArg::V2), None) => ClientProto::V2,
            (Some(ClientProtoArg::V3), None) => ClientProto::V3,
            (None, None) => anyhow::bail!("give --proto or --framing FILE"),
        };
        let fields = match proto {
            ClientProto::Custom(def) => a
                .fields
                .iter()
                .map(|f| parse_field(def, f))
                .collect::<anyhow::Result<Vec<_>>>()?,
            _ if !a.fields.is_empty() => anyhow::bail!(
                "--field is for framing files; v2 and v3 have no fields to set (use --version)"
            ),
            _ => Vec::new(),
        };
        let port = a.port.unwrap_or(framing_port(framing));
        if a.echo && proto != ClientProto::Udp {
            anyhow::bail!("--echo is for --proto udp; TCP clients always wait for the echo");
        }
        if port == 0 {
            anyhow::bail!("--port 0 is not a server port; give the port the server printed");
        }
        if a.timeout.is_zero() {
            anyhow::bail!("--timeout must be more than 0");
        }
        Ok(ClientOptions {
            proto,
            host: a.host.clone(),
            port,
            timeout: a.timeout,
            version: a.frame_version,
            max_frame: a.max_frame,
            udp_echo: a.echo,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rc1").chain(args.iter().copied()))
    }

    #[test]
    fn server_defaults_are_the_lab_s() {
        let Command::Server(a) = parse(&["server", "--proto", "v2"]).unwrap().command else {
            panic!()
        };
        let o = ServerOptions::try_from(&a).unwrap();
        assert_eq!(o.addr, "0.0.0.0:5005".parse().unwrap());
        assert_eq!(o.max_frame, 1 << 20);
        assert_eq!(o.max_conns, 1000);
    }

    #[test]
    fn server_flags() {
        let Command::Server(a) = parse(&[
            "server",
            "-p",
            "text-sel",
            "--bind",
            "::",
            "--port",
            "0",
            "--max-conns",
            "7",
            "--max-frame",
            "64k",
            "--json",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        let o = ServerOptions::try_from(&a).unwrap();
        assert_eq!(o.proto, ServerProto::TextSel);
        assert_eq!(o.addr, "[::]:0".parse().unwrap());
        assert_eq!((o.max_conns, o.max_frame), (7, 65536));
        assert!(a.output.json);
        assert!(parse(&["server", "--proto", "v4"]).is_err());
        assert!(parse(&["server", "--proto", "v3", "--max-frame", "5G"]).is_err());
        let Command::Server(a) = parse(&["server", "-p", "v2", "--echo"]).unwrap().command else {
            panic!()
        };
        assert!(ServerOptions::try_from(&a).is_err());
    }

    #[test]
    fn client_flags() {
        let Command::Client(a) = parse(&[
            "client",
            "-p",
            "v2",
            "-m",
            "a",
            "-m",
            "b",
            "--version",
            "2",
            "--timeout",
            "250ms",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(a.message, ["a", "b"]);
        let o = ClientOptions::try_from(&a).unwrap();
        assert_eq!(o.version, 2);
        assert_eq!(o.timeout, Duration::from_millis(250));
        assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 5005));
        // `rc1 --version` is the program's version; `client --version N` the byte.
        assert_eq!(
            parse(&["--version"]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayVersion
        );
        assert!(parse(&["client", "-p", "v2", "--version", "256"]).is_err());
    }

    #[test]
    fn field_values_are_checked_against_the_framing() {
        let def: &'static crate::framing::FramingDef = Box::leak(Box::new(
            crate::framing::parse(
                "name = \"f\"\necho_key = \"key\"\nstruct = \"!BhHI\"\nnames = [\"flags\", \"temp\", \"key\", \"n\"]\n",
                "f.toml",
            )
            .unwrap(),
        ));
        assert_eq!(parse_field(def, "flags=0x1F").unwrap(), ("flags", 31));
        assert_eq!(parse_field(def, "temp = -40").unwrap(), ("temp", -40));
        for (arg, says) in [
            ("flags=256", "does not fit flags (0..=255)"),
            ("temp=40000", "does not fit temp"),
            ("key=1", "echo key"),
            (
                "nope=1",
                "no field \"nope\"; its fields are flags, temp, key, n",
            ),
            ("flags", "write NAME=VALUE"),
            ("flags=x", "is not an integer"),
        ] {
            let e = parse_field(def, arg).unwrap_err().to_string();
            assert!(e.contains(says), "{arg}: {e}");
        }
    }

    #[test]
    fn framing_takes_the_place_of_proto_and_gives_the_default_port() {
        assert!(parse(&["server"]).is_err());
        let Command::Server(a) = parse(&["server", "--framing", "v3"]).unwrap().command else {
            panic!()
        };
        let o = ServerOptions::try_from(&a).unwrap();
        assert_eq!(o.proto, ServerProto::V3);
        assert_eq!(o.addr.port(), 5005);
        let le16 = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/framings/le16.toml");
        let Command::Client(a) = parse(&["client", "--framing", le16, "-m", "x"])
            .unwrap()
            .command
        else {
            panic!()
        };
        let o = ClientOptions::try_from(&a).unwrap();
        assert!(matches!(o.proto, ClientProto::Custom(d) if d.spec.name == "le16"));
        assert_eq!(o.port, 5006, "the file's port");
        let Command::Flood(a) = parse(&["flood", "--framing", le16, "--port", "7000"])
            .unwrap()
            .command
        else {
            panic!()
        };
        let o = crate::flood::FloodOptions::try_from(&a).unwrap();
        assert_eq!(o.addr.port(), 7000, "--port overrides");
        let refused = parse(&["client", "--proto", "v2", "--field", "a=1", "-m", "x"])
            .map_err(|e| e.to_string())
            .and_then(|c| match c.command {
                Command::Client(a) => ClientOptions::try_from(&a).map_err(|e| e.to_string()),
                _ => panic!(),
            });
        assert!(refused.is_err(), "--field without --framing");
    }
}
