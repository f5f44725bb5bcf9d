//! `rc1 capture -r FIXTURE --ladder`: widths, colour, the long-capture
//! limit, time windows, the Mermaid grammar, and two golden diagrams
//! (tests/golden/v2-echo.mermaid and text-threaded.ladder, the diagram
//! without the sessions table; refreshed as the JSON goldens are:
//! `RC1_BLESS=1 cargo test golden`, then review the diff).

use std::collections::HashSet;

use crate::util::{rc1, run, stderr, stdout};

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The ladder part of a text run: the lines before the blank line that
/// opens the sessions table.
fn ladder_lines(out: &str) -> Vec<&str> {
    out.lines().take_while(|l| !l.is_empty()).collect()
}

/// Rows of a text ladder (those that begin with a time).
fn rows(out: &str) -> Vec<&str> {
    ladder_lines(out)
        .into_iter()
        .filter(|l| l.starts_with('+'))
        .collect()
}

const FIXTURES: [&str; 7] = [
    "mixed.pcap",
    "v2-echo.pcap",
    "text-threaded.pcap",
    "text-selector.pcap",
    "udp.pcap",
    "gap.pcap",
    "retransmission.pcap",
];

#[test]
fn every_line_of_the_text_ladder_fits_the_width() {
    for name in FIXTURES {
        for width in [60, 80, 120] {
            let w = width.to_string();
            let out = run(&["capture", "-r", &fixture(name), "--ladder", "--width", &w]);
            assert!(out.status.success(), "{name}: {}", stderr(&out));
            let text = stdout(&out);
            let lines = ladder_lines(&text);
            assert!(
                rows(&text).len() >= 8,
                "{name} at {width}: few rows:\n{text}"
            );
            for l in lines {
                // Characters, not bytes: µ, … and the box characters are
                // several bytes each.
                assert!(
                    l.chars().count() <= width,
                    "{name} at {width}: {} chars: {l:?}",
                    l.chars().count()
                );
            }
            // The sessions table and totals still follow.
            assert!(text.contains(" packets, "), "{name}: no totals:\n{text}");
        }
    }
}

#[test]
fn the_width_has_a_minimum_said_clearly() {
    let out = run(&[
        "capture",
        "-r",
        &fixture("udp.pcap"),
        "--ladder",
        "--width",
        "20",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--width 20 is too narrow: give at least 40 columns"));
}

#[test]
fn ladder_and_json_are_a_usage_error() {
    let out = run(&["capture", "-r", &fixture("udp.pcap"), "--ladder", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn concurrent_sessions_interleave_on_their_own_lanes() {
    let out = run(&[
        "capture",
        "-r",
        &fixture("text-selector.pcap"),
        "--ladder",
        "--width",
        "80",
    ]);
    let text = stdout(&out);
    // The lane header: the line above the first row.
    let lines = ladder_lines(&text);
    let first_row = lines.iter().position(|l| l.starts_with('+')).unwrap();
    let header = lines[first_row - 1];
    for alias in ["C1", "C2", "C3", "S"] {
        assert!(header.contains(alias), "{header}");
    }
    // Client lanes start at different columns: C2's SYN is indented past
    // C1's lane, C3's past C2's.
    let syn_columns: Vec<usize> = rows(&text)
        .into_iter()
        .filter(|l| l.contains(" SYN ") && !l.contains("SYN-ACK"))
        .map(|l| l.chars().position(|c| c == '─').unwrap())
        .collect();
    assert_eq!(syn_columns.len(), 3, "{text}");
    assert!(syn_columns[0] < syn_columns[1] && syn_columns[1] < syn_columns[2]);
    // C1's message comes while C2 and C3 are open: their lanes are drawn
    // on that row.
    let a = rows(&text)
        .into_iter()
        .find(|l| l.contains("hello from A"))
        .unwrap();
    assert!(a.contains("echo") || a.contains('▶'), "{a}");
    let hello_c = rows(&text)
        .into_iter()
        .find(|l| l.contains("hello from C"))
        .unwrap();
    assert_eq!(
        hello_c.chars().filter(|&c| c == '│').count(),
        4,
        "C1, C2 and C3 still open, and S: {hello_c}"
    );
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
    let file = fixture("gap.pcap");
    let ladder = |color: Option<&str>, no_color: Option<&str>| {
        let mut cmd = rc1();
        cmd.args(["capture", "-r", &file, "--ladder"]);
        if let Some(c) = color {
            cmd.args(["--color", c]);
        }
        cmd.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let has_esc = |b: &[u8]| b.contains(&0x1b);
    // A pipe (auto) and never: not one escape byte.
    assert!(!has_esc(&ladder(None, None)));
    assert!(!has_esc(&ladder(Some("never"), None)));
    assert!(!has_esc(&ladder(Some("auto"), Some("1"))));
    // Always: colour, even with NO_COLOR.
    assert!(has_esc(&ladder(Some("always"), None)));
    assert!(has_esc(&ladder(Some("always"), Some("1"))));
    // Red for the gap.
    let coloured = String::from_utf8(ladder(Some("always"), None)).unwrap();
    let gap = coloured
        .lines()
        .find(|l| l.contains("bytes never captured"))
        .unwrap();
    assert!(gap.contains("\x1b[31m"), "{gap:?}");
    // Mermaid is never coloured.
    let mut cmd = rc1();
    cmd.args([
        "capture", "-r", &file, "--ladder", "mermaid", "--color", "always",
    ]);
    assert!(!has_esc(&cmd.output().unwrap().stdout));
}

#[test]
fn a_long_capture_is_cut_and_says_how_to_narrow_it() {
    let file = fixture("v2-echo.pcap");
    let all = stdout(&run(&["capture", "-r", &file, "--ladder"]));
    let total = rows(&all).len();
    assert!(total > 10, "{all}");
    let out = run(&["capture", "-r", &file, "--ladder", "--ladder-max", "10"]);
    assert!(out.status.success());
    let cut = stdout(&out);
    assert_eq!(rows(&cut).len(), 10, "{cut}");
    let said = ladder_lines(&cut).join(" ");
    assert!(
        said.contains(&format!("{} more event(s) not drawn", total - 10)),
        "{cut}"
    );
    for how in ["-c N", "--follow N", "--from T --to T"] {
        assert!(said.contains(how), "{how}: {said}");
    }
    // Not cut: nothing said.
    assert!(!all.contains("not drawn"));
}

#[test]
fn from_and_to_narrow_the_ladder() {
    let file = fixture("text-threaded.pcap");
    let all = stdout(&run(&["capture", "-r", &file, "--ladder"]));
    // The first SYN is at 18:50:50.441952; the first message at +0.515.
    let window = |from: &str, to: &str| {
        let out = run(&[
            "capture", "-r", &file, "--ladder", "--from", from, "--to", to,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let relative = window("0.5", "1.3");
    let of_day = window("18:50:50.9", "18:50:51.75");
    for w in [&relative, &of_day] {
        let r = rows(w);
        assert!(!r.is_empty() && r.len() < rows(&all).len(), "{w}");
        assert!(
            !w.contains("SYN"),
            "the handshakes are before the window: {w}"
        );
        assert!(
            w.contains("hello from A") && w.contains("bye from B"),
            "{w}"
        );
        assert!(!w.contains("bye from A"), "after the window: {w}");
    }
    // Epoch seconds: the same window as "+0.5".
    let epoch = window("1795546250.941952", "1795546251.741952");
    assert_eq!(rows(&epoch).len(), rows(&relative).len(), "{epoch}");
    // --follow N: only that session's lane.
    let one = stdout(&run(&["capture", "-r", &file, "--ladder", "--follow", "2"]));
    assert!(
        one.contains("hello from B") && !one.contains("hello from A"),
        "{one}"
    );
    assert!(one.contains("(session #2)"), "{one}");
    // A time that cannot be read is a usage error that says the forms.
    let bad = run(&["capture", "-r", &file, "--ladder", "--from", "noon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("HH:MM:SS"), "{}", stderr(&bad));
}

/// Mermaid's rules that matter here, checked by hand: the first line,
/// participants declared once before use, arrows and notes of the right
/// shape, and no text that ends a statement (`;`), starts a comment (`#`
/// not in an entity code) or runs onto another line.
fn check_mermaid(doc: &str) -> Result<usize, String> {
    let mut lines = doc.lines();
    if lines.next() != Some("sequenceDiagram") {
        return Err("first line is not sequenceDiagram".into());
    }
    let id_ok = |id: &str| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric());
    let text_ok = |t: &str| !t.trim().is_empty() && entities_only(t);
    let mut declared: HashSet<String> = HashSet::new();
    let mut aliases: HashSet<String> = HashSet::new();
    let mut statements = 0;
    for line in lines {
        if line.starts_with("%%") {
            continue; // a comment
        }
        let l = line.trim_start();
        if let Some(rest) = l.strip_prefix("participant ") {
            let (id, alias) = rest.split_once(" as ").ok_or(format!("no alias: {line}"))?;
            if !id_ok(id) || !declared.insert(id.to_string()) {
                return Err(format!("bad or repeated participant: {line}"));
            }
            if !text_ok(alias) || !aliases.insert(alias.to_string()) {
                return Err(format!("bad or repeated alias: {line}"));
            }
            continue;
        }
        if declared.is_empty() {
            return Err(format!("a statement before any participant: {line}"));
        }
        let known = |id: &str| {
            if declared.contains(id) {
                Ok(())
            } else {
                Err(format!("{id} not declared: {line}"))
            }
        };
        if let Some(rest) = l.strip_prefix("Note ") {
            let rest = ["left of ", "right of ", "over "]
                .iter()
                .find_map(|p| rest.strip_prefix(p))
                .ok_or(format!("bad note: {line}"))?;
            let (ids, text) = rest.split_once(": ").ok_or(format!("no text: {line}"))?;
            let ids: Vec<&str> = ids.split(',').collect();
            if ids.len() > 2 {
                return Err(format!("note over more than two: {line}"));
            }
            for id in ids {
                known(id)?;
            }
            if !text_ok(text) {
                return Err(format!("note text Mermaid misreads: {line}"));
            }
        } else {
            let (head, text) = l.split_once(": ").ok_or(format!("not an arrow: {line}"))?;
            let from: String = head
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let rest = &head[from.len()..];
            let arrow = ["-->>", "->>", "--x", "-x", "--)", "-)"]
                .into_iter()
                .find(|a| rest.starts_with(a))
                .ok_or(format!("no arrow: {line}"))?;
            let to = &rest[arrow.len()..];
            if !id_ok(&from) || !id_ok(to) {
                return Err(format!("bad ids: {line}"));
            }
            known(&from)?;
            known(to)?;
            if !text_ok(text) {
                return Err(format!("message text Mermaid misreads: {line}"));
            }
        }
        statements += 1;
    }
    Ok(statements)
}

/// Every `#` and `;` is part of an entity code `#NNN;` or `#name;`.
fn entities_only(t: &str) -> bool {
    let mut rest = t;
    loop {
        match rest.find(['#', ';']) {
            None => return true,
            Some(i) => {
                let after = &rest[i..];
                if !after.starts_with('#') {
                    return false; // a bare `;`
                }
                let Some(end) = after.find(';') else {
                    return false;
                };
                let code = &after[1..end];
                if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return false;
                }
                rest = &after[end + 1..];
            }
        }
    }
}

#[test]
fn the_checker_rejects_what_mermaid_misreads() {
    let ok =
        "sequenceDiagram\n    participant C1 as a\n    participant S as b\n    C1->>S: x #35; y\n";
    assert_eq!(check_mermaid(ok), Ok(1));
    for bad in [
        "graph\n    participant C1 as a\n",
        "sequenceDiagram\n    C1->>S: before participants\n",
        "sequenceDiagram\n    participant C1 as a\n    C1->>S: S undeclared\n",
        "sequenceDiagram\n    participant C1 as a\n    participant C1 as b\n",
        "sequenceDiagram\n    participant C1 as a\n    participant S as a\n",
        "sequenceDiagram\n    participant C1 as a\n    participant S as b\n    C1->>S: a; b\n",
        "sequenceDiagram\n    participant C1 as a\n    participant S as b\n    C1->>S: a # b\n",
        "sequenceDiagram\n    participant C1 as a\n    participant S as b\n    C1=>S: x\n",
        "sequenceDiagram\n    participant C1 as a\n    Note above C1: x\n",
    ] {
        assert!(check_mermaid(bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn mermaid_of_every_fixture_follows_the_grammar() {
    let dir = format!("{}/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
            continue;
        }
        let out = run(&["capture", "-r", &fixture(&name), "--ladder", "mermaid"]);
        let doc = stdout(&out);
        match check_mermaid(&doc) {
            Ok(n) => assert!(n > 0 || !doc.contains("participant"), "{name}: {doc}"),
            Err(e) => panic!("{name}: {e}\n{doc}"),
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} fixtures");
}

#[test]
fn ladders_match_their_golden_files() {
    let root = env!("CARGO_MANIFEST_DIR");
    let bless = std::env::var("RC1_BLESS").is_ok_and(|v| v == "1");
    let cases: [(&str, &[&str], &str); 2] = [
        ("v2-echo.pcap", &["--ladder", "mermaid"], "v2-echo.mermaid"),
        (
            "text-threaded.pcap",
            &["--ladder", "--color", "never", "--width", "80"],
            "text-threaded.ladder",
        ),
    ];
    let mut failures = Vec::new();
    for (name, flags, golden) in cases {
        let file = fixture(name);
        let mut args = vec!["capture", "-r", &file];
        args.extend_from_slice(flags);
        let out = run(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        // The diagram only: the sessions table after it (Mermaid: as `%%`
        // comments) has goldens of its own in the JSON ones.
        let got: String = stdout(&out)
            .lines()
            .take_while(|l| !l.is_empty() && !l.starts_with("%%"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(got.lines().count() > 10, "{name}: {got}");
        let path = format!("{root}/tests/golden/{golden}");
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!("{path} is missing: run `RC1_BLESS=1 cargo test golden` and review it")
        });
        if want != got {
            failures.push(format!("{golden}:\n--- expected\n{want}\n--- got\n{got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(if the change is intended: RC1_BLESS=1 cargo test golden, then review the diff)",
        failures.join("\n")
    );
}

/// Mermaid's own parser (tests/mermaid/check.mjs, through node), when
/// node and its packages are here (`npm ci --prefix tests/mermaid`, which
/// scripts/test runs); a failure under `CI=true` without them.
fn mermaid_itself(files: &[std::path::PathBuf]) -> Option<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mermaid");
    let present = std::path::Path::new(dir)
        .join("node_modules/mermaid")
        .is_dir()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !crate::util::have_prerequisite(
        present,
        "mermaid_itself_parses_every_diagram",
        "node with tests/mermaid/node_modules (npm ci --prefix tests/mermaid)",
    ) {
        return None;
    }
    let o = std::process::Command::new("node")
        .arg(format!("{dir}/check.mjs"))
        .args(files)
        .output()
        .expect("node runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "Mermaid rejects a diagram:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(out)
}

#[test]
fn mermaid_itself_parses_every_diagram() {
    let dir = std::env::temp_dir().join(format!("rc1-mermaid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
            .collect();
    names.sort();
    for name in &names {
        let o = run(&["capture", "-r", &fixture(name), "--ladder", "mermaid"]);
        // truncated.pcap ends in a cut record: status 1, everything before it drawn.
        assert!(
            o.status.success() || name == "truncated.pcap",
            "{name}: {}",
            stderr(&o)
        );
        let p = dir.join(format!("{name}.mmd"));
        std::fs::write(&p, stdout(&o)).unwrap();
        files.push(p);
    }
    // The README's diagram, as GitHub will see it.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```mermaid\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(!blocks.is_empty(), "the README shows a Mermaid diagram");
    for (i, b) in blocks.iter().enumerate() {
        let p = dir.join(format!("readme-{i}.mmd"));
        std::fs::write(&p, b).unwrap();
        files.push(p);
    }
    // Each exercise's diagram of `rc1 lab` (from its fixture: no capture needed).
    for n in 1..=5 {
        let o = run(&["lab", &n.to_string(), "--fixture", "--port", "0", "--json"]);
        assert!(o.status.success(), "lab {n}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        let p = dir.join(format!("lab-{n}.mmd"));
        std::fs::write(&p, v["mermaid"].as_str().unwrap()).unwrap();
        files.push(p);
    }
    if let Some(out) = mermaid_itself(&files) {
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("ok ") && l.ends_with(" sequence"))
                .count(),
            files.len(),
            "{out}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn width_belongs_to_the_ladder_or_the_hex_panes_and_quiet_to_neither() {
    let o = run(&["capture", "-r", &fixture("udp.pcap"), "--width", "60"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--width is the width of --ladder or of --hex"),
        "{}",
        stderr(&o)
    );
    let o = run(&["capture", "-r", &fixture("udp.pcap"), "--ladder", "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-q prints none"), "{}", stderr(&o));
    // --width sets the --hex panes too.
    let o = run(&[
        "capture",
        "-r",
        &fixture("v2-echo.pcap"),
        "--hex",
        "--width",
        "60",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let panes: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("00") || l.starts_with("      "))
        .collect();
    assert!(!panes.is_empty());
    for l in panes {
        assert!(l.chars().count() <= 60, "{} chars: {l}", l.chars().count());
    }
}

#[test]
fn sessions_open_at_once_keep_their_lanes_in_a_window_or_a_cut() {
    // Session #1 of text-threaded is open until +2.03 s: a window ending
    // at +0.3 s, or the first 12 packets of text-selector, must not give
    // its lane to #2 (or #2's to #3).
    let o = run(&[
        "capture",
        "-r",
        &fixture("text-threaded.pcap"),
        "--ladder",
        "--to",
        "0.3",
        "--color",
        "never",
    ]);
    let out = stdout(&o);
    assert!(
        out.contains(" C2 = 127.0.0.1:45836 (session #2)\n"),
        "{out}"
    );
    let o = run(&[
        "capture",
        "-r",
        &fixture("text-selector.pcap"),
        "--ladder",
        "-c",
        "12",
        "--color",
        "never",
    ]);
    let out = stdout(&o);
    assert!(out.contains(" C3 = "), "{out}");
    assert!(!out.contains(") from +"), "no lane is reused: {out}");
}

#[test]
fn widths_beyond_reason_and_colour_without_a_ladder_are_refused() {
    for args in [
        &["--ladder", "--width", "18446744073709551615"][..],
        &["--hex", "--width", "1001"],
        &["--color", "never"],
    ] {
        let mut all = vec!["capture", "-r", "fixtures/v2-echo.pcap"];
        all.extend_from_slice(args);
        let o = rc1()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(&all)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = run(&["lab", "4", "--width", "100000", "--fixture", "--port", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("too wide"), "{}", stderr(&o));
}
