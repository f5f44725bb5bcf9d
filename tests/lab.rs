//! `rc1 lab N`: each exercise run end to end on loopback (captured live on
//! lo when this process may; else from its shipped fixture, said loudly,
//! and a failure under `CI=true`), its answers checked against what the
//! exercise does.

use serde_json::Value;

use crate::util::{can_capture, live_capture_lock, run, stderr, stdout};

/// Runs `rc1 lab ARGS --json` and parses its one object.
fn lab(args: &[&str]) -> Value {
    let mut all = vec!["lab"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--port", "0", "--json"]);
    let o = run(&all);
    assert!(o.status.success(), "rc1 {all:?}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// Exercise `n` live when this process may capture (the capture lock held),
/// else from its fixture, loudly; under `CI=true` capture is required.
fn lab_live(n: &str) -> (Value, bool) {
    let _lock = live_capture_lock();
    if can_capture() {
        let v = lab(&[n]);
        assert_eq!(v["wire"]["source"], "live", "{v}");
        (v, true)
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "rc1 lab {n}: capture privilege (root or CAP_NET_RAW) is missing on this CI machine"
        );
        eprintln!(
            "NOT LIVE: rc1 lab {n} cannot capture on lo here (no root or CAP_NET_RAW): \
             checking its fixture fallback instead"
        );
        let v = lab(&[n]);
        assert_eq!(v["wire"]["source"], "fixture", "{v}");
        (v, false)
    }
}

fn answer<'a>(v: &'a Value, q: &str) -> &'a Value {
    v["answers"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["question"] == q))
        .unwrap_or_else(|| panic!("no answer {q} in {v}"))
}

fn text(a: &Value) -> String {
    a["answer"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The clients' ports, each inside the OS's ephemeral range.
fn ports_in_range(v: &Value, clients: usize) {
    let range = v["ephemeral_range"].as_array().expect("the range is read");
    let (lo, hi) = (range[0].as_u64().unwrap(), range[1].as_u64().unwrap());
    let c = v["clients"].as_array().unwrap();
    assert_eq!(c.len(), clients, "{v}");
    let mut ports: Vec<u64> = c.iter().map(|c| c["port"].as_u64().unwrap()).collect();
    for p in &ports {
        assert!((lo..=hi).contains(p), "port {p} outside {lo}-{hi}");
    }
    ports.dedup();
    assert_eq!(ports.len(), clients, "each client its own port: {v}");
}

/// The live sessions are the clients' own: same ports, on the server's.
fn sessions_are_the_clients(v: &Value) {
    let mut wire: Vec<String> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["client"].as_str().unwrap().to_string())
        .collect();
    let mut own: Vec<String> = v["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["local"].as_str().unwrap().to_string())
        .collect();
    wire.sort();
    own.sort();
    assert_eq!(wire, own, "{v}");
    for s in v["sessions"].as_array().unwrap() {
        assert_eq!(s["server"], v["server"]);
    }
}

#[test]
fn exercise_1_udp_two_clients_their_ports_no_handshake() {
    let (v, live) = lab_live("1");
    ports_in_range(&v, 2);
    let a = answer(&v, "1.2");
    assert!(text(a).contains("no handshake"), "{a}");
    if live {
        sessions_are_the_clients(&v);
        assert_eq!(a["facts"]["datagrams_to_server"], 4);
        assert_eq!(
            a["facts"]["datagrams_to_client"], 0,
            "the lab's UDP server never answers"
        );
        for s in v["sessions"].as_array().unwrap() {
            assert_eq!(s["transport"], "udp");
            assert!(s["handshake_rtt_us"].is_null());
        }
        assert_eq!(answer(&v, "1.1")["facts"]["datagrams_printed"], 4);
    }
}

#[test]
fn exercise_2_threads_two_sessions_open_at_once() {
    let (v, live) = lab_live("2");
    ports_in_range(&v, 2);
    let a = answer(&v, "2.2");
    if live {
        sessions_are_the_clients(&v);
        let f = &a["facts"];
        assert_eq!(f["threads"], 2);
        assert_eq!(f["message_order"], "#1 #2 #1 #2");
        assert!(f["all_open"]["us"].as_u64().unwrap() > 0, "{f}");
        for s in f["sessions"].as_array().unwrap() {
            assert!(s["handshake_rtt_us"].as_u64().is_some(), "{s}");
            assert_eq!(s["state"], "SF");
            assert_eq!(s["messages_to_server"], 2);
        }
        assert_eq!(answer(&v, "2.1")["facts"]["echoes_ok"], 4);
        // The ladder carries the server's threads.
        assert!(
            v["mermaid"].as_str().unwrap().contains("starts a thread"),
            "{v}"
        );
    }
    assert!(text(a).contains("three-way handshake"));
}

#[test]
fn exercise_3_one_selector_three_keys() {
    let (v, live) = lab_live("3");
    ports_in_range(&v, 3);
    let a = answer(&v, "3.2");
    if live {
        sessions_are_the_clients(&v);
        let f = &a["facts"];
        assert_eq!(f["selector_keys"].as_array().unwrap().len(), 3);
        assert_eq!(f["selector_wakeups_with_data"], 6);
        assert_eq!(f["closes"], 3);
        assert_eq!(f["message_order"], "#1 #2 #3 #1 #2 #3");
        assert!(f["all_open"]["us"].as_u64().unwrap() > 0);
        assert!(
            v["mermaid"].as_str().unwrap().contains("selector wakes"),
            "{v}"
        );
        assert!(!v["mermaid"].as_str().unwrap().contains("starts a thread"));
    }
    assert!(text(a).contains("One thread, one selector"));
}

#[test]
fn exercise_4_v2_fields_a_cut_message_and_a_frame_split_in_two() {
    let (v, live) = lab_live("4");
    ports_in_range(&v, 1);
    let a = answer(&v, "4.2");
    let t = text(a);
    assert!(t.contains("bytes 9-28") && t.contains("20s"), "{t}");
    assert!(t.contains("Every frame is 29 bytes"));
    if live {
        sessions_are_the_clients(&v);
        let frames = a["facts"]["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 3);
        for f in frames {
            assert_eq!(f["bytes"], 29);
        }
        assert_eq!(frames[1]["cut"], true);
        assert_eq!(frames[1]["size"], 45);
        let split = &a["facts"]["split_frame"];
        assert_eq!(split["order"], 3, "{a}");
        let segs: Vec<u64> = split["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["len"].as_u64().unwrap())
            .collect();
        assert_eq!(segs, vec![9, 20]);
        assert!(t.contains("struct.error: unpack requires a buffer of 29 bytes"));
        // Python itself, given the first segment's very bytes.
        assert_eq!(
            a["facts"]["python_says"],
            "struct.error: unpack requires a buffer of 29 bytes"
        );
        assert!(t.contains("arrived in 2 segments"));
        assert_eq!(answer(&v, "4.3")["facts"]["echoes_ok"], 3);
        assert_eq!(answer(&v, "4.1")["facts"]["frames_read"], 3);
    }
}

#[test]
fn exercise_5_v3_sizes_from_0_to_over_a_segment() {
    let (v, live) = lab_live("5");
    let a = answer(&v, "5.2");
    if live {
        sessions_are_the_clients(&v);
        let sizes: Vec<(u64, u64)> = a["facts"]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["size"].as_u64().unwrap(), f["bytes"].as_u64().unwrap()))
            .collect();
        assert_eq!(sizes, vec![(0, 9), (5, 14), (1500, 1509), (70_000, 70_009)]);
        let split = &a["facts"]["split_frame"];
        assert_eq!(split["order"], 4);
        let total: u64 = split["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["len"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 70_009);
        assert_eq!(answer(&v, "5.3")["facts"]["echoes_ok"], 4);
    }
    assert!(text(a).contains("9 + size bytes"));
}

#[test]
fn fixtures_answer_the_same_questions_when_capture_is_not_possible() {
    for (n, sessions) in [("1", 2), ("2", 2), ("3", 3), ("4", 1), ("5", 2)] {
        let v = lab(&[n, "--fixture"]);
        assert_eq!(v["wire"]["source"], "fixture");
        assert!(v["wire"]["file"].as_str().unwrap().starts_with("fixtures/"));
        assert_eq!(
            v["sessions"].as_array().unwrap().len(),
            sessions,
            "{n}: {v}"
        );
        for a in v["answers"].as_array().unwrap() {
            assert!(
                text(a).contains("not from this run"),
                "{n}: every answer says which facts are the fixture's: {a}"
            );
        }
    }
    // v3's fixture has the 70,000-byte frame over several segments.
    let v = lab(&["5.2", "--fixture"]);
    let split = &answer(&v, "5.2")["facts"]["split_frame"];
    assert_eq!(split["bytes"], 70_009, "{v}");
}

#[test]
fn without_capture_privilege_it_says_how_and_uses_the_fixture() {
    // As root, drop to nobody for one run; as another user, run as is.
    let root = nix_is_root();
    if root
        && std::process::Command::new("setpriv")
            .arg("--help")
            .output()
            .is_err()
    {
        panic!("setpriv (util-linux) is needed to run this test as root");
    }
    let bin = env!("CARGO_BIN_EXE_rc1");
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        std::process::Command::new(bin)
    };
    if !root && can_capture() {
        eprintln!(
            "NOT CHECKED: this user may capture; the fallback is checked by the fixture test"
        );
        return;
    }
    let o = cmd
        .args([
            "lab", "4.2", "--port", "0", "--color", "never", "--width", "80",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{err}"
    );
    assert!(out.contains("fixtures/v2-echo.pcap"), "{out}");
    assert!(out.contains("What to look at"));
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn the_text_fits_its_width_and_has_no_colour_into_a_pipe() {
    for n in ["1", "2", "3", "4", "5"] {
        let o = run(&["lab", n, "--fixture", "--port", "0", "--width", "80"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(!out.contains('\x1b'), "lab {n}: colour into a pipe");
        for l in out.lines() {
            assert!(
                l.chars().count() <= 80,
                "lab {n}: {} chars: {l}",
                l.chars().count()
            );
        }
        for part in ["What to look at", "By hand", "python3 server"] {
            assert!(out.contains(part), "lab {n}: no {part:?}");
        }
    }
}

#[test]
fn a_question_alone_and_usage_errors() {
    let v = lab(&["4.3", "--fixture"]);
    let qs: Vec<&str> = v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["question"].as_str().unwrap())
        .collect();
    assert_eq!(qs, vec!["4.3"]);
    for bad in ["6", "1.3", "x"] {
        let o = run(&["lab", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(stderr(&o).contains("give 1 to 5"), "{}", stderr(&o));
    }
    let o = run(&["lab", "1", "--width", "20"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn keep_writes_the_capture_and_the_mermaid_diagram() {
    let _lock = live_capture_lock();
    if !can_capture() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "capture privilege is missing on this CI machine"
        );
        eprintln!("SKIPPED keep_writes_the_capture_and_the_mermaid_diagram: cannot capture here");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rc1-lab-keep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let v = lab(&["4", "--keep", dir.to_str().unwrap()]);
    let pcap = dir.join("exercise-4.pcap");
    let mmd = dir.join("exercise-4.mmd");
    assert_eq!(v["kept"].as_array().unwrap().len(), 2, "{v}");
    let m = std::fs::read_to_string(&mmd).unwrap();
    assert!(m.starts_with("sequenceDiagram"), "{m}");
    // The kept capture decodes to the same frames.
    let o = run(&[
        "capture",
        "-r",
        pcap.to_str().unwrap(),
        "--port",
        v["server"].as_str().unwrap().rsplit(':').next().unwrap(),
        "--json",
    ]);
    let frames = stdout(&o)
        .lines()
        .filter(|l| l.contains("\"type\":\"frame\""))
        .count();
    assert_eq!(frames, 6, "3 requests and 3 echoes: {}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
