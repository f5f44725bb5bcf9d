//! The Wireshark Lua dissector, generated from the field spec.
//!
//! [`generate`] fills `template.lua` (the dissector's logic, written once)
//! with everything the spec knows: one `ProtoField` per field under its
//! filter name, the framings' field tables (offsets, widths, kinds, the
//! padding byte, which field sizes which), the diagnostic codes and their
//! wording, the port, the lab's version byte, the maximum frame and the
//! auto-detection rules. Add a field to [`crate::spec`] and it appears in
//! the generated Lua with no hand edit; `dissectors/rc1.lua` is this
//! function's output, checked byte for byte by a test.
//!
//! `rc1 dissector --install` and `--check` ([`install`], [`check`]) put it
//! where Wireshark looks and ask tshark whether it loads.
//!
//! A framing file gets its own dissector: [`generate_framing`] (module
//! `custom`, template `framing.lua`), installed as `NAME.lua`
//! ([`install_as`]) and checked by [`check_framing`].

mod custom;

pub use custom::{file_name, generate_framing, max_body_warning, protocol_name};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::spec::{self, Diagnostic, FieldKind, FramingSpec};

const TEMPLATE: &str = include_str!("template.lua");

/// What the dissector is generated from.
#[derive(Debug, Clone, Copy)]
pub struct DissectorSpec {
    /// The framings, in the order auto-detection tries them.
    pub framings: &'static [FramingSpec],
    /// Every diagnostic code (the dissector registers those it reports).
    pub diagnostics: &'static [Diagnostic],
    /// The lab's port.
    pub port: u16,
    /// Default largest v3 message.
    pub max_frame: u32,
    /// The version byte the lab's clients send.
    pub lab_version: u8,
    /// Client bytes auto-detection looks at, at most.
    pub detect_limit: usize,
    /// The rules of automatic framing, in words.
    pub rules: &'static str,
}

/// The dissector of rc1's own spec.
pub const RC1: DissectorSpec = DissectorSpec {
    framings: spec::FRAMINGS,
    diagnostics: spec::DIAGNOSTICS,
    port: 5005,
    max_frame: spec::DEFAULT_MAX_FRAME,
    lab_version: spec::LAB_VERSION,
    detect_limit: crate::capture::session::DETECT_LIMIT,
    rules: spec::AUTO_RULES,
};

/// The diagnostics the dissector reports, with their expert group and
/// severity: problems visible in one frame or at the end of a stream.
const EXPERTS: &[(&str, &str, &str)] = &[
    (spec::V3_SIZE_OVER_MAX.code, "MALFORMED", "ERROR"),
    (spec::V2_SIZE_OVER_20.code, "PROTOCOL", "NOTE"),
    (spec::V2_BAD_PADDING.code, "PROTOCOL", "WARN"),
    (spec::FRAME_UNEXPECTED_VERSION.code, "PROTOCOL", "WARN"),
    (spec::FRAME_TRUNCATED.code, "MALFORMED", "WARN"),
    (spec::FRAME_DAMAGED.code, "MALFORMED", "WARN"),
    (spec::FRAME_UNSYNCHRONISED.code, "MALFORMED", "WARN"),
    (spec::FRAME_PARTIAL.code, "SEQUENCE", "NOTE"),
];

/// A Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{:03}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The Lua key of a field: its filter name without `rc1.`.
fn key(filter: &str) -> &str {
    filter.strip_prefix("rc1.").unwrap_or(filter)
}

/// The Lua dissector for `spec`, as text.
pub fn generate(spec: &DissectorSpec) -> Result<String> {
    // Fields: each filter name once, with one kind across framings.
    let mut fields: Vec<(&str, &'static spec::Field)> = Vec::new();
    for framing in spec.framings {
        let mut after_body = false;
        for f in framing.fields {
            if after_body || matches!(f.kind, FieldKind::Int { .. } | FieldKind::Bytes { .. }) {
                bail!(
                    "field {} of framing {}: the Lua template reads only u8, u32 \
                     (big-endian) and message fields, with nothing after the message",
                    f.name,
                    framing.name
                );
            }
            after_body |= matches!(f.kind, FieldKind::SizedBy(_));
            if !f.filter.starts_with("rc1.") {
                bail!(
                    "field {} has filter {}: it must start with rc1.",
                    f.name,
                    f.filter
                );
            }
            match fields.iter().find(|(k, _)| *k == f.filter) {
                Some((_, g)) if lua_type(g.kind) != lua_type(f.kind) => bail!(
                    "field {} is {} in one framing and {} in another",
                    f.filter,
                    lua_type(g.kind),
                    lua_type(f.kind)
                ),
                Some(_) => {}
                None => fields.push((f.filter, f)),
            }
        }
    }
    let mut field_decls = String::new();
    for (filter, f) in &fields {
        let k = key(filter);
        let label = lua_str(f.name);
        let desc = lua_str(f.description);
        let _ = match f.kind {
            FieldKind::U8 => writeln!(
                field_decls,
                "F[{}] = ProtoField.uint8({}, {label}, base.DEC, nil, nil, {desc})",
                lua_str(k),
                lua_str(filter)
            ),
            FieldKind::U32Be => writeln!(
                field_decls,
                "F[{}] = ProtoField.uint32({}, {label}, base.DEC, nil, nil, {desc})",
                lua_str(k),
                lua_str(filter)
            ),
            FieldKind::Int { .. } | FieldKind::Bytes { .. } => {
                bail!("field {filter}: no Lua type for {:?}", f.kind)
            }
            FieldKind::FixedBytes { .. } | FieldKind::SizedBy(_) => writeln!(
                field_decls,
                "F[{}] = ProtoField.string({}, {label}, base.ASCII, {desc})",
                lua_str(k),
                lua_str(filter)
            ),
        };
    }
    let mut field_list = vec!["F.framing".to_string(), "F.direction".to_string()];
    field_list.extend(
        fields
            .iter()
            .map(|(filter, _)| format!("F[{}]", lua_str(key(filter)))),
    );
    field_list.push("F.padding".into());

    let mut experts = String::new();
    let mut expert_list = Vec::new();
    for (code, group, severity) in EXPERTS {
        let Some(d) = spec.diagnostics.iter().find(|d| d.code == *code) else {
            bail!("diagnostic {code} is not in the spec");
        };
        let _ = writeln!(
            experts,
            "E[{}] = ProtoExpert.new({}, {}, expert.group.{group}, expert.severity.{severity})",
            lua_str(d.code),
            lua_str(&format!("rc1.{}", d.code)),
            lua_str(&format!("[{}] {}", d.code, d.summary)),
        );
        expert_list.push(format!("E[{}]", lua_str(d.code)));
    }

    let mut framings = String::new();
    for framing in spec.framings {
        let sized = framing
            .fields
            .iter()
            .any(|f| matches!(f.kind, FieldKind::SizedBy(_)));
        let _ = writeln!(
            framings,
            "  [{}] = {{ name = {}, python_format = {}, sized = {sized}, fields = {{",
            lua_str(framing.name),
            lua_str(framing.name),
            lua_str(framing.python_format)
        );
        for f in framing.fields {
            let name = lua_str(key(f.filter));
            let (o, w) = (f.offset, f.width);
            let _ = match f.kind {
                FieldKind::U8 => writeln!(
                    framings,
                    "    {{ name = {name}, kind = \"u8\", offset = {o}, width = {w} }},"
                ),
                FieldKind::U32Be => writeln!(
                    framings,
                    "    {{ name = {name}, kind = \"u32\", offset = {o}, width = {w} }},"
                ),
                FieldKind::FixedBytes { pad, len_by } => writeln!(
                    framings,
                    "    {{ name = {name}, kind = \"fixed\", offset = {o}, width = {w}, pad = {pad}, len_by = {} }},",
                    lua_str(len_by)
                ),
                FieldKind::Int { .. } | FieldKind::Bytes { .. } => {
                    bail!("field {}: no Lua kind for {:?}", f.name, f.kind)
                }
                FieldKind::SizedBy(by) => writeln!(
                    framings,
                    "    {{ name = {name}, kind = \"sized\", offset = {o}, width = 0, by = {} }},",
                    lua_str(by)
                ),
            };
        }
        framings.push_str("  } },\n");
    }
    let framing_names: Vec<String> = spec.framings.iter().map(|f| lua_str(f.name)).collect();

    let rules: String = spec
        .rules
        .lines()
        .map(|l| {
            if l.is_empty() {
                "--\n".to_string()
            } else {
                format!("-- {l}\n")
            }
        })
        .collect();

    let header = format!(
        "-- rc1.lua: Wireshark dissector for the rc1 sockets lab (v2, v3, text, UDP).\n\
         --\n\
         -- GENERATED by `rc1 dissector` (rc1 {version}) from rc1's field spec\n\
         -- (src/spec.rs: {formats}). Do not edit: change the spec, then run\n\
         --   rc1 dissector -o dissectors/rc1.lua\n\
         --\n\
         -- Load it:\n\
         --   wireshark -X lua_script:dissectors/rc1.lua capture.pcap\n\
         --   tshark -X lua_script:dissectors/rc1.lua -o tcp.reassemble_out_of_order:TRUE -r capture.pcap\n\
         -- or install it in your personal Lua plugins folder: rc1 dissector --install\n\
         --\n\
         -- Display filters: {filters}, rc1.framing, rc1.direction;\n\
         -- expert info under rc1 capture's diagnostic codes (e.g. rc1.v3.size_over_max).",
        version = env!("CARGO_PKG_VERSION"),
        formats = spec
            .framings
            .iter()
            .map(|f| format!("{} {}", f.name, f.python_format))
            .collect::<Vec<_>>()
            .join(", "),
        filters = fields
            .iter()
            .map(|(f, _)| *f)
            .collect::<Vec<_>>()
            .join(", "),
    );

    let mut out = TEMPLATE.to_string();
    for (marker, value) in [
        ("--@@HEADER@@", header),
        ("@@RC1_VERSION@@", env!("CARGO_PKG_VERSION").to_string()),
        ("@@PORT@@", spec.port.to_string()),
        ("@@MAX_FRAME@@", spec.max_frame.to_string()),
        ("@@LAB_VERSION@@", spec.lab_version.to_string()),
        ("@@DETECT_LIMIT@@", spec.detect_limit.to_string()),
        (
            "@@MIDSTREAM_SEARCH@@",
            crate::codec::detect::MIDSTREAM_SEARCH.to_string(),
        ),
        ("@@FIELDS@@\n", field_decls),
        ("@@FIELD_LIST@@", field_list.join(", ")),
        ("@@EXPERTS@@\n", experts),
        ("@@EXPERT_LIST@@", expert_list.join(", ")),
        ("@@FRAMINGS@@\n", framings),
        ("@@FRAMING_NAMES@@", framing_names.join(", ")),
        ("@@RULES@@\n", rules),
    ] {
        if !out.contains(marker) {
            bail!("template has no {marker}");
        }
        out = out.replace(marker, &value);
    }
    if let Some(at) = out.find("@@") {
        bail!("template marker left unfilled at byte {at}");
    }
    Ok(out)
}

fn lua_type(k: FieldKind) -> &'static str {
    match k {
        FieldKind::U8 => "uint8",
        FieldKind::U32Be => "uint32",
        FieldKind::FixedBytes { .. } | FieldKind::SizedBy(_) => "string",
        FieldKind::Int { .. } => "int",
        FieldKind::Bytes { .. } => "bytes",
    }
}

/// Runs tshark with `args`; its stdout, or why it could not run.
fn tshark(args: &[&str]) -> Result<String> {
    let out = Command::new("tshark").args(args).output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run tshark ({e}): install Wireshark's command-line tools \
             (Debian/Ubuntu: apt-get install tshark)"
        )
    })?;
    if !out.status.success() {
        bail!(
            "tshark {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Wireshark's personal Lua plugins folder: from `tshark -G folders` when
/// tshark is there, else the documented default.
pub fn plugins_folder() -> Result<(PathBuf, &'static str)> {
    if let Ok(folders) = tshark(&["-G", "folders"]) {
        for line in folders.lines() {
            if let Some(rest) = line.strip_prefix("Personal Lua Plugins:") {
                return Ok((PathBuf::from(rest.trim()), "from tshark -G folders"));
            }
        }
    }
    let home = std::env::var_os("HOME")
        .context("HOME is not set: cannot find the personal plugins folder")?;
    Ok((
        Path::new(&home).join(".local/lib/wireshark/plugins"),
        "Wireshark's default: tshark was not found",
    ))
}

/// Writes the dissector into the personal Lua plugins folder; returns
/// the path written.
pub fn install(lua: &str) -> Result<(PathBuf, &'static str)> {
    install_as(lua, "rc1.lua")
}

/// Writes the dissector `lua` into the personal Lua plugins folder as
/// `file` (e.g. `le16.lua`); returns the path written and how the folder
/// was found.
pub fn install_as(lua: &str, file: &str) -> Result<(PathBuf, &'static str)> {
    let (dir, how) = plugins_folder()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(file);
    std::fs::write(&path, lua).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, how))
}

/// What `rc1 dissector --check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// The plugin file tshark lists.
    pub plugin: String,
    /// The `rc1.*` fields Wireshark knows.
    pub fields: Vec<String>,
    /// Wireshark's Lua version, e.g. `Lua 5.2.4`.
    pub lua: String,
    /// Whether the installed file is what this rc1 generates.
    pub current: bool,
}

/// Asks the installed Wireshark whether it loads the dissector: the plugin
/// list, the `rc1.*` fields, and the Lua version it was built with.
pub fn check(spec: &DissectorSpec) -> Result<CheckReport> {
    let generated = generate(spec)?;
    let want: Vec<&str> = spec
        .framings
        .iter()
        .flat_map(|f| f.fields.iter().map(|f| f.filter))
        .collect();
    check_plugin(
        "rc1.lua",
        "rc1",
        &generated,
        &want,
        ("", "dissectors/rc1.lua", ""),
    )
}

/// [`check`] for the dissector of a framing file: Wireshark lists
/// `NAME.lua`, knows every field `PREFIX.*`, and the file is what
/// [`generate_framing`] makes of `def`.
pub fn check_framing(def: &crate::framing::FramingDef) -> Result<CheckReport> {
    let generated = generate_framing(def)?;
    let want: Vec<&str> = def.spec.fields.iter().map(|f| f.filter).collect();
    let again = format!(" --framing {}", def.origin);
    let file = file_name(def);
    check_plugin(
        &file,
        protocol_name(def),
        &generated,
        &want,
        (&again, &file, " (or than the framing file)"),
    )
}

/// Whether tshark loads the plugin `file`, knows the fields `want`
/// (prefix `prefix.`) and runs the file `generated`. The advice: what to
/// add to `rc1 dissector`, the file to load with `-X lua_script:`, and
/// what else the installed file may be older than.
fn check_plugin(
    file: &str,
    prefix: &str,
    generated: &str,
    want: &[&str],
    (args, load, older): (&str, &str, &str),
) -> Result<CheckReport> {
    // A Lua error while loading shows on stderr, not in the plugin list.
    let out = Command::new("tshark")
        .args(["-G", "plugins"])
        .output()
        .map_err(|e| {
            anyhow::anyhow!("cannot run tshark ({e}): install Wireshark's command-line tools")
        })?;
    let err = String::from_utf8_lossy(&out.stderr);
    if let Some(line) = err.lines().find(|l| l.contains(file)) {
        bail!("Wireshark fails to load {file}: {}", line.trim());
    }
    let plugins = String::from_utf8_lossy(&out.stdout);
    let is_ours = |l: &&str| {
        l.split_whitespace()
            .last()
            .and_then(|p| Path::new(p).file_name())
            .is_some_and(|n| n == file)
    };
    let Some(plugin) = plugins
        .lines()
        .find(is_ours)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    else {
        bail!(
            "tshark does not list {file} among its plugins: install it with \
             `rc1 dissector{args} --install` (or load it with -X lua_script:{load})"
        );
    };
    let all = tshark(&["-G", "fields"])?;
    let dotted = format!("{prefix}.");
    let fields: Vec<String> = all
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let (kind, abbrev) = (cols.next()?, cols.nth(1)?);
            (kind == "F" && abbrev.starts_with(&dotted)).then(|| abbrev.to_string())
        })
        .collect();
    for f in want {
        if !fields.iter().any(|x| x == f) {
            bail!(
                "Wireshark loads {file} but has no field {f}: the installed file is \
                 older than this rc1{older}; run \
                 `rc1 dissector{args} --install` again"
            );
        }
    }
    let version = tshark(&["-v"])?;
    let flat = version.split_whitespace().collect::<Vec<_>>().join(" ");
    let lua = flat
        .find("Lua ")
        .and_then(|at| flat.get(at..))
        .map(|s| s.split([',', ' ']).take(2).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "no Lua (this Wireshark cannot run Lua dissectors)".into());
    // tshark's line ends with the file's path.
    let current = plugin
        .split_whitespace()
        .last()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|text| text == generated);
    Ok(CheckReport {
        plugin,
        fields,
        lua,
        current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_field_becomes_a_protofield_and_a_table_row() {
        let lua = generate(&RC1).unwrap_or_default();
        for framing in spec::FRAMINGS {
            for f in framing.fields {
                assert!(
                    lua.contains(&format!("({}, ", lua_str(f.filter))),
                    "{} has no ProtoField",
                    f.filter
                );
            }
        }
        for (code, _, _) in EXPERTS {
            assert!(lua.contains(&format!("\"rc1.{code}\"")), "{code}");
        }
        assert!(!lua.contains("@@"));
        assert!(lua.contains("GENERATED by `rc1 dissector`"));
    }

    #[test]
    fn lua_strings_are_escaped() {
        assert_eq!(lua_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(lua_str("\u{1}"), "\"\\001\"");
    }
}
