//! Framings from a file: a small TOML description of a binary framing
//! (`rc1 framing --help` documents every key), its parser ([`parse`],
//! [`load`]), the built-in `v2` and `v3` files ([`builtin`]), and a codec
//! that encodes and parses any such framing ([`codec`]).
//!
//! A loaded framing is a [`FramingDef`]: the field spec every reader of
//! fields already knows ([`crate::spec::FramingSpec`]) plus what the file
//! adds: checks, the echo key, the largest body believed, the line shown
//! per frame, the port. Definitions live for the whole process (a process
//! loads a handful): [`load`] and [`builtin`] hand out `&'static` ones.
//!
//! The built-in files `framings/v2.toml` and `framings/v3.toml` are the
//! documented truth of the lab's framings; [`crate::spec::V2`] and
//! [`crate::spec::V3`] are their compiled form, and a test proves the two
//! agree field for field.

pub mod codec;
mod file;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::OnceLock;

use crate::spec::{Check, Field, FramingSpec};

/// The built-in framing files, by name, as embedded in the binary.
pub const BUILTIN_FILES: &[(&str, &str)] = &[
    ("v2", include_str!("../../framings/v2.toml")),
    ("v3", include_str!("../../framings/v3.toml")),
];

/// Default largest body a framing believes (`max_body`): 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// Default port (`port`): the lab's 5005.
pub const DEFAULT_PORT: u16 = 5005;

/// One piece of a `show` template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowPart {
    /// Text shown as written (`{{` and `}}` already turned into braces).
    Text(&'static str),
    /// A field's value: an integer in decimal, bytes escaped (no quotes:
    /// the template writes them).
    Field(&'static str),
}

/// A framing loaded from a file: the field spec and what the file adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingDef {
    /// The fields, in wire order (`name`, offsets, widths, kinds), as
    /// every field reader of rc1 takes them.
    pub spec: FramingSpec,
    /// `description`: one line about the framing (may be empty).
    pub description: &'static str,
    /// The checks (`equals`, `expect`, `checksum`), in field order.
    pub checks: &'static [Check],
    /// `echo_key`: the field an echo must match its request on; `None`
    /// means the whole frame's bytes.
    pub echo_key: Option<&'static str>,
    /// `max_body`: the largest body length believed; a larger length is
    /// refused before anything is read or reserved.
    pub max_body: u64,
    /// `show`: the text line per frame.
    pub show: &'static [ShowPart],
    /// `port`: the TCP port the framing is spoken on.
    pub port: u16,
    /// Where the definition came from: a path, or `builtin:v2`.
    pub origin: &'static str,
    /// The file's text as read.
    pub source: &'static str,
}

impl FramingDef {
    /// The field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.spec.field(name)
    }

    /// Whether the framing has a fixed frame size (no body).
    pub fn is_fixed(&self) -> bool {
        self.spec.body().is_none()
    }

    /// The `show` line for a decoded frame: each `{field}` replaced by its
    /// value (integers in decimal, bytes escaped as `rc1 capture` escapes
    /// messages: `\n`, `\xFF`, `\"`).
    pub fn show_line(&self, values: &crate::spec::FieldValues<'_>) -> String {
        use crate::escape;
        use crate::spec::Value;
        let mut out = String::with_capacity(64);
        for part in self.show {
            match *part {
                ShowPart::Text(t) => out.push_str(t),
                ShowPart::Field(name) => match values.get(name) {
                    Some(Value::Uint(n)) => escape::push_u64(&mut out, n),
                    Some(Value::Int(n)) => out.push_str(&n.to_string()),
                    Some(Value::Bytes { content, .. }) => escape::escape_into(&mut out, content),
                    None => {}
                },
            }
        }
        out
    }
}

/// Why a framing file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The file could not be read.
    Io {
        /// The path.
        file: String,
        /// What the system said.
        error: String,
    },
    /// The file was read but is not a usable framing.
    Bad {
        /// The file name as given.
        file: String,
        /// 1-based line of the mistake.
        line: usize,
        /// 1-based column (in characters) of the mistake.
        col: usize,
        /// What is wrong.
        what: String,
        /// What to write instead.
        fix: String,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::Io { file, error } => {
                write!(f, "{file}: cannot read the framing file: {error}")
            }
            FramingError::Bad {
                file,
                line,
                col,
                what,
                fix,
            } => write!(f, "{file}:{line}:{col}: {what}; {fix}"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Parses the text of a framing file. `file_name` is used in error
/// messages (`FILE:LINE:COL: what is wrong; what to write instead`) and
/// as the definition's [`FramingDef::origin`]. The definition's strings
/// are leaked to make them `'static`: parse a handful of files per
/// process, not one per packet.
pub fn parse(text: &str, file_name: &str) -> Result<FramingDef, FramingError> {
    file::parse(text, file_name)
}

/// Reads and parses the framing file at `path`, for the rest of the
/// process. A name of a built-in framing (`v2`, `v3`) that is not a file
/// on disk loads the built-in one.
pub fn load(path: &str) -> Result<&'static FramingDef, FramingError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Box::leak(Box::new(parse(&text, path)?))),
        Err(e) => match builtin(path) {
            Some(def) if e.kind() == std::io::ErrorKind::NotFound => Ok(def),
            _ => Err(FramingError::Io {
                file: path.to_string(),
                error: e.to_string(),
            }),
        },
    }
}

/// A built-in framing by name (`v2`, `v3`), parsed from its embedded file
/// once per process.
pub fn builtin(name: &str) -> Option<&'static FramingDef> {
    static DEFS: OnceLock<Vec<FramingDef>> = OnceLock::new();
    DEFS.get_or_init(|| {
        BUILTIN_FILES
            .iter()
            .filter_map(|(n, text)| parse(text, &format!("builtin:{n}")).ok())
            .collect()
    })
    .iter()
    .find(|d| d.spec.name == name)
}

/// The embedded text of a built-in framing file (`rc1 framing show`).
pub fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// What `rc1 framing check --json` prints: the layout of a framing as one
/// JSON object (fields with offsets, widths and types, checks, limits).
pub fn layout_json(def: &FramingDef) -> serde_json::Value {
    use crate::spec::{Check, FieldKind};
    use serde_json::json;
    let s = &def.spec;
    let mut after_body = false;
    let fields: Vec<serde_json::Value> = s
        .fields
        .iter()
        .map(|f| {
            let (kind, extra) = match f.kind {
                FieldKind::SizedBy(by) => ("body", json!({"length": by})),
                FieldKind::FixedBytes { pad, len_by } => (
                    "bytes",
                    json!({"length": len_by, "pad": char::from(pad).to_string()}),
                ),
                FieldKind::Bytes { pad } => ("bytes", json!({"pad": char::from(pad).to_string()})),
                k => match k.int_shape() {
                    Some((width, signed, big_endian)) => (
                        "int",
                        json!({"bytes": width, "signed": signed, "big_endian": big_endian}),
                    ),
                    None => ("?", json!({})),
                },
            };
            let v = json!({
                "name": f.name,
                "filter": f.filter,
                "type": kind,
                "offset": f.offset,
                "from": if after_body { "body_end" } else { "start" },
                "width": f.width,
                "detail": extra,
            });
            if matches!(f.kind, FieldKind::SizedBy(_)) {
                after_body = true;
            }
            v
        })
        .collect();
    let checks: Vec<serde_json::Value> = def
        .checks
        .iter()
        .map(|c| match *c {
            Check::Equals { field, value } => {
                json!({"check": "equals", "field": field, "value": value.to_string()})
            }
            Check::Expect { field, value } => {
                json!({"check": "expect", "field": field, "value": value.to_string()})
            }
            Check::Checksum {
                field,
                algorithm,
                over,
            } => json!({"check": "checksum", "field": field, "algorithm": algorithm.name(), "over": over}),
        })
        .collect();
    json!({
        "name": s.name,
        "origin": def.origin,
        "description": def.description,
        "struct": s.python_format,
        "fixed": def.is_fixed(),
        "header_len": s.header_len(),
        "trailer_len": s.trailer_len(),
        "fields": fields,
        "checks": checks,
        "echo_key": def.echo_key,
        "max_body": def.max_body,
        "port": def.port,
    })
}

/// What `rc1 framing check` prints: the layout of a framing, one field a
/// line (offset, width, type, role), then its checks and limits.
pub fn layout(def: &FramingDef) -> String {
    use crate::spec::FieldKind;
    use std::fmt::Write as _;
    let s = &def.spec;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "framing {} ({}): {}",
        s.name,
        def.origin,
        if def.is_fixed() {
            format!("fixed frames of {} bytes", s.fixed_len())
        } else {
            match s.trailer_len() {
                0 => format!("{}-byte header, then a body", s.header_len()),
                t => format!(
                    "{}-byte header, a body, then a {t}-byte trailer",
                    s.header_len()
                ),
            }
        }
    );
    if !def.description.is_empty() {
        let _ = writeln!(out, "  {}", def.description);
    }
    let _ = writeln!(out, "  struct: {}", s.python_format);
    let mut after_body = false;
    for f in s.fields {
        let at = if after_body {
            format!("body end + {}", f.offset)
        } else {
            f.offset.to_string()
        };
        let (ty, role) = match f.kind {
            FieldKind::SizedBy(by) => ("body".to_string(), format!("length from {by}")),
            FieldKind::FixedBytes { pad, len_by } => (
                format!("{}s", f.width),
                format!(
                    "content is the first min({len_by}, {}) bytes, padded with {:?}",
                    f.width,
                    char::from(pad)
                ),
            ),
            FieldKind::Bytes { pad } => (
                format!("{}s", f.width),
                format!("padded with {:?}", char::from(pad)),
            ),
            k => {
                let (w, signed, be) = k.int_shape().unwrap_or((0, false, true));
                let code = file::int_code(w, signed);
                let order = if w == 1 {
                    ""
                } else if be {
                    ", big-endian"
                } else {
                    ", little-endian"
                };
                let sizes = s
                    .fields
                    .iter()
                    .filter(|g| match g.kind {
                        FieldKind::SizedBy(by) | FieldKind::FixedBytes { len_by: by, .. } => {
                            by == f.name
                        }
                        _ => false,
                    })
                    .map(|g| format!("length of {}", g.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    code.to_string(),
                    format!(
                        "{}{order}{}{sizes}",
                        if signed { "signed" } else { "unsigned" },
                        if sizes.is_empty() { "" } else { "; " }
                    ),
                )
            }
        };
        let width = if f.width == 0 {
            "var".to_string()
        } else {
            f.width.to_string()
        };
        let _ = writeln!(out, "  {at:>14}  {width:>4}  {:<12} {ty:<5} {role}", f.name);
        after_body |= matches!(f.kind, FieldKind::SizedBy(_));
    }
    for c in def.checks {
        let _ = match c {
            Check::Equals { field, value } => {
                writeln!(
                    out,
                    "  check: {field} must equal {value} (framing.constant)"
                )
            }
            Check::Expect { field, value } => writeln!(
                out,
                "  check: {field} is expected to be {value} (framing.unexpected_value, reported only)"
            ),
            Check::Checksum {
                field,
                algorithm,
                over,
            } => writeln!(
                out,
                "  check: {field} = {} over {} (framing.checksum)",
                algorithm.name(),
                over.join(", ")
            ),
        };
    }
    let _ = writeln!(
        out,
        "  echo key: {}",
        def.echo_key.unwrap_or("(the whole frame's bytes)")
    );
    if !def.is_fixed() {
        let _ = writeln!(out, "  max body: {} bytes", def.max_body);
    }
    let show: String = def
        .show
        .iter()
        .map(|p| match p {
            ShowPart::Text(t) => t.replace('{', "{{").replace('}', "}}"),
            ShowPart::Field(f) => format!("{{{f}}}"),
        })
        .collect();
    let _ = writeln!(out, "  show: {show}");
    let _ = writeln!(out, "  port: {}", def.port);
    out
}

/// `rc1 framing --help`: the file format, every key.
pub const HELP: &str = include_str!("help.txt");
