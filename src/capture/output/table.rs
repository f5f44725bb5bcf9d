//! The sessions table: what the lab asks students to explain.

use comfy_table::{
    ColumnConstraint, ContentArrangement, Table, Width, presets::UTF8_FULL_CONDENSED,
};

use crate::capture::event::SessionSummary;
use crate::units::micros;

/// The table's gaps cell: count (bytes), and for v2 the frames they took.
fn gaps_cell(s: &SessionSummary) -> String {
    let (r0, r1) = (&s.dirs[0].reassembly, &s.dirs[1].reassembly);
    let mut cell = format!(
        "{} ({})",
        r0.gaps + r1.gaps,
        r0.missed_bytes + r1.missed_bytes
    );
    let frames: Option<u64> = s.dirs.iter().map(|d| d.frames_in_gaps).sum();
    if let Some(f) = frames.filter(|f| *f > 0) {
        cell.push_str(&format!(", {f} frames"));
    }
    cell
}

/// The table of `sessions`, in the order given.
pub fn sessions_table(sessions: &[SessionSummary]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "#",
        "client",
        "client port",
        "server",
        "framing",
        "msgs c>s / s>c",
        "bytes c>s / s>c",
        "handshake RTT",
        "echo p50 / max",
        "retrans",
        "gaps (bytes)",
        "state",
        "anomalies",
    ]);
    for s in sessions {
        let (p50, max) = (s.echo_latency_p50_us, s.echo_latency_max_us);
        let lat = match (p50, max) {
            (Some(a), Some(b)) => format!("{} / {}", micros(a), micros(b)),
            _ => "-".into(),
        };
        let r0 = &s.dirs[0].reassembly;
        let r1 = &s.dirs[1].reassembly;
        let mut anomalies = s.anomalies.to_string();
        if s.echo_mismatches > 0 || s.echoes_missing > 0 {
            anomalies.push_str(&format!(
                " ({} mismatched, {} missing echoes)",
                s.echo_mismatches, s.echoes_missing
            ));
        }
        t.add_row(vec![
            s.id.to_string(),
            s.client.ip().to_string(),
            s.client.port().to_string(),
            s.server.to_string(),
            s.framing.to_string(),
            format!("{} / {}", s.dirs[0].messages, s.dirs[1].messages),
            format!("{} / {}", s.dirs[0].bytes, s.dirs[1].bytes),
            s.handshake_rtt_us.map_or("-".into(), micros),
            lat,
            (r0.retransmitted_segments + r1.retransmitted_segments).to_string(),
            gaps_cell(s),
            s.state.to_string(),
            anomalies,
        ]);
    }
    t.to_string()
}

/// How the sessions table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableLayout {
    /// Every column, as wide as its content: what a pipe or a file gets.
    #[default]
    Full,
    /// The main columns (client and server as `ip:port`, messages, bytes,
    /// handshake RTT, echo p50, state, anomalies with retransmissions and
    /// gaps folded in), cells wrapped so that no line is wider than `width`
    /// columns: what a terminal gets.
    Compact {
        /// Terminal columns the table must fit in.
        width: u16,
    },
}

/// Terminal columns assumed when neither `COLUMNS` nor the terminal says.
pub const DEFAULT_WIDTH: u16 = 80;

/// Narrowest table drawn: below it the ten columns cannot all show.
pub const MIN_WIDTH: u16 = 40;

/// The width the compact table fits: `COLUMNS` when it is set to a number,
/// else the size of the terminal on standard output, else
/// [`DEFAULT_WIDTH`]; never less than [`MIN_WIDTH`].
pub fn terminal_width() -> u16 {
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|w| *w > 0);
    // comfy-table asks the terminal (TIOCGWINSZ) when stdout is one.
    let w = from_env
        .or_else(|| Table::new().width())
        .unwrap_or(DEFAULT_WIDTH);
    w.max(MIN_WIDTH)
}

/// The compact table's anomalies cell: the count, then what it is made of
/// that the full table shows in columns of its own (retransmissions, gaps)
/// and the echoes that went wrong.
fn compact_anomalies(s: &SessionSummary) -> String {
    let (r0, r1) = (&s.dirs[0].reassembly, &s.dirs[1].reassembly);
    let mut parts = Vec::new();
    let retrans = r0.retransmitted_segments + r1.retransmitted_segments;
    if retrans > 0 {
        parts.push(format!("{retrans} retrans"));
    }
    let gaps = r0.gaps + r1.gaps;
    if gaps > 0 {
        let plural = if gaps == 1 { "" } else { "s" };
        let mut g = format!(
            "{gaps} gap{plural} ({} B",
            r0.missed_bytes + r1.missed_bytes
        );
        let frames: Option<u64> = s.dirs.iter().map(|d| d.frames_in_gaps).sum();
        if let Some(f) = frames.filter(|f| *f > 0) {
            g.push_str(&format!(", {f} frames"));
        }
        g.push(')');
        parts.push(g);
    }
    if s.echo_mismatches > 0 {
        parts.push(format!("{} echoes mismatched", s.echo_mismatches));
    }
    if s.echoes_missing > 0 {
        parts.push(format!("{} echoes missing", s.echoes_missing));
    }
    if parts.is_empty() {
        s.anomalies.to_string()
    } else {
        format!("{}: {}", s.anomalies, parts.join(", "))
    }
}

/// Widest line of `table`, in terminal columns (every character the
/// tables hold is one column wide: box drawing, ASCII, `µ`, `×`).
fn widest(table: &str) -> usize {
    table.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// The sessions table in its compact layout, no line wider than `width`
/// columns (down to [`MIN_WIDTH`]). One line per session when that fits:
/// `#`, client, server (each `ip:port`), framing, messages, bytes,
/// handshake RTT, echo p50, state, anomalies (with retransmissions, gaps
/// and bad echoes named). Else two lines per session, pairs of fields
/// stacked in one column (client over server, framing over state, messages
/// over bytes, RTT over echo p50), long cells wrapped inside their column.
/// Every field is still in `--json`, and in [`sessions_table`].
pub fn compact_sessions_table(sessions: &[SessionSummary], width: u16) -> String {
    let width = width.max(MIN_WIDTH);
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "#",
        "client",
        "server",
        "framing",
        "msgs c>s/s>c",
        "bytes c>s/s>c",
        "RTT",
        "echo p50",
        "state",
        "anomalies",
    ]);
    let rtt = |s: &SessionSummary| s.handshake_rtt_us.map_or("-".into(), micros);
    let p50 = |s: &SessionSummary| s.echo_latency_p50_us.map_or("-".into(), micros);
    let msgs = |s: &SessionSummary| format!("{}/{}", s.dirs[0].messages, s.dirs[1].messages);
    let bytes = |s: &SessionSummary| format!("{}/{}", s.dirs[0].bytes, s.dirs[1].bytes);
    for s in sessions {
        t.add_row(vec![
            s.id.to_string(),
            s.client.to_string(),
            s.server.to_string(),
            s.framing.to_string(),
            msgs(s),
            bytes(s),
            rtt(s),
            p50(s),
            s.state.to_string(),
            compact_anomalies(s),
        ]);
    }
    let one_line = t.to_string();
    if widest(&one_line) <= usize::from(width) {
        return one_line;
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Dynamic);
    t.set_width(width);
    t.set_header(vec![
        "#",
        "client\nserver",
        "framing\nstate",
        "msgs c>s/s>c\nbytes c>s/s>c",
        "RTT\necho p50",
        "anomalies",
    ]);
    for s in sessions {
        t.add_row(vec![
            s.id.to_string(),
            format!("{}\n{}", s.client, s.server),
            format!("{}\n{}", s.framing, s.state),
            format!("{}\n{}", msgs(s), bytes(s)),
            format!("{}\n{}", rtt(s), p50(s)),
            compact_anomalies(s),
        ]);
    }
    // An IPv4 ip:port (21 characters at most) is not split when the rest
    // still fits; longer IPv6 addresses may be.
    let longest = sessions
        .iter()
        .flat_map(|s| [s.client.to_string().len(), s.server.to_string().len()])
        .max()
        .unwrap_or(0)
        .min(21);
    let unsplit = t.clone();
    if let Some(c) = t.column_mut(1) {
        // The width counts the column's padding, one space each side.
        c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(
            u16::try_from(longest + 2).unwrap_or(23),
        )));
    }
    let kept_whole = t.to_string();
    if widest(&kept_whole) <= usize::from(width) {
        kept_whole
    } else {
        unsplit.to_string()
    }
}

/// The sessions table in `layout`.
pub fn render(sessions: &[SessionSummary], layout: TableLayout) -> String {
    match layout {
        TableLayout::Full => sessions_table(sessions),
        TableLayout::Compact { width } => compact_sessions_table(sessions, width),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::event::DirSummary;
    use crate::capture::source::Timestamp;

    /// A session with long addresses and every anomaly the compact table
    /// folds into one cell.
    fn troubled(id: u64) -> SessionSummary {
        let mut dir = DirSummary {
            packets: 90_000,
            messages: 123_456,
            bytes: 98_765_432,
            frames_in_gaps: Some(7),
            ..DirSummary::default()
        };
        dir.reassembly.retransmitted_segments = 12;
        dir.reassembly.gaps = 3;
        dir.reassembly.missed_bytes = 4_096;
        SessionSummary {
            id,
            transport: "tcp",
            client: "[2001:db8:1234:5678:9abc:def0:1234:5678]:54321"
                .parse()
                .unwrap(),
            server: "[2001:db8:1234:5678:9abc:def0:1234:9999]:5005"
                .parse()
                .unwrap(),
            framing: "v2",
            first: Timestamp::default(),
            last: Timestamp::default(),
            dirs: [dir, dir],
            handshake_rtt_us: Some(1_234_567),
            echo_latency_p50_us: Some(7_654_321),
            echo_latency_max_us: Some(9_999_999),
            echoes_ok: 1,
            echo_mismatches: 17,
            echoes_missing: 23,
            state: "RST",
            picked_up: false,
            anomalies: 99,
            anomaly_counts: vec![("tcp.gap", 6)],
            via: None,
        }
    }

    /// A session as the lab makes them: IPv4 on loopback, nothing wrong.
    fn plain(id: u64) -> SessionSummary {
        let dir = DirSummary {
            packets: 5,
            messages: 3,
            bytes: 43,
            ..DirSummary::default()
        };
        SessionSummary {
            client: "127.0.0.1:45832".parse().unwrap(),
            server: "127.0.0.1:5005".parse().unwrap(),
            framing: "text",
            dirs: [dir, dir],
            handshake_rtt_us: Some(34),
            echo_latency_p50_us: Some(133),
            echo_latency_max_us: Some(200),
            echo_mismatches: 0,
            echoes_missing: 0,
            state: "SF",
            anomalies: 0,
            anomaly_counts: Vec::new(),
            ..troubled(id)
        }
    }

    #[test]
    fn compact_table_fits_every_width_asked() {
        let sessions = vec![plain(1), troubled(2), plain(1000)];
        let full = sessions_table(&sessions);
        assert!(
            widest(&full) > 120,
            "the full table is the wide one: {full}"
        );
        for width in [MIN_WIDTH, 60, 80, 100, 120, 200] {
            let t = compact_sessions_table(&sessions, width);
            for line in t.lines() {
                assert!(
                    line.chars().count() <= usize::from(width),
                    "width {width}: {line:?} is {} wide\n{t}",
                    line.chars().count()
                );
            }
            // Nothing is cut: the anomalies column, read down and without
            // the spaces wrapping added, holds every cell in full.
            let mut column = String::new();
            let rows = t.lines().skip_while(|l| !l.starts_with('╞')).skip(1);
            for line in rows.filter(|l| l.starts_with('│')) {
                if let Some(cell) = line.trim_end_matches('│').rsplit('┆').next() {
                    column.extend(cell.chars().filter(|c| !c.is_whitespace()));
                }
            }
            let want: String = sessions
                .iter()
                .map(compact_anomalies)
                .collect::<String>()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            assert_eq!(column, want, "width {width}\n{t}");
        }
    }

    #[test]
    fn compact_table_is_one_line_per_session_when_that_fits() {
        let sessions = vec![plain(1), plain(2)];
        let wide = compact_sessions_table(&sessions, 120);
        // Header, two rows, three borders.
        assert_eq!(wide.lines().count(), 6, "{wide}");
        assert!(
            wide.lines()
                .any(|l| l.contains("127.0.0.1:45832") && l.contains("127.0.0.1:5005"))
        );
        assert!(widest(&wide) <= 120);
        // At 80, two lines a session: client over server.
        let narrow = compact_sessions_table(&sessions, 80);
        assert_eq!(narrow.lines().count(), 9, "{narrow}");
        let lines: Vec<&str> = narrow.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains("127.0.0.1:45832"))
            .expect("client row");
        assert!(lines[at + 1].contains("127.0.0.1:5005"), "{narrow}");
        assert!(widest(&narrow) <= 80);
    }

    #[test]
    fn compact_anomalies_name_what_the_full_table_has_columns_for() {
        assert_eq!(compact_anomalies(&plain(1)), "0");
        assert_eq!(
            compact_anomalies(&troubled(1)),
            "99: 24 retrans, 6 gaps (8192 B, 14 frames), 17 echoes mismatched, 23 echoes missing"
        );
    }

    #[test]
    fn render_full_is_the_full_table() {
        let sessions = vec![troubled(1)];
        assert_eq!(
            render(&sessions, TableLayout::Full),
            sessions_table(&sessions)
        );
        assert_eq!(
            render(&sessions, TableLayout::Compact { width: 80 }),
            compact_sessions_table(&sessions, 80)
        );
    }
}
