//! The sessions table: what the lab asks students to explain.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

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
