//! Golden files: the `--json` output of `rc1 capture -r` for every fixture,
//! checked in under tests/golden/. The output is deterministic (capture
//! timestamps, sessions in order), so any change shows up as a diff to
//! review. Refresh with `RC1_BLESS=1 cargo test golden` and read the diff
//! before committing it.

use crate::util::run;

#[test]
fn json_output_of_every_fixture_matches_its_golden_file() {
    let root = env!("CARGO_MANIFEST_DIR");
    let bless = std::env::var("RC1_BLESS").is_ok_and(|v| v == "1");
    let mut names: Vec<String> = std::fs::read_dir(format!("{root}/fixtures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixtures missing: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let file = format!("{root}/fixtures/{name}");
        let out = run(&["capture", "-r", &file, "--json"]);
        let mut got = String::from_utf8(out.stdout).unwrap();
        // The exit status belongs to the golden record too (truncated.pcap: 1).
        got.push_str(&format!("# exit {}\n", out.status.code().unwrap_or(-1)));
        let golden = format!("{root}/tests/golden/{name}.jsonl");
        if bless {
            std::fs::create_dir_all(format!("{root}/tests/golden")).unwrap();
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!("{golden} is missing: run `RC1_BLESS=1 cargo test golden` and review it")
        });
        if want != got {
            failures.push(format!(
                "{name}: output differs from {golden}\n--- expected\n{want}\n--- got\n{got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(if the change is intended: RC1_BLESS=1 cargo test golden, then review the diff)",
        failures.join("\n")
    );
}
