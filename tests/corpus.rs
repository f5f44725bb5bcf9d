//! Captures no one here made: the 830 files of tcpdump's own test suite
//! (`../shared/corpus/tcpdump-tests`, BSD licence; kept out of fixtures/),
//! hundreds of protocols, about 30 link types, many deliberately malformed.
//!
//! For every file, `rc1 capture -r F -f "" --json -q` must:
//! * never panic nor hang (each run is killed after [`HANG`]);
//! * exit 0, or 1 with one line naming a documented cause: a link type
//!   rc1 does not read (named as libpcap names it), or a file that is cut
//!   short, corrupt, or not a capture;
//! * account for every packet: `packets` = `in_sessions` + the causes of
//!   `not_in_sessions`;
//! * where tshark reads the file, parse at least as many TCP/UDP packets
//!   as `tshark -Y "(tcp or udp) and not icmp and not icmpv6"` shows (ICMP
//!   errors quote a TCP/UDP header, which tshark's filter matches; they are
//!   not TCP/UDP traffic), and make a session of every conversation tshark
//!   sees, counting a packet in the conversation rc1 would put it in: its
//!   outermost TCP/UDP layer, or the one inside a VXLAN/Geneve tunnel
//!   (rc1 shows the tunnelled connection, the tunnel itself in its `via`).
//!
//! The few files where rc1 is short of tshark, and why, are listed in
//! [`EXCEPTIONS`]; an exception that no longer applies fails the test too.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{have_prerequisite, rc1};

/// A run longer than this is a hang.
const HANG: Duration = Duration::from_secs(10);

/// Where rc1 parses fewer TCP/UDP packets than tshark, or makes fewer
/// sessions: (file, "packets" or "conversations", why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "tcp_header_heapoverflow.pcap",
        "packets",
        "a TCP header cut by the snap length after 12 bytes, before its flags: tshark shows its ports, \
         rc1 can make no segment of it (counted as unparsed and reported)",
    ),
    (
        "lmp-lmp_print_data_link_subobjs-oobr.pcap",
        "packets",
        "two first fragments (offset 0) of one IP datagram (same id): tshark shows each, rc1 keeps \
         one datagram and counts the other fragment as dropped (reported)",
    ),
    (
        "olsr-oobr-1.pcap",
        "packets",
        "two first fragments (offset 0) of one IP datagram (same id): tshark shows each, rc1 keeps \
         one datagram and counts the other fragment as dropped (reported)",
    ),
];

/// The corpus: `$RC1_CORPUS`, else `../shared/corpus/tcpdump-tests` beside
/// the checkout, else the workplace's shared folder (a clone made
/// elsewhere, as CI's may be).
fn corpus_dir() -> Option<PathBuf> {
    let env = std::env::var_os("RC1_CORPUS").map(PathBuf::from);
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/tcpdump-tests");
    let shared = PathBuf::from("/work/shared/corpus/tcpdump-tests");
    env.into_iter()
        .chain([beside, shared])
        .find(|d| d.join("LICENSE").is_file())
}

/// Runs `cmd` for at most `limit`: (exit code, stdout, stderr, elapsed),
/// or `None` when it had to be killed.
fn run_bounded(
    mut cmd: Command,
    limit: Duration,
) -> Option<(Option<i32>, String, String, Duration)> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let elapsed = start.elapsed();
            let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
            return Some((
                status.code(),
                text(o.join().unwrap_or_default()),
                text(e.join().unwrap_or_default()),
                elapsed,
            ));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What tshark sees of a file: TCP/UDP packets and conversations.
struct Tshark {
    packets: usize,
    conversations: usize,
}

fn tshark(file: &Path) -> Option<Tshark> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-Y", "(tcp or udp) and not icmp and not icmpv6"])
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "separator=/t"])
        .args([
            "-e",
            "frame.protocols",
            "-e",
            "tcp.stream",
            "-e",
            "udp.stream",
        ]);
    let (code, out, _, _) = run_bounded(cmd, Duration::from_secs(120))?;
    if code != Some(0) {
        return None; // tshark does not read it whole
    }
    let mut packets = 0;
    let mut convs = HashSet::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        packets += 1;
        let mut f = line.split('\t');
        let protocols: Vec<&str> = f.next().unwrap_or("").split(':').collect();
        let list = |s: Option<&str>| -> Vec<String> {
            s.unwrap_or("")
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let (tcp, udp) = (list(f.next()), list(f.next()));
        // The conversation rc1 would put it in: the outermost TCP/UDP
        // layer, or past a VXLAN/Geneve tunnel the one inside.
        let (mut nt, mut nu) = (0, 0);
        let mut pick = None;
        for (i, p) in protocols.iter().enumerate() {
            let this = match *p {
                "tcp" => {
                    nt += 1;
                    tcp.get(nt - 1).map(|s| ("tcp", s.clone()))
                }
                "udp" => {
                    nu += 1;
                    udp.get(nu - 1).map(|s| ("udp", s.clone()))
                }
                _ => continue,
            };
            pick = this;
            let tunnel = matches!(protocols.get(i + 1), Some(&"vxlan" | &"geneve"));
            if !tunnel {
                break;
            }
        }
        if let Some(c) = pick {
            convs.insert(c);
        }
    }
    Some(Tshark {
        packets,
        conversations: convs.len(),
    })
}

/// One file's results.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    read: usize,
    refused_link: Vec<String>,
    file_errors: usize,
    tshark_packets: usize,
    rc1_packets: usize,
    tshark_convs: usize,
    rc1_sessions: usize,
    compared: usize,
    exceptions_used: HashSet<(String, String)>,
    slowest: (Duration, String),
}

fn check(file: &Path, report: &Mutex<Report>) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut cmd = rc1();
    cmd.args(["capture", "-r"])
        .arg(file)
        .args(["-f", "", "--json", "-q"]);
    let mut fail = Vec::new();
    let Some((code, out, err, elapsed)) = run_bounded(cmd, HANG) else {
        report
            .lock()
            .unwrap()
            .failures
            .push(format!("{name}: hung (killed after {HANG:?})"));
        return;
    };
    if err.contains("panicked") {
        fail.push(format!("{name}: panicked: {err}"));
    }
    let mut refused = None;
    let mut file_error = false;
    match code {
        Some(0) => {
            if !err.trim().is_empty() {
                fail.push(format!("{name}: exit 0 but said: {err}"));
            }
        }
        Some(1) => {
            let one = err.lines().count() == 1 && err.starts_with("rc1: ") && err.contains(&name);
            if !one {
                fail.push(format!("{name}: exit 1 without one clear line: {err}"));
            } else if let Some(at) = err.find("link type ") {
                // "link type 107 (FRELAY: Frame Relay) is not supported".
                let named = err[at..].contains(" (") && err.contains("is not supported");
                if !named {
                    fail.push(format!("{name}: the link type is not named: {err}"));
                }
                let named_as = err[at..].split(" is not supported").next().unwrap_or("");
                refused = Some(named_as.to_string());
            } else if ["cut short", "corrupt after", "not a capture file"]
                .iter()
                .any(|w| err.contains(w))
            {
                file_error = true;
            } else {
                fail.push(format!("{name}: exit 1 for an undocumented reason: {err}"));
            }
        }
        other => fail.push(format!("{name}: exit status {other:?}: {err}")),
    }
    let mut totals: Option<Value> = None;
    let mut sessions = 0usize;
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            fail.push(format!("{name}: not JSON: {line}"));
            continue;
        };
        match v["type"].as_str() {
            Some("totals") => totals = Some(v),
            Some("session") => sessions += 1,
            _ => {}
        }
    }
    let mut r = report.lock().unwrap();
    if elapsed > r.slowest.0 {
        r.slowest = (elapsed, name.clone());
    }
    if let Some(lt) = &refused {
        r.refused_link.push(format!("{name}: {lt}"));
    }
    if file_error {
        r.file_errors += 1;
    }
    let Some(t) = totals else {
        if code == Some(0) {
            fail.push(format!("{name}: no totals"));
        }
        r.failures.extend(fail);
        return;
    };
    r.read += 1;
    let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    let causes: u64 = t["not_in_sessions"]
        .as_object()
        .map(|m| m.values().map(n).sum())
        .unwrap_or(u64::MAX);
    if n(&t["packets"]) != n(&t["in_sessions"]).saturating_add(causes) {
        fail.push(format!("{name}: packets do not reconcile: {t}"));
    }
    let parsed = n(&t["in_sessions"]) + n(&t["not_in_sessions"]["after_session"]);
    drop(r);
    let ts = if refused.is_none() {
        tshark(file)
    } else {
        None
    };
    let mut r = report.lock().unwrap();
    if let Some(ts) = ts {
        r.compared += 1;
        r.tshark_packets += ts.packets;
        r.rc1_packets += parsed as usize;
        r.tshark_convs += ts.conversations;
        r.rc1_sessions += sessions;
        let excused = |what: &str| EXCEPTIONS.iter().any(|(f, w, _)| *f == name && *w == what);
        for (what, short, detail) in [
            (
                "packets",
                (parsed as usize) < ts.packets,
                format!("rc1 parsed {parsed} TCP/UDP packets, tshark {}", ts.packets),
            ),
            (
                "conversations",
                sessions < ts.conversations,
                format!(
                    "rc1 made {sessions} sessions, tshark saw {} conversations",
                    ts.conversations
                ),
            ),
        ] {
            if short && excused(what) {
                r.exceptions_used.insert((name.clone(), what.to_string()));
            } else if short {
                fail.push(format!("{name}: {detail} ({t})"));
            }
        }
    }
    r.failures.extend(fail);
}

#[test]
fn every_capture_of_the_tcpdump_corpus_is_read_or_refused_clearly_and_matches_tshark() {
    let test = "every_capture_of_the_tcpdump_corpus_is_read_or_refused_clearly_and_matches_tshark";
    let dir = corpus_dir();
    if !have_prerequisite(
        dir.is_some(),
        test,
        "the corpus ../shared/corpus/tcpdump-tests",
    ) {
        return;
    }
    let have_tshark = Command::new("tshark").arg("--version").output().is_ok();
    if !have_prerequisite(have_tshark, test, "tshark") {
        return;
    }
    let dir = dir.unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 800, "corpus has {} files", files.len());
    let report = Mutex::new(Report::default());
    let next = AtomicUsize::new(0);
    // One worker: tshark takes a core while it runs, and the other tests
    // (servers with bounded waits) run beside this one.
    std::thread::scope(|s| {
        for _ in 0..1 {
            s.spawn(|| {
                while let Some(f) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    check(f, &report);
                }
            });
        }
    });
    let mut r = report.into_inner().unwrap();
    for (f, what, why) in EXCEPTIONS {
        if !r
            .exceptions_used
            .contains(&(f.to_string(), what.to_string()))
        {
            r.failures.push(format!(
                "{f}: the exception for {what} no longer applies ({why}): remove it"
            ));
        }
    }
    eprintln!(
        "corpus: {} files, {} read, {} refused for their link type, {} cut or corrupt; \
         {} compared with tshark: TCP/UDP packets {} (tshark) vs {} (rc1), conversations {} vs \
         sessions {}; {} exception(s); slowest {:?} ({})",
        files.len(),
        r.read,
        r.refused_link.len(),
        r.file_errors,
        r.compared,
        r.tshark_packets,
        r.rc1_packets,
        r.tshark_convs,
        r.rc1_sessions,
        r.exceptions_used.len(),
        r.slowest.0,
        r.slowest.1
    );
    let mut kinds: Vec<String> = r
        .refused_link
        .iter()
        .map(|l| l.split_once(": ").map_or(l.clone(), |(_, k)| k.to_string()))
        .collect();
    kinds.sort();
    kinds.dedup();
    eprintln!("corpus: link types refused: {}", kinds.join("; "));
    assert!(r.failures.is_empty(), "{}", r.failures.join("\n"));
    // Each file is small: the slowest takes tens of milliseconds (a hang
    // is killed at HANG); seconds would be a defect, whatever the load.
    assert!(
        r.slowest.0 < Duration::from_secs(3),
        "{} took {:?}",
        r.slowest.1,
        r.slowest.0
    );
    assert!(
        r.compared >= 500,
        "only {} files compared with tshark",
        r.compared
    );
}
