//! `rc1 flood`: a load generator for the lab's servers that measures what
//! it does, like iperf3 and wrk2 do for their protocols.
//!
//! * Connections are opened concurrently (connect time and failures are
//!   reported), then split over worker threads, each running a `mio` poll
//!   loop over its share: requests are batched into large writes and
//!   echoes read in large reads through the streaming decoder.
//! * `--max` keeps up to `--pipeline` requests in flight per connection;
//!   `--rate` sends on a fixed schedule and measures latency from the
//!   *intended* send time, so a slow server cannot hide its delay by
//!   slowing the sender (no coordinated omission).
//! * Every echo is checked against its request (`order` and bytes); echoes
//!   that differ, requests never answered (after a short drain) and
//!   connection errors are counted apart, and any of them makes the exit
//!   status non-zero.

pub mod link;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::codec::Frame;
use crate::stop::Stop;
pub use link::{Counts, Proto};
use link::{Link, Outcome, UDP_SEQ};

/// How much to send.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// For this long.
    Duration(Duration),
    /// This many requests in all.
    Count(u64),
}

/// What `rc1 flood` was asked to do.
#[derive(Debug, Clone)]
pub struct FloodOptions {
    /// Protocol.
    pub proto: Proto,
    /// Server address.
    pub addr: SocketAddr,
    /// Connections (UDP: sockets).
    pub connections: usize,
    /// Requests per second over all connections; `None` is `--max`.
    pub rate: Option<f64>,
    /// When to stop sending.
    pub limit: Limit,
    /// Message sizes, inclusive.
    pub size: (usize, usize),
    /// Requests in flight per connection at `--max`.
    pub pipeline: usize,
    /// Check each echo's bytes.
    pub verify: bool,
    /// Seed of the random messages.
    pub seed: u64,
    /// Interval reports.
    pub interval: Option<Duration>,
    /// How long to wait for the last echoes, and after which an unanswered
    /// request counts as missing.
    pub drain: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Keep the connections open this long after the last echo, then
    /// close them (zero: half-close as soon as everything is sent).
    pub hold: Duration,
    /// Show a progress bar (a terminal on stderr).
    pub progress: bool,
}

/// Templates in each connection's pool of random requests.
const POOL: usize = 256;

/// The latency histogram: 1 µs to 1 hour, 3 significant figures.
fn histogram() -> Histogram<u64> {
    #[expect(clippy::expect_used, reason = "constant, valid bounds: cannot fail")]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// A random printable message of `len` bytes (the lab's users type text).
fn message(rng: &mut StdRng, len: usize) -> Vec<u8> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())])
        .collect()
}

/// Memory all request templates may take together.
const POOL_BYTES: usize = 64 << 20;

/// The request templates, shared by every connection: up to [`POOL`]
/// random messages, fewer when they are large (at most [`POOL_BYTES`]).
fn pool(o: &FloodOptions) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(o.seed);
    let count = (POOL_BYTES / o.size.1.max(1)).clamp(1, POOL);
    (0..count)
        .map(|_| {
            let len = if o.size.0 >= o.size.1 {
                o.size.0
            } else {
                rng.random_range(o.size.0..=o.size.1)
            };
            match o.proto {
                Proto::V2 => {
                    // Only the first 20 bytes travel; `size` says how many
                    // were typed.
                    let m = message(&mut rng, len.min(crate::spec::V2_MESSAGE_WIDTH));
                    let mut f = Frame::v2(1, 0, &m)
                        .map(|f| f.to_bytes(crate::codec::Framing::V2))
                        .unwrap_or_default();
                    if let Some(size) = f.get_mut(5..9) {
                        size.copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
                    }
                    f
                }
                Proto::V3 => {
                    let m = message(&mut rng, len);
                    Frame::v3(1, 0, &m)
                        .map(|f| f.to_bytes(crate::codec::Framing::V3))
                        .unwrap_or_default()
                }
                // The body: each request's frame is built as it is sent.
                Proto::Text | Proto::Custom(_) => message(&mut rng, len),
                Proto::Udp => {
                    let mut d = vec![0; UDP_SEQ];
                    d.extend_from_slice(&message(&mut rng, len));
                    d
                }
            }
        })
        .collect()
}

/// What a worker reports at the end of each interval and at the end.
struct Report {
    interval: u64,
    counts: Counts,
    latency: Histogram<u64>,
    last: bool,
    /// Per connection (final report only): id, counts, error.
    links: Vec<LinkEnd>,
}

/// A connection at the end: id, counters, and its failure (kind, message).
type LinkEnd = (usize, Counts, Option<(&'static str, String)>);

/// A connection attempt: its number, and the link with its connect time.
type Attempt = (usize, std::io::Result<(Link, u64)>);

/// Counters the progress bar reads while workers run.
#[derive(Default)]
struct Live {
    sent: AtomicU64,
    echoed: AtomicU64,
}

/// Result of a run.
#[derive(Debug)]
pub struct Summary {
    /// Totals.
    pub counts: Counts,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Exit: `true` when nothing was lost, differed or failed.
    pub clean: bool,
    /// The JSON object printed last.
    pub json: Value,
}

struct Connected {
    links: Vec<Link>,
    connect_us: Vec<u64>,
    failures: BTreeMap<String, (u64, String)>,
}

fn connect_all(o: &FloodOptions) -> Connected {
    let shared = Arc::new(pool(o));
    let results: Vec<Attempt> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.connections)
            .map(|i| {
                let p = shared.clone();
                s.spawn(move || {
                    let t0 = Instant::now();
                    let r = match o.proto {
                        Proto::Udp => {
                            let local: SocketAddr = if o.addr.is_ipv6() {
                                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                            } else {
                                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                            };
                            UdpSocket::bind(local)
                                .inspect(|u| {
                                    // Room for echoes arriving in bursts:
                                    // drops in our own queue would count as
                                    // loss (the kernel caps this at
                                    // net.core.rmem_max).
                                    let s = socket2::SockRef::from(u);
                                    let _ = s.set_recv_buffer_size(8 << 20);
                                })
                                .and_then(|u| u.connect(o.addr).map(|()| u))
                                .and_then(|u| Link::udp(i, u, o.verify, p))
                        }
                        _ => TcpStream::connect_timeout(&o.addr, o.connect_timeout)
                            .and_then(|t| Link::tcp(i, t, o.proto, o.verify, p)),
                    };
                    let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                    (i, r.map(|l| (l, us)))
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut c = Connected {
        links: Vec::new(),
        connect_us: Vec::new(),
        failures: BTreeMap::new(),
    };
    for (_, r) in results {
        match r {
            Ok((l, us)) => {
                c.links.push(l);
                c.connect_us.push(us);
            }
            Err(e) => {
                let kind = format!("{:?}", e.kind());
                let entry = c.failures.entry(kind).or_insert((0, e.to_string()));
                entry.0 = entry.0.saturating_add(1);
            }
        }
    }
    c
}

/// Per-connection send plan.
struct Plan {
    /// Requests this connection may send (`u64::MAX`: until the deadline).
    quota: u64,
    /// Seconds between requests (`--rate`), or none (`--max`).
    gap: Option<f64>,
    /// Where in the gap this connection's schedule starts (0..1), so the
    /// connections take turns instead of sending together.
    phase: f64,
}

/// What every worker shares.
struct Shared {
    o: FloodOptions,
    start: Instant,
    stop: Stop,
    live: Arc<Live>,
    tx: mpsc::Sender<Report>,
}

/// One worker's connections; returns them (still open) when done.
fn worker(index: usize, mut links: Vec<Link>, plans: Vec<Plan>, sh: Shared) -> Vec<Link> {
    let Shared {
        o,
        start,
        stop,
        live,
        tx,
    } = sh;
    let Ok(mut poll) = Poll::new() else {
        for l in &mut links {
            l.failed = Some(("io.poll", "cannot create a poll instance".into()));
        }
        let _ = tx.send(final_report(index, u64::MAX, &links, histogram()));
        return links;
    };
    for (i, l) in links.iter_mut().enumerate() {
        if let Err(e) = poll.registry().register(
            l.source(),
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            l.failed = Some(("io.poll", e.to_string()));
        }
    }
    let mut events = Events::with_capacity(1024);
    let deadline = match o.limit {
        Limit::Duration(d) => Some(start + d),
        Limit::Count(_) => None,
    };
    let mut sent_by: Vec<u64> = vec![0; links.len()];
    let mut latency = histogram();
    let mut interval_latency = histogram();
    let mut interval_start = Counts::default();
    let mut interval_no = 0u64;
    let mut drain_until: Option<Instant> = None;
    let mut live_sent = 0u64;
    let mut live_echoed = 0u64;
    loop {
        let now = Instant::now();
        let sending = !stop.is_stopped() && deadline.is_none_or(|d| now < d);
        // Queue and write.
        let mut all_done = true;
        for (i, l) in links.iter_mut().enumerate() {
            let plan = &plans[i];
            let quota_left = sent_by[i] < plan.quota;
            if sending && quota_left && l.failed.is_none() && !l.eof {
                all_done = false;
                match plan.gap {
                    None => {
                        while l.in_flight() < o.pipeline && l.can_queue() && sent_by[i] < plan.quota
                        {
                            l.queue(now, now);
                            sent_by[i] += 1;
                        }
                    }
                    Some(gap) => {
                        // Due times on a fixed grid from the start.
                        loop {
                            let due = start
                                + Duration::from_secs_f64(gap * (sent_by[i] as f64 + plan.phase));
                            if due > now || sent_by[i] >= plan.quota || !l.can_queue() {
                                break;
                            }
                            // A window so large only a stalled server fills it.
                            if l.in_flight() >= 1 << 20 {
                                break;
                            }
                            l.queue(due, now);
                            sent_by[i] += 1;
                        }
                    }
                }
            }
            if l.has_output() {
                l.flush();
            }
        }
        if all_done && drain_until.is_none() {
            // Everything sent: wait for the last echoes, at most `drain`.
            drain_until = Some(now + o.drain);
        }
        if drain_until.is_some() && o.hold.is_zero() {
            // Tell the server nothing more comes, once all is written.
            for l in &mut links {
                if !l.has_output() {
                    l.shutdown_write();
                }
            }
        }
        // Sleep until the next request is due (--rate), or a moment.
        let mut timeout = Duration::from_millis(5);
        if drain_until.is_none() {
            for (i, p) in plans.iter().enumerate() {
                if let Some(gap) = p.gap
                    && sent_by[i] < p.quota
                {
                    let due = start + Duration::from_secs_f64(gap * (sent_by[i] as f64 + p.phase));
                    timeout = timeout.min(due.saturating_duration_since(Instant::now()));
                }
            }
        }
        // epoll waits in whole milliseconds. With nothing in flight there
        // is no echo to wake for: sleep exactly until the next request is
        // due. A request due within a millisecond is served by polling
        // without waiting and yielding the core (to the server, when it
        // has work).
        let idle = links.iter().all(|l| l.in_flight() == 0 && !l.has_output());
        let paced = drain_until.is_none() && plans.iter().any(|p| p.gap.is_some());
        if idle && paced && timeout > Duration::from_micros(20) {
            events.clear();
            std::thread::sleep(timeout);
        } else if timeout < Duration::from_millis(1) {
            let _ = poll.poll(&mut events, Some(Duration::ZERO));
            if events.is_empty() && !timeout.is_zero() {
                std::thread::yield_now();
            }
        } else {
            // EINTR and the like: the loop comes back here.
            let _ = poll.poll(&mut events, Some(timeout));
        }
        let now = Instant::now();
        for ev in events.iter() {
            let Some(l) = links.get_mut(ev.token().0) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                l.read(now, &mut |outcome| match outcome {
                    Outcome::Echo(d) => {
                        record(&mut latency, d);
                        record(&mut interval_latency, d);
                    }
                });
            }
            if ev.is_writable() && l.has_output() {
                l.flush();
            }
        }
        // Requests unanswered for longer than the drain time are lost.
        if let Some(cutoff) = now.checked_sub(o.drain) {
            for l in &mut links {
                l.expire(cutoff, false);
            }
        }
        let mut totals = Counts::default();
        for l in &links {
            totals.add(&l.counts);
        }
        live.sent
            .fetch_add(totals.sent.saturating_sub(live_sent), Ordering::Relaxed);
        live.echoed
            .fetch_add(totals.echoed.saturating_sub(live_echoed), Ordering::Relaxed);
        live_sent = totals.sent;
        live_echoed = totals.echoed;
        if let Some(every) = o.interval {
            let due =
                start + every.saturating_mul(u32::try_from(interval_no + 1).unwrap_or(u32::MAX));
            if now >= due {
                let mut c = totals;
                c = minus(&c, &interval_start);
                let _ = tx.send(Report {
                    interval: interval_no,
                    counts: c,
                    latency: std::mem::replace(&mut interval_latency, histogram()),
                    last: false,
                    links: Vec::new(),
                });
                interval_start = totals;
                interval_no += 1;
            }
        }
        let waiting: usize = links
            .iter()
            .filter(|l| l.failed.is_none() && !l.eof)
            .map(Link::in_flight)
            .sum();
        let pending_out = links.iter().any(|l| l.failed.is_none() && l.has_output());
        let drained = drain_until.is_some_and(|d| now >= d);
        if drain_until.is_some() && ((waiting == 0 && !pending_out) || drained) {
            break;
        }
        if stop.is_stopped() && drain_until.is_none() {
            drain_until = Some(now + o.drain.min(Duration::from_millis(500)));
        }
    }
    // Whatever is still unanswered is missing.
    for l in &mut links {
        l.expire(Instant::now(), true);
    }
    let _ = tx.send(final_report(index, interval_no, &links, latency));
    links
}

fn minus(a: &Counts, b: &Counts) -> Counts {
    Counts {
        sent: a.sent.saturating_sub(b.sent),
        echoed: a.echoed.saturating_sub(b.echoed),
        verified: a.verified.saturating_sub(b.verified),
        mismatched: a.mismatched.saturating_sub(b.mismatched),
        missing: a.missing.saturating_sub(b.missing),
        late: a.late.saturating_sub(b.late),
        unexpected: a.unexpected.saturating_sub(b.unexpected),
        bytes_out: a.bytes_out.saturating_sub(b.bytes_out),
        bytes_in: a.bytes_in.saturating_sub(b.bytes_in),
    }
}

fn final_report(worker: usize, interval: u64, links: &[Link], latency: Histogram<u64>) -> Report {
    let mut counts = Counts::default();
    for l in links {
        counts.add(&l.counts);
    }
    let _ = worker;
    Report {
        interval,
        counts,
        latency,
        last: true,
        links: links
            .iter()
            .map(|l| (l.id, l.counts, l.failed.clone()))
            .collect(),
    }
}

fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"p50": null, "p90": null, "p99": null, "p99_9": null, "max": null});
    }
    json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

fn us_text(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".to_string(), crate::units::micros)
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Runs a flood; prints interval reports and the final report to stdout
/// (text, or JSON lines with `json`).
pub fn run(o: &FloodOptions, json_out: bool, stop: &Stop) -> Result<Summary> {
    if o.pipeline == 0 {
        bail!("--pipeline must be at least 1");
    }
    let connected = connect_all(o);
    if connected.links.is_empty() {
        let why = connected
            .failures
            .values()
            .next()
            .map_or_else(String::new, |(_, m)| m.clone());
        let hint = match o.proto {
            Proto::Udp => String::new(),
            Proto::Custom(def) => format!(
                " (is a server running? rc1 server --framing {} --port {})",
                def.origin,
                o.addr.port()
            ),
            p => format!(
                " (is a server running? rc1 server --proto {} --port {})",
                if p == Proto::Text { "text" } else { p.name() },
                o.addr.port()
            ),
        };
        bail!("cannot connect to {}: {why}{hint}", o.addr);
    }
    let n = connected.links.len();
    let workers = n.min(std::thread::available_parallelism().map_or(2, usize::from));
    // Requests per connection.
    let quota = |i: usize| match o.limit {
        Limit::Count(total) => {
            let per = total / n as u64;
            per + u64::from((i as u64) < total % n as u64)
        }
        Limit::Duration(_) => u64::MAX,
    };
    let gap = o.rate.map(|r| n as f64 / r);
    let start = Instant::now();
    let live = Arc::new(Live::default());
    let (tx, rx) = mpsc::channel();
    let mut groups: Vec<(Vec<Link>, Vec<Plan>)> =
        (0..workers).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, l) in connected.links.into_iter().enumerate() {
        let g = &mut groups[i % workers];
        g.0.push(l);
        g.1.push(Plan {
            quota: quota(i),
            gap,
            phase: i as f64 / n as f64,
        });
    }
    let handles: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(w, (links, plans))| {
            let shared = Shared {
                o: o.clone(),
                start,
                stop: stop.clone(),
                live: live.clone(),
                tx: tx.clone(),
            };
            std::thread::Builder::new()
                .name(format!("rc1-flood-{w}"))
                .spawn(move || worker(w, links, plans, shared))
        })
        .collect::<std::io::Result<_>>()?;
    drop(tx);

    let bar = o.progress.then(|| {
        let total = match o.limit {
            Limit::Count(c) => c,
            Limit::Duration(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        };
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(match o.limit {
                Limit::Count(_) => "{bar:30} {pos}/{len} echoed  {msg}",
                Limit::Duration(_) => "{bar:30} {pos}/{len} ms  {msg}",
            })
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let mut out = std::io::stdout().lock();
    let mut finals: Vec<Report> = Vec::new();
    let mut pending: BTreeMap<u64, Vec<Report>> = BTreeMap::new();
    let mut last_tick = Instant::now();
    let mut last_echoed = 0u64;
    // Intervals each finished worker reported: it adds nothing to later ones.
    let mut done_at: Vec<u64> = Vec::new();
    let show = |out: &mut std::io::StdoutLock<'_>, k: u64, reports: &[Report]| match &bar {
        Some(pb) => pb.suspend(|| print_interval(out, o, k, reports, json_out)),
        None => print_interval(out, o, k, reports, json_out),
    };
    while finals.len() < workers {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) if r.last => {
                done_at.push(r.interval);
                finals.push(r);
            }
            Ok(r) => pending.entry(r.interval).or_default().push(r),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Print every interval that has all its reports, in order.
        while let Some((&k, v)) = pending.first_key_value() {
            let gone = done_at.iter().filter(|&&d| d <= k).count();
            if v.len() + gone < workers {
                break;
            }
            let reports = pending.remove(&k).unwrap_or_default();
            show(&mut out, k, &reports);
        }
        if let Some(pb) = &bar
            && last_tick.elapsed() >= Duration::from_millis(200)
        {
            let echoed = live.echoed.load(Ordering::Relaxed);
            let dt = last_tick.elapsed().as_secs_f64();
            pb.set_message(format!(
                "{:.0} echoes/s, {} sent",
                rate(echoed.saturating_sub(last_echoed), dt),
                live.sent.load(Ordering::Relaxed)
            ));
            pb.set_position(match o.limit {
                Limit::Count(_) => echoed,
                Limit::Duration(_) => {
                    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
                }
            });
            last_echoed = echoed;
            last_tick = Instant::now();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // The workers hand back their connections, still open when `--hold`
    // asks for it: they close (FIN) once the hold is over.
    let open: Vec<Vec<Link>> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    if !o.hold.is_zero() {
        let until = Instant::now() + o.hold;
        while Instant::now() < until && !stop.is_stopped() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(open);
    for (k, reports) in std::mem::take(&mut pending) {
        show(&mut out, k, &reports);
    }
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let mut counts = Counts::default();
    let mut latency = histogram();
    let mut per_conn: Vec<u64> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut error_examples: BTreeMap<String, String> = BTreeMap::new();
    for r in &finals {
        counts.add(&r.counts);
        let _ = latency.add(&r.latency);
        for (_, c, failed) in &r.links {
            per_conn.push(c.echoed);
            if let Some((kind, msg)) = failed {
                *errors.entry((*kind).to_string()).or_default() += 1;
                error_examples
                    .entry((*kind).to_string())
                    .or_insert_with(|| msg.clone());
            }
        }
    }
    for (kind, (n, msg)) in &connected.failures {
        let k = format!("connect.{}", kind.to_lowercase());
        *errors.entry(k.clone()).or_default() += n;
        error_examples.entry(k).or_insert_with(|| msg.clone());
    }
    per_conn.sort_unstable();
    let spread = json!({
        "min": per_conn.first(),
        "median": per_conn.get(per_conn.len() / 2),
        "max": per_conn.last(),
    });
    let mut cu = connected.connect_us.clone();
    cu.sort_unstable();
    let connect = json!({
        "opened": cu.len(),
        "failed": connected.failures.values().map(|(n, _)| n).sum::<u64>(),
        "mean_us": if cu.is_empty() { None } else { Some(cu.iter().sum::<u64>() / cu.len() as u64) },
        "max_us": cu.last(),
    });
    let lat = percentiles(&latency);
    let clean = counts.mismatched == 0
        && counts.missing == 0
        && counts.unexpected == 0
        && errors.is_empty()
        && counts.sent > 0;
    let summary = json!({
        "type": "summary",
        "proto": o.proto.name(),
        "server": o.addr.to_string(),
        "connections": o.connections,
        "mode": match o.rate { Some(r) => format!("rate {r}/s"), None => format!("max, pipeline {}", o.pipeline) },
        "seconds": elapsed,
        "sent": counts.sent,
        "echoed": counts.echoed,
        "verified": counts.verified,
        "mismatched": counts.mismatched,
        "missing": counts.missing,
        "late": counts.late,
        "unexpected": counts.unexpected,
        "verify": o.verify,
        "bytes_out": counts.bytes_out,
        "bytes_in": counts.bytes_in,
        "sent_per_s": rate(counts.sent, elapsed),
        "echoed_per_s": rate(counts.echoed, elapsed),
        "mb_per_s_out": rate(counts.bytes_out, elapsed) / 1e6,
        "mb_per_s_in": rate(counts.bytes_in, elapsed) / 1e6,
        "latency_us": lat,
        "per_connection_echoed": spread,
        "connect": connect,
        "errors": errors,
        "ok": clean,
    });
    if json_out {
        let _ = writeln!(out, "{summary}");
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec!["", "frames", "per second", "MB/s"]);
        let row = |name: &str, n: u64, bytes: Option<u64>| {
            vec![
                name.to_string(),
                n.to_string(),
                format!("{:.0}", rate(n, elapsed)),
                bytes.map_or_else(String::new, |b| format!("{:.2}", rate(b, elapsed) / 1e6)),
            ]
        };
        t.add_row(row("sent", counts.sent, Some(counts.bytes_out)));
        t.add_row(row("echoed", counts.echoed, Some(counts.bytes_in)));
        if o.verify {
            t.add_row(row("verified", counts.verified, None));
            t.add_row(row("mismatched", counts.mismatched, None));
        } else {
            t.add_row(vec![
                "verified, mismatched".into(),
                "not checked (--no-verify)".into(),
                String::new(),
                String::new(),
            ]);
        }
        t.add_row(row("missing", counts.missing, None));
        if counts.late > 0 {
            t.add_row(row("late (after counted missing)", counts.late, None));
        }
        if counts.unexpected > 0 {
            t.add_row(row(
                "unexpected (answering nothing sent)",
                counts.unexpected,
                None,
            ));
        }
        let _ = writeln!(
            out,
            "rc1 flood {} → {}: {} connection(s), {}, {:.2} s",
            o.proto.name(),
            o.addr,
            cu.len(),
            summary["mode"].as_str().unwrap_or_default(),
            elapsed
        );
        let _ = writeln!(out, "{t}");
        let _ = writeln!(
            out,
            "latency (from intended send time): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            us_text(&lat["p50"]),
            us_text(&lat["p90"]),
            us_text(&lat["p99"]),
            us_text(&lat["p99_9"]),
            us_text(&lat["max"])
        );
        let _ = writeln!(
            out,
            "per connection, echoed: min {}  median {}  max {};  connect: mean {}  max {}",
            spread["min"],
            spread["median"],
            spread["max"],
            us_text(&connect["mean_us"]),
            us_text(&connect["max_us"])
        );
        if errors.is_empty() {
            let _ = writeln!(out, "errors: none");
        } else {
            for (k, n) in &errors {
                let _ = writeln!(
                    out,
                    "error {k}: {n} connection(s), e.g. {}",
                    error_examples.get(k).map_or("", String::as_str)
                );
            }
        }
    }
    let _ = out.flush();
    Ok(Summary {
        counts,
        errors,
        clean,
        json: summary,
    })
}

fn print_interval(
    out: &mut impl std::io::Write,
    o: &FloodOptions,
    k: u64,
    reports: &[Report],
    json_out: bool,
) {
    let Some(every) = o.interval else { return };
    let mut c = Counts::default();
    let mut h = histogram();
    for r in reports {
        c.add(&r.counts);
        let _ = h.add(&r.latency);
    }
    let secs = every.as_secs_f64();
    let from = secs * k as f64;
    let lat = percentiles(&h);
    if json_out {
        let line = json!({
            "type": "interval",
            "start": from,
            "end": from + secs,
            "sent": c.sent,
            "echoed": c.echoed,
            "mismatched": c.mismatched,
            "missing": c.missing,
            "echoed_per_s": rate(c.echoed, secs),
            "mb_per_s_in": rate(c.bytes_in, secs) / 1e6,
            "latency_us": lat,
        });
        let _ = writeln!(out, "{line}");
    } else {
        let _ = writeln!(
            out,
            "[{from:6.1}-{:6.1} s] {:>10.0} echoes/s {:>8.2} MB/s  p50 {}  p99 {}  max {}{}",
            from + secs,
            rate(c.echoed, secs),
            rate(c.bytes_in, secs) / 1e6,
            us_text(&lat["p50"]),
            us_text(&lat["p99"]),
            us_text(&lat["max"]),
            if c.mismatched + c.missing > 0 {
                format!("  ({} mismatched, {} missing)", c.mismatched, c.missing)
            } else {
                String::new()
            }
        );
    }
    let _ = out.flush();
}
