//! Text lines: one per event, like tcpdump's, then the notes under the
//! sessions table and the totals.

use std::fmt::Write as _;

use crate::capture::event::{Dir, EchoMatch, Event, SessionSummary, Totals};
use crate::capture::source::Timestamp;
use crate::codec::escape::{preview_into, push_u64};
use crate::units::push_micros;

use super::tcp_what;

/// The line of an event, appended to `b` (without the newline). `client`
/// and `server` are the event's addresses as text.
pub fn event(b: &mut String, ev: &Event<'_>, names: (&str, &str)) {
    let (client, server) = names;
    match ev {
        Event::Frame { at, dir, .. } | Event::Text { at, dir, .. } | Event::Udp { at, dir, .. } => {
            push_time(b, at.ts);
            num(b, " #", at.session);
            let arrow = match dir {
                Dir::ToServer => "->",
                Dir::ToClient => "<-",
            };
            for part in [" ", client, " ", arrow, " ", server, " "] {
                b.push_str(part);
            }
            match ev {
                Event::Frame {
                    framing,
                    frame,
                    echo,
                    ..
                } => {
                    frame.describe_into(b, *framing);
                    push_echo_note(b, *echo);
                }
                Event::Text { data, echo, .. } => {
                    num(b, "text ", data.len() as u64);
                    b.push_str(" bytes ");
                    preview_into(b, data);
                    push_echo_note(b, *echo);
                }
                Event::Udp { data, .. } => {
                    num(b, "udp ", data.len() as u64);
                    b.push_str(" bytes ");
                    preview_into(b, data);
                }
                _ => {}
            }
        }
        Event::Detected {
            at,
            framing,
            reason,
        } => {
            push_time(b, at.ts);
            let _ = write!(
                b,
                " #{} {client} <-> {server} framing {framing}: {reason}",
                at.session
            );
        }
        Event::Tcp { at, what } => {
            let (name, dir, rtt) = tcp_what(*what);
            push_time(b, at.ts);
            let _ = write!(b, " #{} {client} <-> {server} tcp {name}", at.session);
            if let Some(d) = dir {
                b.push(' ');
                b.push_str(d.arrow());
            }
            if let Some(r) = rtt {
                b.push_str(" (handshake RTT ");
                push_micros(b, r);
                b.push(')');
            }
        }
        Event::Diagnostic {
            ts,
            at,
            dir,
            code,
            message,
            ..
        } => {
            push_time(b, *ts);
            b.push(' ');
            match (at, dir) {
                (Some(a), Some(Dir::ToServer)) => {
                    let _ = write!(b, "#{} {client} -> {server} ", a.session);
                }
                (Some(a), Some(Dir::ToClient)) => {
                    let _ = write!(b, "#{} {client} <- {server} ", a.session);
                }
                (Some(a), None) => {
                    let _ = write!(b, "#{} ", a.session);
                }
                _ => {}
            }
            let _ = write!(b, "{code}: {message}");
        }
    }
}

/// `HH:MM:SS.micro` in UTC, like tcpdump's default.
pub fn push_time(out: &mut String, ts: Timestamp) {
    let secs = ts.sec.rem_euclid(86_400);
    let two = |out: &mut String, n: i64| {
        // n < 100: two digits without the formatting machinery.
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    two(out, secs / 3600);
    out.push(':');
    two(out, secs / 60 % 60);
    out.push(':');
    two(out, secs % 60);
    out.push('.');
    // Six digits (a valid microsecond count is below 1,000,000).
    let usec = u64::from(ts.usec);
    let mut scale = 100_000;
    while scale > usec.max(1) && scale > 1 {
        out.push('0');
        scale /= 10;
    }
    push_u64(out, usec);
}

/// `label` then `n`.
fn num(out: &mut String, label: &str, n: u64) {
    out.push_str(label);
    push_u64(out, n);
}

/// ` echo ok (57 µs)` and the like, appended.
fn push_echo_note(out: &mut String, e: Option<EchoMatch>) {
    match e {
        Some(EchoMatch::Ok { latency_us }) => {
            out.push_str(" echo ok (");
            push_micros(out, latency_us);
            out.push(')');
        }
        Some(EchoMatch::Mismatch) => out.push_str(" ECHO MISMATCH"),
        Some(EchoMatch::Unsolicited) => {
            out.push_str(" (no captured request to match: it may lie in a capture gap)")
        }
        None => {}
    }
}

/// Lines under the sessions table: what a session came through, and its
/// anomalies by code.
pub fn session_notes(s: &SessionSummary) -> Vec<String> {
    let mut out = Vec::new();
    if s.picked_up {
        out.push(format!(
            "#{} picked up mid-stream: the capture began after the connection did (no handshake)",
            s.id
        ));
    }
    if let Some(via) = &s.via {
        out.push(format!("#{} via {via}", s.id));
    }
    if !s.anomaly_counts.is_empty() {
        let list: Vec<String> = s
            .anomaly_counts
            .iter()
            .map(|(c, n)| {
                if *n == 1 {
                    c.to_string()
                } else {
                    format!("{c} ×{n}")
                }
            })
            .collect();
        out.push(format!("#{} anomalies: {}", s.id, list.join(", ")));
    }
    out
}

/// The two totals lines.
pub fn totals(t: &Totals) -> [String; 2] {
    let mut totals = format!(
        "{} packets, {} sessions, {} frames, {} text messages, {} datagrams, {} diagnostics",
        t.packets, t.sessions, t.frames, t.text_messages, t.datagrams, t.diagnostics
    );
    if let Some((r, d, i)) = t.kernel {
        let _ = write!(
            totals,
            "; kernel: {r} received, {d} dropped by the kernel, {i} dropped by the interface"
        );
    }
    let mut line = format!("packets: {} in sessions", t.in_sessions);
    for (cause, n) in t.causes() {
        if n > 0 {
            let _ = write!(line, ", {n} {}", cause_words(cause));
        }
    }
    if t.filtered > 0 {
        let _ = write!(line, "; {} more rejected by the filter", t.filtered);
    }
    if t.reassembled > 0 {
        let _ = write!(
            line,
            "; {} datagram(s) reassembled from IP fragments",
            t.reassembled
        );
    }
    [totals, line]
}

/// A cause of [`Totals::causes`] in words.
fn cause_words(cause: &str) -> &'static str {
    match cause {
        "not_ip" => "not IP (ARP, STP, 802.11 management, ...)",
        "encrypted" => "encrypted below TCP/UDP (802.11, MACsec, ESP)",
        "not_tcp_udp" => "IP but not TCP/UDP (ICMP, ...)",
        "unparsed" => "unparsed (see above)",
        "unsupported_link" => "of a link type rc1 does not read",
        "other_port" => "TCP/UDP on other ports (-f \"\" keeps them)",
        "fragments" => "IP fragments of reassembled datagrams",
        "fragments_dropped" => "IP fragments of datagrams not reassembled (see above)",
        "after_session" => "after their session ended (late ACK/FIN/RST)",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_before() {
        for (sec, usec) in [(0, 0), (86_399, 999_999), (3_661, 5), (-1, 10)] {
            let ts = Timestamp { sec, usec };
            let s = sec.rem_euclid(86_400);
            let want = format!("{:02}:{:02}:{:02}.{usec:06}", s / 3600, s / 60 % 60, s % 60);
            let mut got = String::new();
            push_time(&mut got, ts);
            assert_eq!(got, want);
        }
    }
}
