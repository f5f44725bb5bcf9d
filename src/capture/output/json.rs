//! JSON lines: one writer for every object rc1 capture prints (frames,
//! text, datagrams, detections, TCP events, diagnostics, sessions, totals).
//!
//! Objects are written straight into the line buffer, with no tree built
//! in between. Keys go out in sorted order, as serde_json writes its maps;
//! debug builds (the tests) check that each object's keys ascend.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::capture::event::{Dir, EchoMatch, Event, Fact, SessionSummary, Totals, Where};
use crate::capture::source::Timestamp;
use crate::codec::Framing;
use crate::codec::escape::{escape_into, u64_digits};

use super::tcp_what;

/// One JSON object being written into `out`.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    #[cfg(debug_assertions)]
    last: String,
}

impl<'a> Obj<'a> {
    /// Starts an object.
    pub fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj {
            out,
            first: true,
            #[cfg(debug_assertions)]
            last: String::new(),
        }
    }

    /// `"k":`, after a comma unless first; the value follows.
    #[inline]
    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        #[cfg(debug_assertions)]
        {
            assert!(
                self.first || k > self.last.as_str(),
                "JSON key {k:?} after {:?}: keys must ascend",
                self.last
            );
            self.last = k.to_string();
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string value.
    #[inline]
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let out = self.key(k);
        push_str(out, v);
        self
    }

    /// A string value that needs no escaping: a socket address as rc1
    /// formats it, or one of rc1's own words (`c>s`, `frame`). Written as
    /// it is, with no scan for escapes (two of these are on every line);
    /// debug builds, the tests, check that nothing needed one.
    #[inline]
    pub fn plain(&mut self, k: &str, v: &str) -> &mut Self {
        debug_assert!(is_plain_word(v), "{v:?} needs escaping: use Obj::str");
        let out = self.key(k);
        out.push(b'"');
        out.extend_from_slice(v.as_bytes());
        out.push(b'"');
        self
    }

    /// A string value or `null`.
    #[inline]
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.str(k, s),
            None => self.null(k),
        }
    }

    /// A socket address, as text.
    pub fn addr(&mut self, k: &str, v: &SocketAddr) -> &mut Self {
        use std::io::Write as _;
        let out = self.key(k);
        let _ = write!(out, "\"{v}\"");
        self
    }

    /// An unsigned number.
    #[inline]
    pub fn num(&mut self, k: &str, n: u64) -> &mut Self {
        let out = self.key(k);
        push_u64(out, n);
        self
    }

    /// An unsigned number or `null`.
    #[inline]
    pub fn opt_num(&mut self, k: &str, n: Option<u64>) -> &mut Self {
        match n {
            Some(n) => self.num(k, n),
            None => self.null(k),
        }
    }

    /// A signed number.
    pub fn int(&mut self, k: &str, n: i64) -> &mut Self {
        let out = self.key(k);
        if n < 0 {
            out.push(b'-');
        }
        push_u64(out, n.unsigned_abs());
        self
    }

    /// `true` or `false`.
    #[inline]
    pub fn bool(&mut self, k: &str, b: bool) -> &mut Self {
        self.key(k)
            .extend_from_slice(if b { b"true" } else { b"false" });
        self
    }

    /// `null`.
    #[inline]
    pub fn null(&mut self, k: &str) -> &mut Self {
        self.key(k).extend_from_slice(b"null");
        self
    }

    /// A capture time in seconds, as serde_json writes the same `f64`.
    #[inline]
    pub fn time(&mut self, k: &str, ts: Timestamp) -> &mut Self {
        let out = self.key(k);
        push_time(out, ts);
        self
    }

    /// `message` (the text; escaped as `\xNN` where the bytes are not
    /// UTF-8) then `message_hex` (the bytes themselves, always: a script
    /// never has to undo an escape).
    pub fn message(&mut self, data: &[u8]) -> &mut Self {
        let out = self.key("message");
        push_text(out, data);
        let out = self.key("message_hex");
        out.push(b'"');
        push_hex(out, data);
        out.push(b'"');
        self
    }

    /// A nested object under `k`; close it with [`Obj::end`].
    pub fn obj(&mut self, k: &str) -> Obj<'_> {
        let out = self.key(k);
        Obj::new(out)
    }

    /// Closes the object.
    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// Whether `v` is a JSON string's content as it is (no control
/// character, no `"`, no `\\`): what [`Obj::plain`] and [`frame_line`]
/// write without a scan, checked in debug builds.
fn is_plain_word(v: &str) -> bool {
    v.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\')
}

/// What a byte becomes in a JSON string: 0 as it is, else the letter after
/// the backslash (`u` for `\u00XX`). The same escapes as serde_json's.
const ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

/// Bytes looked at together for "nothing to escape here".
const CLEAN_RUN: usize = 32;

/// A JSON string literal of `s`, escaped exactly as serde_json escapes it.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// A JSON string literal of bytes that are text: as [`push_str`] where
/// they are UTF-8, else with `\xNN` for each byte that is not (as the text
/// lines show them). The message of every frame goes through here, so
/// plain ASCII, the common case, is checked for UTF-8 and for escapes and
/// copied in one pass, 32 bytes at a time.
pub fn push_text(out: &mut Vec<u8>, data: &[u8]) {
    let start = out.len();
    out.reserve(data.len().saturating_add(2));
    out.push(b'"');
    let mut plain = 0;
    for run in data.chunks_exact(CLEAN_RUN) {
        if !is_plain(run) {
            break;
        }
        out.extend_from_slice(run);
        plain += CLEAN_RUN;
    }
    let rest = data.get(plain..).unwrap_or_default();
    if rest.len() < CLEAN_RUN && is_plain(rest) {
        // A lab message usually ends here: neither the UTF-8 check nor
        // the escape scan.
        out.extend_from_slice(rest);
        out.push(b'"');
        return;
    }
    match std::str::from_utf8(rest) {
        Ok(rest) => {
            push_escaped(out, rest);
            out.push(b'"');
        }
        Err(_) => {
            out.truncate(start);
            let mut esc = String::with_capacity(data.len().saturating_mul(2));
            escape_into(&mut esc, data);
            push_str(out, &esc);
        }
    }
}

/// Whether every byte of `run` is ASCII that a JSON string holds as it is
/// (no control character, no `"`, no `\\`, nothing above 0x7f). `|` over
/// the whole run, no early exit: the compiler does a run at once.
#[inline]
fn is_plain(run: &[u8]) -> bool {
    run.iter().fold(0u8, |bad, &c| {
        bad | u8::from(c < 0x20) | u8::from(c >= 0x80) | u8::from(c == b'"') | u8::from(c == b'\\')
    }) == 0
}

/// `s` escaped as serde_json escapes a string's content (no quotes).
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut from = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Whole runs without anything to escape are skipped at once (the
        // common case: a lab message is printable text).
        if let Some(run) = bytes.get(at..at.saturating_add(CLEAN_RUN))
            && run.len() == CLEAN_RUN
            && run.iter().fold(0u8, |bad, &c| {
                bad | u8::from(c < 0x20) | u8::from(c == b'"') | u8::from(c == b'\\')
            }) == 0
        {
            at = at.saturating_add(CLEAN_RUN);
            continue;
        }
        let end = at.saturating_add(CLEAN_RUN).min(bytes.len());
        for i in at..end {
            let c = bytes.get(i).copied().unwrap_or(0);
            let e = ESCAPES.get(usize::from(c)).copied().unwrap_or(0);
            if e == 0 {
                continue;
            }
            // `c` is ASCII, so `i` is a character boundary.
            out.extend_from_slice(bytes.get(from..i).unwrap_or_default());
            out.push(b'\\');
            if e == b'u' {
                out.extend_from_slice(b"u00");
                push_hex(out, &[c]);
            } else {
                out.push(e);
            }
            from = i.saturating_add(1);
        }
        at = end;
    }
    out.extend_from_slice(bytes.get(from..).unwrap_or_default());
}

/// Lowercase hex of `data`, appended (a stack buffer at a time: this
/// runs over every byte of every message in `--json`).
pub fn push_hex(out: &mut Vec<u8>, data: &[u8]) {
    // faster-hex picks the CPU's vector instructions at run time (AVX2 or
    // SSE4.1 where there are; about 3 × a byte table): every JSON frame
    // line carries its message in hex, so this is the JSON writer's
    // largest single cost.
    let start = out.len();
    out.resize(start.saturating_add(data.len().saturating_mul(2)), 0);
    let done = out
        .get_mut(start..)
        .is_some_and(|dst| faster_hex::hex_encode(data, dst).is_ok());
    if !done {
        // Not reached (the room is exactly twice the input), but no panic.
        out.truncate(start);
        for &b in data {
            out.extend_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
    }
}

/// Each byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [DIGITS[i >> 4], DIGITS[i & 0x0F]];
        i += 1;
    }
    t
};

/// `n` in decimal.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(u64_digits(n, &mut buf));
}

/// `ts.as_secs_f64()` as [`push_f64`] writes it, without the float
/// formatter where the time's own digits are that text (every line has a
/// time; on v2 lines the formatter was a tenth of the JSON writer).
///
/// The shortest decimal that reads back as the float is what serde_json
/// writes. When the exact decimal `sec.usec` lies strictly within half a
/// unit in the last place of the float, it is that decimal (trailing
/// zeros off, `.0` when none are left): decimals of at most six places are
/// 10^-6 apart, wider than the float's whole rounding interval below 2^33
/// seconds, so no shorter one lies in it. The test is exact, in integers;
/// anything else (a tie, a power of two, a time before 1970 or past 2242,
/// a hostile `usec` of a million or more) goes to the formatter.
fn push_time(out: &mut Vec<u8>, ts: Timestamp) {
    if !exact_time_digits(ts) {
        push_f64(out, ts.as_secs_f64());
        return;
    }
    let mut buf = [0u8; 20];
    out.extend_from_slice(u64_digits(ts.sec.unsigned_abs(), &mut buf));
    out.push(b'.');
    let mut frac = [b'0'; 6];
    let mut u = ts.usec;
    for d in frac.iter_mut().rev() {
        *d = b'0' + (u % 10) as u8;
        u /= 10;
    }
    let keep = frac.iter().rposition(|&d| d != b'0').map_or(1, |i| i + 1);
    out.extend_from_slice(frac.get(..keep).unwrap_or(b"0"));
}

/// Whether `sec.usec` is the shortest decimal of `ts.as_secs_f64()` (see
/// [`push_time`]).
fn exact_time_digits(ts: Timestamp) -> bool {
    if !(1..1 << 33).contains(&ts.sec) || ts.usec >= 1_000_000 {
        return false;
    }
    let bits = ts.as_secs_f64().to_bits();
    let fraction = bits & ((1 << 52) - 1);
    // (1 <= the time < 2^34, so the exponent field is 1023..=1056.)
    let Some(shift) = 1075u64.checked_sub((bits >> 52) & 0x7ff) else {
        return false;
    };
    if fraction == 0 || shift > 52 {
        return false; // a power of two: its interval is lopsided
    }
    // float = m / 2^shift; decimal = n / 10^6. Within half a unit
    // (1 / 2^(shift + 1)): |n * 2^shift - m * 10^6| < 10^6 / 2.
    let m = u128::from(fraction | 1 << 52);
    let n = u128::from(ts.sec.unsigned_abs()) * 1_000_000 + u128::from(ts.usec);
    let (a, b) = (n << shift, m * 1_000_000);
    a.abs_diff(b) < 500_000
}

/// An `f64` as serde_json writes it (shortest round trip, `null` if not
/// finite).
fn push_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        let mut b = ryu::Buffer::new();
        out.extend_from_slice(b.format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// `fields` of a frame of a framing file: every field of the file by
/// name, keys ascending; an integer as a number, a byte field as an
/// object `{"hex": …, "text": …}` (its content without the pad bytes:
/// the bytes in hex, and as text the way `message` is, escaped as `\xNN`
/// where they are not UTF-8). Nothing when the bytes do not read (a frame
/// not from a wire).
fn fields(o: &mut Obj<'_>, def: &'static crate::framing::FramingDef, raw: &[u8]) {
    use crate::spec::Value;
    let Ok(values) = def.spec.read(raw, u64::MAX) else {
        return;
    };
    let mut sorted: Vec<_> = values.fields.iter().collect();
    sorted.sort_by_key(|(f, _)| f.name);
    let mut f = o.obj("fields");
    for (field, v) in sorted {
        match *v {
            Value::Uint(n) => {
                f.num(field.name, n);
            }
            Value::Int(n) => {
                f.int(field.name, n);
            }
            Value::Bytes { content, .. } => {
                let mut b = f.obj(field.name);
                let out = b.key("hex");
                out.push(b'"');
                push_hex(out, content);
                out.push(b'"');
                let out = b.key("text");
                push_text(out, content);
                b.end();
            }
        }
    }
    f.end();
}

/// The checksum field of a framing file's frame that does not verify, if
/// any (the capture shows such a frame; see
/// [`crate::codec::parse_lenient`]).
fn bad_checksum(def: &'static crate::framing::FramingDef, raw: &[u8]) -> Option<&'static str> {
    match crate::framing::codec::parse(def, raw, u64::MAX) {
        crate::framing::codec::Parse::Error(crate::framing::codec::DecodeError::Checksum {
            field,
            ..
        }) => Some(field),
        _ => None,
    }
}

fn echo(o: &mut Obj<'_>, e: Option<EchoMatch>) {
    o.opt_str(
        "echo",
        match e {
            Some(EchoMatch::Ok { .. }) => Some("ok"),
            Some(EchoMatch::Mismatch) => Some("mismatch"),
            Some(EchoMatch::Unsolicited) => Some("unsolicited"),
            None => None,
        },
    );
}

fn latency(o: &mut Obj<'_>, e: Option<EchoMatch>) {
    o.opt_num(
        "latency_us",
        match e {
            Some(EchoMatch::Ok { latency_us }) => Some(latency_us),
            _ => None,
        },
    );
}

/// The line of an event: a frame, text, datagram, detection, TCP event or
/// diagnostic. `client` and `server` are `at`'s addresses as text.
pub fn event(out: &mut Vec<u8>, ev: &Event<'_>, names: (&str, &str)) {
    if let Event::Frame {
        at,
        dir,
        offset,
        framing,
        frame,
        echo: e,
    } = ev
        && framing.def().is_none()
    {
        frame_line(out, at, *dir, *offset, *framing, frame, *e, names);
        return;
    }
    event_obj(out, ev, names);
}

/// Every event's line written through [`Obj`], key by key: what
/// [`event`] writes for all but a built-in framing's frame (and for that
/// one too, in the test that holds [`frame_line`] to it).
fn event_obj(out: &mut Vec<u8>, ev: &Event<'_>, names: (&str, &str)) {
    let (client, server) = names;
    let mut o = Obj::new(out);
    match ev {
        Event::Frame {
            at,
            dir,
            offset,
            framing,
            frame,
            echo: e,
        } => {
            // A framing file's frame: the checksum field that fails (null
            // when none does), its fields, and no version / order where the
            // file has no field called version / no echo key. (Keys in
            // ascending order.)
            if let Some(def) = framing.def() {
                o.opt_str("bad_checksum", bad_checksum(def, frame.raw));
            }
            o.plain("client", client)
                .bool("cut", *framing == Framing::V2 && frame.is_cut())
                .plain("dir", dir.arrow());
            echo(&mut o, *e);
            let (has_version, has_order) = match framing.def() {
                Some(def) => {
                    fields(&mut o, def, frame.raw);
                    (
                        def.spec.fields.iter().any(|f| f.name == "version"),
                        def.echo_key.is_some(),
                    )
                }
                None => (true, true),
            };
            o.str("framing", framing.name());
            latency(&mut o, *e);
            o.message(frame.message)
                .num("offset", *offset)
                .opt_num("order", has_order.then_some(frame.order.into()))
                .plain("server", server)
                .num("session", at.session)
                .num("size", frame.size.into())
                .time("time", at.ts)
                .plain("type", "frame")
                .opt_num("version", has_version.then_some(frame.version.into()));
        }
        Event::Text {
            at,
            dir,
            offset,
            data,
            echo: e,
        } => {
            o.plain("client", client).plain("dir", dir.arrow());
            echo(&mut o, *e);
            latency(&mut o, *e);
            o.num("len", data.len() as u64)
                .message(data)
                .num("offset", *offset)
                .plain("server", server)
                .num("session", at.session)
                .time("time", at.ts)
                .plain("type", "text");
        }
        Event::Udp {
            at,
            dir,
            data,
            truncated,
        } => {
            o.plain("client", client)
                .plain("dir", dir.arrow())
                .num("len", data.len() as u64)
                .message(data)
                .plain("server", server)
                .num("session", at.session)
                .time("time", at.ts)
                .bool("truncated", *truncated)
                .plain("type", "udp");
        }
        Event::Detected {
            at,
            framing,
            reason,
        } => {
            o.plain("client", client)
                .str("framing", framing)
                .str("reason", reason)
                .plain("server", server)
                .num("session", at.session)
                .time("time", at.ts)
                .plain("type", "detected");
        }
        Event::Tcp { at, what } => {
            let (name, dir, rtt) = tcp_what(*what);
            o.plain("client", client)
                .opt_str("dir", dir.map(Dir::arrow))
                .opt_num("rtt_us", rtt)
                .plain("server", server)
                .num("session", at.session)
                .time("time", at.ts)
                .plain("type", "tcp")
                .str("what", name);
        }
        Event::Diagnostic {
            ts,
            at,
            dir,
            code,
            message,
            facts,
        } => diagnostic(&mut o, *ts, at.as_ref(), *dir, code, message, facts),
    }
    o.end();
}

/// The line of a v2 or v3 frame, written in one go: the keys and the
/// words between the values as constant runs, no per-key bookkeeping.
/// The same bytes as [`event_obj`] writes for it (a test holds the two
/// together over random frames); it is here because a line per frame is
/// the JSON writer's commonest object, and writing it key by key cost
/// about 8 % of `rc1 capture -r F --json` on a v3 capture.
#[allow(clippy::too_many_arguments)]
fn frame_line(
    out: &mut Vec<u8>,
    at: &Where,
    dir: Dir,
    offset: u64,
    framing: Framing,
    frame: &crate::codec::FrameRef<'_>,
    e: Option<EchoMatch>,
    names: (&str, &str),
) {
    let (client, server) = names;
    debug_assert!(
        is_plain_word(client) && is_plain_word(server),
        "{names:?} need escaping"
    );
    out.reserve(
        200usize
            .saturating_add(client.len())
            .saturating_add(server.len())
            .saturating_add(frame.message.len().saturating_mul(3)),
    );
    out.extend_from_slice(b"{\"client\":\"");
    out.extend_from_slice(client.as_bytes());
    out.extend_from_slice(if framing == Framing::V2 && frame.is_cut() {
        b"\",\"cut\":true,\"dir\":\""
    } else {
        b"\",\"cut\":false,\"dir\":\""
    });
    out.extend_from_slice(dir.arrow().as_bytes());
    out.extend_from_slice(b"\",\"echo\":");
    out.extend_from_slice(match e {
        Some(EchoMatch::Ok { .. }) => b"\"ok\"".as_slice(),
        Some(EchoMatch::Mismatch) => b"\"mismatch\"",
        Some(EchoMatch::Unsolicited) => b"\"unsolicited\"",
        None => b"null",
    });
    out.extend_from_slice(b",\"framing\":\"");
    out.extend_from_slice(framing.name().as_bytes());
    out.extend_from_slice(b"\",\"latency_us\":");
    match e {
        Some(EchoMatch::Ok { latency_us }) => push_u64(out, latency_us),
        _ => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"message\":");
    push_text(out, frame.message);
    out.extend_from_slice(b",\"message_hex\":\"");
    push_hex(out, frame.message);
    out.extend_from_slice(b"\",\"offset\":");
    push_u64(out, offset);
    out.extend_from_slice(b",\"order\":");
    push_u64(out, frame.order.into());
    out.extend_from_slice(b",\"server\":\"");
    out.extend_from_slice(server.as_bytes());
    out.extend_from_slice(b"\",\"session\":");
    push_u64(out, at.session);
    out.extend_from_slice(b",\"size\":");
    push_u64(out, frame.size.into());
    out.extend_from_slice(b",\"time\":");
    push_time(out, at.ts);
    out.extend_from_slice(b",\"type\":\"frame\",\"version\":");
    push_u64(out, frame.version.into());
    out.push(b'}');
}

/// A value of a diagnostic's object.
enum Val<'a> {
    Num(u64),
    OptNum(Option<u64>),
    Str(&'a str),
    OptStr(Option<&'a str>),
    Time(Timestamp),
}

fn diagnostic(
    o: &mut Obj<'_>,
    ts: Timestamp,
    at: Option<&Where>,
    dir: Option<Dir>,
    code: &str,
    message: &str,
    facts: &[(&'static str, Fact)],
) {
    // The facts' keys are the diagnostic's own: sorted in with the fixed
    // ones (a fact of the same name as a fixed key replaces it).
    let mut all: Vec<(&str, Val<'_>)> = vec![
        ("code", Val::Str(code)),
        ("dir", Val::OptStr(dir.map(Dir::arrow))),
        ("message", Val::Str(message)),
        ("session", Val::OptNum(at.map(|a| a.session))),
        ("time", Val::Time(ts)),
        ("type", Val::Str("diagnostic")),
    ];
    for (k, v) in facts {
        let v = match v {
            Fact::Num(n) => Val::Num(*n),
            Fact::Text(t) => Val::Str(t),
        };
        all.retain(|(have, _)| have != k);
        all.push((k, v));
    }
    all.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in all {
        match v {
            Val::Num(n) => o.num(k, n),
            Val::OptNum(n) => o.opt_num(k, n),
            Val::Str(s) => o.str(k, s),
            Val::OptStr(s) => o.opt_str(k, s),
            Val::Time(t) => o.time(k, t),
        };
    }
}

/// The object of a session summary.
pub fn session(out: &mut Vec<u8>, s: &SessionSummary) {
    let mut o = Obj::new(out);
    o.num("anomalies", s.anomalies);
    {
        let mut counts = o.obj("anomaly_counts");
        let sorted: BTreeMap<&str, u64> = s.anomaly_counts.iter().copied().collect();
        for (code, n) in sorted {
            counts.num(code, n);
        }
        counts.end();
    }
    o.addr("client", &s.client)
        .num("client_port", s.client.port().into())
        .opt_num("echo_latency_max_us", s.echo_latency_max_us)
        .opt_num("echo_latency_p50_us", s.echo_latency_p50_us)
        .num("echo_mismatches", s.echo_mismatches)
        .num("echoes_missing", s.echoes_missing)
        .num("echoes_ok", s.echoes_ok)
        .time("first", s.first)
        .str("framing", s.framing)
        .opt_num("handshake_rtt_us", s.handshake_rtt_us)
        .time("last", s.last)
        .bool("picked_up", s.picked_up)
        .addr("server", &s.server)
        .num("server_port", s.server.port().into())
        .num("session", s.id)
        .str("state", s.state);
    for (k, i) in [("to_client", 1), ("to_server", 0)] {
        let Some(d) = s.dirs.get(i) else { continue };
        let r = &d.reassembly;
        let mut h = o.obj(k);
        h.num("bytes", d.bytes)
            .opt_num("frames_in_gaps", d.frames_in_gaps)
            .num("gaps", r.gaps)
            .num("messages", d.messages)
            .num("missed_bytes", r.missed_bytes)
            .num("out_of_order_segments", r.out_of_order_segments)
            .num("overlap_conflicts", r.overlap_conflicts)
            .num("packets", d.packets)
            .num("retransmitted_bytes", r.retransmitted_bytes)
            .num("retransmitted_segments", r.retransmitted_segments);
        h.end();
    }
    o.str("transport", s.transport)
        .str("type", "session")
        .opt_str("via", s.via.as_deref());
    o.end();
}

/// The totals object (the last line).
pub fn totals(out: &mut Vec<u8>, t: &Totals) {
    let mut o = Obj::new(out);
    o.num("datagrams", t.datagrams)
        .num("diagnostics", t.diagnostics)
        .num("filtered", t.filtered)
        .num("frames", t.frames)
        .num("in_sessions", t.in_sessions)
        .opt_num("interface_dropped", t.kernel.map(|k| k.2.into()))
        .opt_num("kernel_dropped", t.kernel.map(|k| k.1.into()))
        .opt_num("kernel_received", t.kernel.map(|k| k.0.into()));
    {
        let mut causes = o.obj("not_in_sessions");
        let mut sorted = t.causes();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (k, n) in sorted {
            causes.num(k, n);
        }
        causes.end();
    }
    o.num("packets", t.packets)
        .num("reassembled", t.reassembled)
        .num("sessions", t.sessions)
        .num("text_messages", t.text_messages)
        .str("type", "totals");
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A time as [`push_time`] writes it, and as the float formatter does.
    fn both_times(sec: i64, usec: u32) -> (String, String) {
        let ts = Timestamp { sec, usec };
        let (mut fast, mut ryu) = (Vec::new(), Vec::new());
        push_time(&mut fast, ts);
        push_f64(&mut ryu, ts.as_secs_f64());
        (
            String::from_utf8(fast).unwrap(),
            String::from_utf8(ryu).unwrap(),
        )
    }

    #[test]
    fn times_are_written_as_the_float_formatter_writes_them() {
        let mut fast_path = 0;
        let mut edges = vec![
            (0, 0),
            (0, 1),
            (0, 999_999),
            (1, 0),
            (1, 500_000),
            (2, 0),
            (-1, 5),
            (1 << 30, 0),
            ((1 << 30) - 1, 999_999),
            (1 << 32, 1),
            ((1 << 33) - 1, 999_999),
            (1 << 33, 7),
            (1_796_319_026, 332_101),
            (1_700_000_000, 100_000),
            (1_700_000_000, 1_000_000),
            (1_700_000_000, u32::MAX),
            (i64::MAX, 0),
            (i64::MIN, 0),
        ];
        // Every microsecond of a second where the float's step is
        // coarsest (just below 2^33), of one in 2026, and of seconds so
        // small that `sec + usec / 1e6` is often not the float nearest
        // the decimal (two roundings): there the shortcut must not be
        // taken.
        for base in [(1i64 << 33) - 2, 1_796_319_026, 3, 1000] {
            for us in 0..1_000_000u32 {
                edges.push((base, us));
            }
        }
        for (sec, usec) in edges {
            let (fast, ryu) = both_times(sec, usec);
            assert_eq!(fast, ryu, "sec {sec} usec {usec}");
            fast_path += usize::from(exact_time_digits(Timestamp { sec, usec }));
        }
        // The shortcut is taken (else this tests only the formatter).
        assert!(fast_path > 3_500_000, "{fast_path}");
    }

    proptest! {
        #[test]
        fn any_time_is_written_as_the_float_formatter_writes_it(
            sec in prop_oneof![0i64..1 << 34, any::<i64>()],
            usec in prop_oneof![0u32..1_000_000, any::<u32>()],
        ) {
            let (fast, ryu) = both_times(sec, usec);
            prop_assert_eq!(fast, ryu);
        }
    }

    fn quoted(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let long = "x".repeat(70) + "\"" + &"y".repeat(40) + "\n";
        for s in [
            "",
            "plain",
            "q\"b\\s",
            "\n\r\t\x08\x0c\x00\x1f\x7f",
            "olá ✓ \u{1F600}",
            &long,
        ] {
            assert_eq!(quoted(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_are_decimal() {
        for n in [0, 7, 10, 99, 12_345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn hex_is_lowercase_pairs_of_every_byte() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut out = Vec::new();
        push_hex(&mut out, &data);
        let want: String = data.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "keys must ascend")]
    fn keys_out_of_order_are_caught() {
        let mut out = Vec::new();
        let mut o = Obj::new(&mut out);
        o.num("b", 1).num("a", 2);
    }

    /// Builds a v2 or v3 frame event from its parts and writes it both
    /// ways: the one-go frame line and key by key through [`Obj`].
    #[allow(clippy::too_many_arguments)]
    fn frame_both_ways(
        v3: bool,
        nums: (u8, u32, u32, u64, u64),
        ts: (i64, u32),
        dir_to_client: bool,
        echo_kind: u8,
        latency_us: u64,
        message: &[u8],
        names: (&str, &str),
    ) -> (String, String) {
        let (version, order, size, offset, session) = nums;
        let addr: SocketAddr = "127.0.0.1:5005".parse().unwrap();
        let ev = Event::Frame {
            at: Where {
                ts: Timestamp {
                    sec: ts.0,
                    usec: ts.1,
                },
                session,
                client: addr,
                server: addr,
            },
            dir: if dir_to_client {
                Dir::ToClient
            } else {
                Dir::ToServer
            },
            offset,
            framing: if v3 { Framing::V3 } else { Framing::V2 },
            frame: crate::codec::FrameRef {
                version,
                order,
                size,
                message,
                padding: b"",
                raw: message,
            },
            echo: match echo_kind {
                0 => None,
                1 => Some(EchoMatch::Ok { latency_us }),
                2 => Some(EchoMatch::Mismatch),
                _ => Some(EchoMatch::Unsolicited),
            },
        };
        // After what the buffer holds already, as in the printer.
        let (mut fast, mut slow) = (b"x\n".to_vec(), b"x\n".to_vec());
        event(&mut fast, &ev, names);
        event_obj(&mut slow, &ev, names);
        (
            String::from_utf8(fast).unwrap(),
            String::from_utf8(slow).unwrap(),
        )
    }

    #[test]
    fn a_frame_line_is_what_its_keys_write() {
        let (fast, slow) = frame_both_ways(
            false,
            (1, 7, 30, 29, 3),
            (1_700_000_000, 250_000),
            true,
            1,
            412,
            b"hello",
            ("10.0.0.1:40000", "[::1]:5005"),
        );
        assert_eq!(fast, slow);
        // (And it is the line a script reads.)
        let v: serde_json::Value = serde_json::from_str(fast.trim_start_matches("x\n")).unwrap();
        assert_eq!(v["cut"], true, "size 30 > 5 bytes of a v2 message: cut");
        assert_eq!(v["latency_us"], 412);
        assert_eq!(v["message_hex"], "68656c6c6f");
        assert_eq!(v["client"], "10.0.0.1:40000");
    }

    proptest! {
        #[test]
        fn strings_match_serde_json(s in any::<String>()) {
            prop_assert_eq!(quoted(&s), serde_json::to_string(&s).unwrap());
        }

        /// Every part of a v2/v3 frame's line, at random: the one-go
        /// writer and the key-by-key one give the same bytes (debug
        /// builds check the key-by-key one's keys ascend).
        #[test]
        fn frame_lines_match_the_key_by_key_writer(
            v3 in any::<bool>(),
            // (a size near the message's length as often as any size: v2
            // frames cut and not cut)
            nums in (any::<u8>(), any::<u32>(), prop_oneof![0u32..=250, any::<u32>()], any::<u64>(), any::<u64>()),
            ts in (any::<i64>(), any::<u32>()),
            usual_ts in (1_600_000_000i64..1_900_000_000, 0u32..1_000_000),
            usual in any::<bool>(),
            dir_to_client in any::<bool>(),
            echo_kind in 0u8..4,
            latency_us in any::<u64>(),
            message in proptest::collection::vec(any::<u8>(), 0..200),
            text in "[ -~]{0,70}",
            plain_text in any::<bool>(),
            client in "[0-9.:\\[\\]a-f]{0,46}",
            server in "[0-9.:\\[\\]a-f]{0,46}",
        ) {
            let message = if plain_text { text.into_bytes() } else { message };
            let ts = if usual { usual_ts } else { ts };
            let (fast, slow) = frame_both_ways(
                v3, nums, ts, dir_to_client, echo_kind, latency_us, &message, (&client, &server),
            );
            prop_assert_eq!(fast, slow);
        }

        /// A message's bytes: as serde_json writes the text where they are
        /// UTF-8, else the `\xNN` rendering; long plain runs, escapes,
        /// characters beyond ASCII and bytes that are not UTF-8 at any
        /// place (the one-pass check of plain ASCII runs).
        #[test]
        fn messages_match_serde_json(
            head in "[a-z ]{0,100}",
            tail in proptest::collection::vec(any::<u8>(), 0..80),
            text in any::<String>(),
            mode in 0u8..4,
        ) {
            let mut data = head.into_bytes();
            match mode {
                0 => data.extend(tail.iter().map(|b| b'a' + b % 26)),
                1 => data.extend(&tail),
                // High bytes among letters: no escape, mostly not UTF-8.
                2 => data.extend(tail.iter().map(|&b| if b % 2 == 1 { b | 0x80 } else { b'a' + b % 26 })),
                _ => data.extend(text.as_bytes()),
            }
            let want = match std::str::from_utf8(&data) {
                Ok(s) => serde_json::to_string(s).unwrap(),
                Err(_) => {
                    let mut esc = String::new();
                    escape_into(&mut esc, &data);
                    serde_json::to_string(&esc).unwrap()
                }
            };
            // After what the line holds already (the text not UTF-8 is
            // written again from the message's start: the line's start stays).
            let mut out = b"{\"k\":".to_vec();
            push_text(&mut out, &data);
            prop_assert_eq!(String::from_utf8(out).unwrap(), format!("{{\"k\":{want}"));
            let mut hex = Vec::new();
            push_hex(&mut hex, &data);
            let want_hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(String::from_utf8(hex).unwrap(), want_hex);
        }

        #[test]
        fn times_match_serde_json(sec in 0i64..4_000_000_000, usec in 0u32..1_000_000) {
            let ts = Timestamp { sec, usec };
            let mut out = Vec::new();
            push_f64(&mut out, ts.as_secs_f64());
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::Value::from(ts.as_secs_f64()).to_string());
        }
    }
}
