//! `rc1 framing`: the help documents every key, `check` prints a layout or
//! the mistake at its line:col, `show` prints the built-in files.

use crate::util::{run, stderr, stdout};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_help_documents_every_key_and_both_builtins() {
    let out = run(&["framing", "--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for key in [
        "name =",
        "description =",
        "struct =",
        "names =",
        "byte_order =",
        "echo_key =",
        "max_body =",
        "show =",
        "port =",
        "filter_prefix =",
        "type =",
        "pad =",
        "length =",
        "equals =",
        "expect =",
        "checksum =",
        "over =",
        "[[field]]",
        "[field.NAME]",
    ] {
        assert!(help.contains(key), "--help lacks {key}");
    }
    assert!(help.contains("FROM A STRUCT FORMAT, IN 3 STEPS"), "{help}");
    assert!(help.contains("struct = \"!BLL20s\"") && help.contains("type = \"body\""));
    assert!(help.contains("\"@\""), "the help says what @ means");
}

#[test]
fn check_prints_the_layout_of_each_fixture_framing() {
    let file = format!("{ROOT}/fixtures/framings/crc-trailer.toml");
    let out = run(&["framing", "check", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("7-byte header, a body, then a 4-byte trailer"),
        "{text}"
    );
    assert!(text.contains("body end + 0     4  crc"), "{text}");
    assert!(
        text.contains("check: crc = crc32 over version, seq, length, payload"),
        "{text}"
    );
    for name in ["le16", "typed"] {
        let out = run(&[
            "framing",
            "check",
            &format!("{ROOT}/fixtures/framings/{name}.toml"),
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stdout(&out).starts_with(&format!("framing {name} ")));
    }
}

#[test]
fn check_refuses_a_bad_file_at_its_line_and_column() {
    let dir = std::env::temp_dir().join(format!("rc1-framing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[field]]\nname = \"m\"\ntype = \"body\"\nlength = \"n\"\n",
    )
    .unwrap();
    let out = run(&["framing", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert_eq!(
        err.trim(),
        format!(
            "rc1 framing check: {}:5:10: length names \"n\", which is no field; \
             add an unsigned integer field (e.g. type = \"L\") before \"m\" and name it here",
            bad.display()
        )
    );
    let missing = dir.join("nope.toml");
    let out = run(&["framing", "check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the framing file"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn show_prints_the_builtin_files() {
    for name in ["v2", "v3"] {
        let out = run(&["framing", "show", name]);
        assert!(out.status.success());
        let want = std::fs::read_to_string(format!("{ROOT}/framings/{name}.toml")).unwrap();
        assert_eq!(stdout(&out), want);
        // And the built-in name checks as a framing.
        let out = run(&["framing", "check", name]);
        assert!(stdout(&out).starts_with(&format!("framing {name} (builtin:{name})")));
    }
    let out = run(&["framing", "show", "v4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the built-in ones are v2, v3"));
}

#[test]
fn check_and_show_take_json_and_quiet() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/framings/crc-trailer.toml"
    );
    let o = run(&["framing", "check", file, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["name"], "crc-trailer");
    assert_eq!(v["echo_key"], "seq");
    let names: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["version", "seq", "length", "payload", "crc"]);
    assert_eq!(
        v["fields"][4]["from"], "body_end",
        "the trailer sits after the body"
    );
    assert_eq!(v["checks"][1]["algorithm"], "crc32");
    let o = run(&["framing", "check", file, "-q"]);
    assert!(o.status.success());
    assert!(stdout(&o).is_empty());
    let o = run(&["framing", "show", "v3", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["text"].as_str().unwrap().contains("name = \"v3\""), "{v}");
    // -q on a bad file: nothing on stdout, the mistake on stderr, status 1.
    let dir = std::env::temp_dir().join(format!("rc1-framing-q-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "struct = \"!BQz\"\n").unwrap();
    let o = run(&["framing", "check", bad.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
    assert!(stderr(&o).contains("bad.toml:1:"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
