//! Live capture on `lo` while rc1's servers and clients talk: the capture
//! decodes exactly the frames sent, each echo matched, and decoding the
//! `-w` file gives the same output (live/offline parity). Needs root or
//! CAP_NET_RAW: without it the test says loudly that it skipped, and fails
//! under `CI=true`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{Server, have_prerequisite, json_lines, rc1, run, stderr};

#[test]
fn live_capture_decodes_what_the_lab_sends_and_matches_its_file() {
    let Some(_one_at_a_time) = crate::util::live_capture("live_capture_on_lo") else {
        return;
    };
    let server = Server::start(&["--proto", "v3"]);
    let port = server.port();
    let dir = std::env::temp_dir().join(format!("rc1-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("live.pcap");
    let pcap_s = pcap.display().to_string();
    let mut cap = rc1()
        .args([
            "capture", "-i", "lo", "--port", &port, "--json", "-w", &pcap_s,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for "rc1: capturing on lo".
    let mut err = BufReader::new(cap.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("capturing on lo"), "{line}");
    std::thread::sleep(Duration::from_millis(200));

    for msgs in [&["one", "two", "three"][..], &["second client", ""][..]] {
        let mut args = vec!["client", "-p", "v3", "--port", &port, "-q"];
        for m in msgs {
            args.extend(["-m", m]);
        }
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    std::thread::sleep(Duration::from_millis(300));
    crate::util::ctrl_c_and_wait(&mut cap);
    let out = cap.wait_with_output().unwrap();
    assert!(out.status.success());
    let live = json_lines(&out);
    let frames = |dir: &str| -> Vec<String> {
        live.iter()
            .filter(|e| e["type"] == "frame" && e["dir"] == dir)
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(frames("c>s"), ["one", "two", "three", "second client", ""]);
    assert_eq!(frames("s>c"), frames("c>s"));
    assert!(
        live.iter()
            .filter(|e| e["type"] == "frame" && e["dir"] == "s>c")
            .all(|e| e["echo"] == "ok")
    );
    let sessions: Vec<_> = live.iter().filter(|e| e["type"] == "session").collect();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions
            .iter()
            .all(|s| s["state"] == "SF" && s["framing"] == "v3")
    );
    let totals = live.last().unwrap();
    assert_eq!(totals["type"], "totals");
    assert!(
        totals["kernel_dropped"].is_u64(),
        "kernel counters reported live"
    );

    // Live/offline parity: the -w file decodes to the same lines (the
    // totals aside: only a live capture has kernel counters).
    let offline = run(&["capture", "-r", &pcap_s, "--port", &port, "--json"]);
    assert!(offline.status.success(), "{}", stderr(&offline));
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter().filter(|e| e["type"] != "totals").collect()
    };
    assert_eq!(strip(live.clone()), strip(json_lines(&offline)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capture_without_privilege_says_what_to_do() {
    // Drop to an unprivileged user when we are root; otherwise we already are one.
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let bin = env!("CARGO_BIN_EXE_rc1");
    let out = if is_root {
        let have = Command::new("setpriv").arg("--version").output().is_ok();
        if !have_prerequisite(have, "capture_without_privilege", "setpriv (util-linux)") {
            return;
        }
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .args([bin, "capture", "-i", "lo", "-c", "1"])
            .output()
            .unwrap()
    } else {
        Command::new(bin)
            .args(["capture", "-i", "lo", "-c", "1"])
            .output()
            .unwrap()
    };
    if out.status.success() {
        // Unprivileged yet allowed (file capabilities on the binary).
        eprintln!("SKIPPED capture_without_privilege: this binary may capture without root");
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied"), "{err}");
    assert!(
        err.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn started_through_sudo_the_capture_drops_root_once_it_is_open() {
    let _one_at_a_time = crate::util::live_capture_lock();
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !have_prerequisite(
        is_root && crate::util::can_capture(),
        "started_through_sudo_the_capture_drops_root_once_it_is_open",
        "root (to start as root and drop to SUDO_UID)",
    ) {
        return;
    }
    let server = Server::start(&["--proto", "v2", "-q"]);
    let port = server.port();
    let dir = std::env::temp_dir().join(format!("rc1-drop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("dropped.pcap");
    let mut cap = rc1()
        .args(["capture", "-i", "lo", "--port", &port, "--json", "-w"])
        .arg(&pcap)
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(cap.stderr.take().unwrap());
    let mut said = String::new();
    for _ in 0..2 {
        err.read_line(&mut said).unwrap();
    }
    assert!(said.contains("now running as uid 65534"), "{said}");
    // The kernel agrees: real and effective uid are no longer 0.
    let status = std::fs::read_to_string(format!("/proc/{}/status", cap.id())).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uids.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uids}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = run(&[
        "client",
        "-p",
        "v2",
        "--port",
        &port,
        "-q",
        "-m",
        "as nobody",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(300));
    crate::util::ctrl_c_and_wait(&mut cap);
    let out = cap.wait_with_output().unwrap();
    assert!(out.status.success());
    let frames = json_lines(&out)
        .into_iter()
        .filter(|e| e["type"] == "frame" && e["message"] == "as nobody")
        .count();
    assert_eq!(frames, 2, "request and echo decoded after dropping root");
    // The -w file was opened before the drop and is complete.
    let offline = run(&[
        "capture",
        "-r",
        pcap.to_str().unwrap(),
        "--port",
        &port,
        "--json",
    ]);
    assert!(offline.status.success(), "{}", stderr(&offline));
    // After Ctrl+C the file is complete for Wireshark's tools too.
    let have = Command::new("capinfos").arg("-h").output().is_ok();
    if have_prerequisite(
        have,
        "capinfos after Ctrl+C",
        "capinfos (Debian package tshark)",
    ) {
        let info = Command::new("capinfos")
            .arg("-c")
            .arg(&pcap)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(
            info.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&info.stderr)
        );
        assert!(text.contains("Number of packets"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
