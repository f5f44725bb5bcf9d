//! What a session comes to when it ends: the row of the sessions table
//! and the `session` JSON object.

use super::carries_name;
use super::conn::Session;
use crate::capture::decode::StreamDecoder;
use crate::capture::event::{DirSummary, SessionSummary};

impl Session {
    pub(super) fn summary(&self) -> SessionSummary {
        let state = if self.udp {
            "UDP"
        } else if self.rst {
            "RST"
        } else if self.fin[0] && self.fin[1] {
            "SF"
        } else if self.picked_up {
            "OTH"
        } else if !self.established && self.halves.iter().all(|h| h.bytes == 0) {
            "S0"
        } else {
            "EST"
        };
        let framing = if self.udp {
            "udp"
        } else {
            self.framing.map_or("?", carries_name)
        };
        SessionSummary {
            id: self.id,
            transport: if self.udp { "udp" } else { "tcp" },
            client: self.client,
            server: self.server,
            framing,
            first: self.first,
            last: self.last,
            dirs: [0, 1].map(|i| DirSummary {
                packets: self.packets[i],
                messages: self.halves[i].messages,
                bytes: self.halves[i].bytes,
                reassembly: self.halves[i].reasm.stats(),
                // Not for a session picked up mid-stream: what came before
                // its first captured byte is unknown.
                frames_in_gaps: self
                    .decoders
                    .as_ref()
                    .filter(|_| !self.picked_up)
                    .and_then(|d| d.get(i))
                    .and_then(StreamDecoder::frames_in_gaps),
            }),
            handshake_rtt_us: self.rtt_us,
            echo_latency_p50_us: self.echo.p50(),
            echo_latency_max_us: self.echo.max(),
            echoes_ok: self.echo.ok,
            echo_mismatches: self.echo.mismatches,
            echoes_missing: if self.echo.server_echoed {
                self.echo.waiting()
            } else {
                0
            },
            state,
            picked_up: self.picked_up,
            anomalies: self.codes.iter().map(|(_, n)| n).sum(),
            anomaly_counts: {
                let mut c = self.codes.clone();
                c.sort_unstable();
                c
            },
            via: (!self.encap.is_empty()).then(|| self.encap.to_string()),
        }
    }
}
