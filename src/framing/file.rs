//! A framing file (TOML) to a [`FramingDef`]: syntax and unknown keys by
//! `toml`/`serde`, then every rule of the format checked with the span of
//! the value at fault, so each refusal is `FILE:LINE:COL: what; fix`.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{DEFAULT_MAX_BODY, DEFAULT_PORT, FramingDef, FramingError, ShowPart};
use crate::spec::{Check, ChecksumKind, Field, FieldKind, FramingSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Spanned<String>,
    description: Option<Spanned<String>>,
    #[serde(rename = "struct")]
    structure: Option<Spanned<String>>,
    names: Option<Spanned<Vec<Spanned<String>>>>,
    byte_order: Option<Spanned<String>>,
    field: Option<Spanned<FieldSection>>,
    echo_key: Option<Spanned<String>>,
    max_body: Option<Spanned<toml::Value>>,
    show: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    filter_prefix: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    ty: Option<Spanned<String>>,
    pad: Option<Spanned<String>>,
    length: Option<Spanned<String>>,
    equals: Option<Spanned<i64>>,
    expect: Option<Spanned<i64>>,
    checksum: Option<Spanned<String>>,
    over: Option<Spanned<Vec<Spanned<String>>>>,
    description: Option<Spanned<String>>,
}

/// `[[field]]` (a list, the full form) or `[field.NAME]` (overrides of a
/// `struct`'s fields).
#[derive(Debug)]
enum FieldSection {
    List(Vec<Spanned<RawField>>),
    Overrides(BTreeMap<Spanned<String>, Spanned<RawField>>),
}

impl<'de> Deserialize<'de> for FieldSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FieldSection;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[[field]] tables, or [field.NAME] tables overriding struct's fields")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FieldSection, A::Error> {
                let mut v = Vec::new();
                while let Some(f) = a.next_element()? {
                    v.push(f);
                }
                Ok(FieldSection::List(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FieldSection, A::Error> {
                let mut m = BTreeMap::new();
                while let Some((k, v)) = a.next_entry()? {
                    m.insert(k, v);
                }
                Ok(FieldSection::Overrides(m))
            }
        }
        d.deserialize_any(V)
    }
}

/// A refusal at a span, before the file name and line are known.
struct At {
    span: Range<usize>,
    what: String,
    fix: String,
}

fn at<T>(s: &Spanned<T>, what: impl Into<String>, fix: impl Into<String>) -> At {
    At {
        span: s.span(),
        what: what.into(),
        fix: fix.into(),
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The `struct` code of an integer shape (`B`, `h`, `L`...).
pub(super) fn int_code(width: u8, signed: bool) -> &'static str {
    match (width, signed) {
        (1, false) => "B",
        (1, true) => "b",
        (2, false) => "H",
        (2, true) => "h",
        (4, false) => "L",
        (4, true) => "l",
        (8, false) => "Q",
        _ => "q",
    }
}

/// One `struct` code: an integer, `Ns`, or `x` pad bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Int { width: u8, signed: bool },
    Str(usize),
    Pad(usize),
}

const CODES_FIX: &str =
    "use the struct codes B H I L Q (unsigned), b h i l q (signed), Ns (N bytes), x (a pad byte)";

fn int_of(c: char) -> Option<Code> {
    let (width, signed) = match c {
        'B' => (1, false),
        'b' => (1, true),
        'H' => (2, false),
        'h' => (2, true),
        'I' | 'L' => (4, false),
        'i' | 'l' => (4, true),
        'Q' => (8, false),
        'q' => (8, true),
        _ => return None,
    };
    Some(Code::Int { width, signed })
}

const NATIVE_FIX: &str = "`@` (and no prefix) is Python's native order *with native alignment and sizes*, \
     which depend on the machine: write `!` (network order, as the lab), `>`, `<`, \
     or `=` (this machine's order, standard sizes, no alignment)";

/// Whether a byte-order character means big-endian; `Err` (fix) for
/// refused ones.
fn order_of(c: char) -> Result<bool, String> {
    match c {
        '!' | '>' => Ok(true),
        '<' => Ok(false),
        '=' => Ok(cfg!(target_endian = "big")),
        '@' => Err(
            "`@` (and no prefix) is Python's native order *with native alignment and sizes*, \
                    which depend on the machine: write `!` (network order, as the lab), `>`, `<`, \
                    or `=` (this machine's order, standard sizes, no alignment)"
                .into(),
        ),
        _ => Err(
            "start the format with its byte order: `!` (network, as the lab), `>`, `<` or `=`"
                .into(),
        ),
    }
}

/// Parses a Python `struct` format: its byte order and codes, repeat
/// counts expanded (`2L` is two `L`, `3x` three pad bytes, `20s` one
/// field). Errors are (char offset in the format, what, fix).
fn parse_struct(fmt: &str) -> Result<(bool, Vec<Code>), (usize, String, String)> {
    let mut chars = fmt.char_indices().peekable();
    let big = match chars.next() {
        Some((i, c)) if "!<>=@".contains(c) => {
            order_of(c).map_err(|fix| (i, format!("byte order {c:?} is not supported"), fix))?
        }
        Some((i, c)) => {
            return Err((
                i,
                format!(
                    "format {fmt:?} has no byte order (Python would use native `@`, starting with {c:?})"
                ),
                NATIVE_FIX.into(),
            ));
        }
        None => {
            return Err((
                0,
                "the struct format is empty".into(),
                "write e.g. struct = \"!BLL20s\"".into(),
            ));
        }
    };
    let mut codes = Vec::new();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        let mut count: Option<usize> = None;
        let mut c = c;
        if c.is_ascii_digit() {
            let mut n: usize = 0;
            let mut cur = c;
            loop {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(cur.to_digit(10).map_or(0, |d| d as usize)))
                    .filter(|&n| n <= 65_535)
                    .ok_or((
                        i,
                        "repeat count over 65535".to_string(),
                        "use a smaller count".to_string(),
                    ))?;
                match chars.peek() {
                    Some(&(_, d)) if d.is_ascii_digit() => {
                        cur = d;
                        chars.next();
                    }
                    Some(&(_, d)) => {
                        c = d;
                        chars.next();
                        break;
                    }
                    None => {
                        return Err((i, "a count with no code after it".into(), CODES_FIX.into()));
                    }
                }
            }
            count = Some(n);
        }
        match c {
            's' => {
                let n = count.unwrap_or(1);
                if n == 0 {
                    return Err((
                        i,
                        "`0s` is a field of no bytes".into(),
                        "give the string's width, e.g. 20s".into(),
                    ));
                }
                codes.push(Code::Str(n));
            }
            'x' => {
                let n = count.unwrap_or(1);
                if n > 0 {
                    codes.push(Code::Pad(n));
                }
            }
            c => match int_of(c) {
                Some(code) => {
                    for _ in 0..count.unwrap_or(1) {
                        codes.push(code);
                    }
                }
                None => {
                    let what = if "!<>=@".contains(c) {
                        format!("byte order {c:?} in the middle of the format")
                    } else if "ne?fdpP".contains(c) {
                        format!(
                            "struct code {c:?} is not supported (floats, bools and pointers are not framings' integers)"
                        )
                    } else {
                        format!("unknown struct code {c:?}")
                    };
                    return Err((i, what, CODES_FIX.into()));
                }
            },
        }
    }
    Ok((big, codes))
}

/// A name of a field: `[a-z_][a-z0-9_]*`.
fn good_field_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A framing name: `[a-z][a-z0-9_-]*`.
fn good_framing_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|c| c.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A field being built: its name, kind and width, and the raw keys.
struct Draft {
    name: &'static str,
    name_span: Range<usize>,
    kind: FieldKind,
    width: usize,
    is_pad: bool,
    raw: Spanned<RawField>,
}

/// Parses the text of a framing file (see [`super::parse`]).
pub(super) fn parse(text: &str, file_name: &str) -> Result<FramingDef, FramingError> {
    let bad = |a: At| {
        let (line, col) = line_col(text, a.span.start);
        FramingError::Bad {
            file: file_name.to_string(),
            line,
            col,
            what: a.what,
            fix: a.fix,
        }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        let fix = if msg.contains("unknown field") {
            "rc1 framing --help lists every key a framing file may have"
        } else if msg.contains("missing field") {
            "add it (rc1 framing --help lists the keys)"
        } else if msg.contains("invalid type") {
            "give the value its type: text in double quotes, numbers bare, lists in [ ]"
        } else {
            "write TOML: key = value, text in double quotes, [[field]] for each field"
        };
        bad(At {
            span: e.span().unwrap_or(0..0),
            what: msg.replace('\n', " "),
            fix: fix.into(),
        })
    })?;
    build(raw, text, file_name).map_err(bad)
}

fn build(raw: RawFile, text: &str, file_name: &str) -> Result<FramingDef, At> {
    let name = raw.name.get_ref();
    if !good_framing_name(name) {
        return Err(at(
            &raw.name,
            format!("framing name {name:?} is not a short lower-case name"),
            "write [a-z][a-z0-9_-]*, e.g. name = \"le16\" (it becomes the Wireshark protocol name)",
        ));
    }
    let prefix = match &raw.filter_prefix {
        Some(p) if !good_framing_name(p.get_ref()) || p.get_ref().contains('-') => {
            return Err(at(
                p,
                format!("filter_prefix {:?} is not a filter name", p.get_ref()),
                "write [a-z][a-z0-9_]*, e.g. filter_prefix = \"rc1\"",
            ));
        }
        Some(p) => p.get_ref().clone(),
        None => name.replace('-', "_"),
    };

    let mut drafts: Vec<Draft> = Vec::new();
    let python_format: String;
    match (&raw.structure, raw.field) {
        (Some(st), section) => {
            if let Some(bo) = &raw.byte_order {
                return Err(at(
                    bo,
                    "byte_order given with struct",
                    "the struct format carries the byte order: remove byte_order",
                ));
            }
            let (big, codes) = parse_struct(st.get_ref()).map_err(|(i, what, fix)| {
                // The format's text starts after the opening quote.
                let start = st.span().start + 1 + i;
                At {
                    span: start..start + 1,
                    what,
                    fix,
                }
            })?;
            let named = codes.iter().filter(|c| !matches!(c, Code::Pad(_))).count();
            if named == 0 {
                return Err(at(
                    st,
                    "the struct format has no fields",
                    "write e.g. struct = \"!BLL20s\"",
                ));
            }
            let names: Vec<Spanned<String>> = match &raw.names {
                Some(n) if n.get_ref().len() != named => {
                    return Err(at(
                        n,
                        format!(
                            "{} names for {named} fields of {:?}",
                            n.get_ref().len(),
                            st.get_ref()
                        ),
                        format!("give one name per field, {named} in all (x pad bytes take none)"),
                    ));
                }
                Some(n) => n.get_ref().clone(),
                None => (1..=named)
                    .map(|i| Spanned::new(st.span(), format!("f{i}")))
                    .collect(),
            };
            let mut names = names.into_iter();
            let mut pads = 0;
            for code in codes {
                let (nm, span, kind, width, is_pad) = match code {
                    Code::Pad(n) => {
                        pads += 1;
                        (
                            format!("_pad{pads}"),
                            st.span(),
                            FieldKind::Bytes { pad: 0 },
                            n,
                            true,
                        )
                    }
                    c => {
                        let n = names
                            .next()
                            .unwrap_or_else(|| Spanned::new(st.span(), String::new()));
                        let (kind, width) = match c {
                            Code::Int { width, signed } => {
                                (FieldKind::int(width, signed, big), usize::from(width))
                            }
                            Code::Str(n) | Code::Pad(n) => (FieldKind::Bytes { pad: 0 }, n),
                        };
                        (n.get_ref().clone(), n.span(), kind, width, false)
                    }
                };
                drafts.push(Draft {
                    name: leak(&nm),
                    name_span: span.clone(),
                    kind,
                    width,
                    is_pad,
                    raw: Spanned::new(span, RawField::default()),
                });
            }
            match section {
                None => {}
                Some(s) => match s.into_inner() {
                    FieldSection::List(l) => {
                        let span = l.first().map_or(0..0, |f| f.span());
                        return Err(At { span, what: "struct and [[field]] tables together".into(), fix: "write either struct (with names, and [field.NAME] tables to add keys to a field) or [[field]] tables, one per field, not both".into() });
                    }
                    FieldSection::Overrides(m) => {
                        for (k, v) in m {
                            let Some(d) = drafts
                                .iter_mut()
                                .find(|d| !d.is_pad && d.name == k.get_ref())
                            else {
                                return Err(at(
                                    &k,
                                    format!("[field.{}] names no field of the struct", k.get_ref()),
                                    format!(
                                        "use one of the names: {}",
                                        drafts
                                            .iter()
                                            .filter(|d| !d.is_pad)
                                            .map(|d| d.name)
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                ));
                            };
                            if let Some(t) = &v.get_ref().ty {
                                return Err(at(
                                    t,
                                    "type in a [field.NAME] table",
                                    "the type comes from struct: remove it, or write the file with [[field]] tables",
                                ));
                            }
                            if let Some(n) = &v.get_ref().name {
                                return Err(at(
                                    n,
                                    "name in a [field.NAME] table",
                                    "the table's name is the field's: remove name",
                                ));
                            }
                            d.raw = v;
                        }
                    }
                },
            }
            python_format = st.get_ref().split_whitespace().collect();
        }
        (None, Some(section)) => {
            if let Some(n) = &raw.names {
                return Err(at(
                    n,
                    "names without struct",
                    "give each [[field]] its name, or write struct = \"...\" with names",
                ));
            }
            let big = match &raw.byte_order {
                None => true,
                Some(bo) => {
                    let mut c = bo.get_ref().chars();
                    match (c.next(), c.next()) {
                        (Some(ch), None) => order_of(ch).map_err(|fix| {
                            at(
                                bo,
                                format!("byte_order {:?} is not supported", bo.get_ref()),
                                fix,
                            )
                        })?,
                        _ => {
                            return Err(at(
                                bo,
                                format!("byte_order {:?} is not one character", bo.get_ref()),
                                "write byte_order = \"!\" (network), \">\", \"<\" or \"=\"",
                            ));
                        }
                    }
                }
            };
            let sspan = section.span();
            let FieldSection::List(list) = section.into_inner() else {
                return Err(At { span: sspan, what: "[field.NAME] tables without struct".into(), fix: "write [[field]] tables (double brackets), one per field in wire order, each with name and type".into() });
            };
            for f in list {
                let r = f.get_ref();
                let Some(n) = &r.name else {
                    return Err(at(
                        &f,
                        "a [[field]] without name",
                        "add name = \"...\" to the field",
                    ));
                };
                let Some(t) = &r.ty else {
                    return Err(at(
                        &f,
                        format!("field {:?} has no type", n.get_ref()),
                        "add type = \"B\" (or H I L Q b h i l q, \"20s\", \"body\")",
                    ));
                };
                let ty = t.get_ref().as_str();
                let (kind, width) = if ty == "body" {
                    (FieldKind::SizedBy(""), 0)
                } else if let Some(num) = ty.strip_suffix('s') {
                    match num.parse::<usize>() {
                        Ok(w) if w > 0 && w <= 65_535 => (FieldKind::Bytes { pad: 0 }, w),
                        _ if num.is_empty() => (FieldKind::Bytes { pad: 0 }, 1),
                        _ => {
                            return Err(at(
                                t,
                                format!("type {ty:?} is not a byte field of 1 to 65535 bytes"),
                                "write e.g. type = \"20s\"",
                            ));
                        }
                    }
                } else {
                    let mut cs = ty.chars();
                    match (cs.next().and_then(int_of), cs.next()) {
                        (Some(Code::Int { width, signed }), None) => {
                            (FieldKind::int(width, signed, big), usize::from(width))
                        }
                        _ => {
                            return Err(at(
                                t,
                                format!("unknown field type {ty:?}"),
                                "use B H I L Q (unsigned), b h i l q (signed), \"Ns\" (N bytes) or \"body\"; one field per [[field]]",
                            ));
                        }
                    }
                };
                drafts.push(Draft {
                    name: leak(n.get_ref()),
                    name_span: n.span(),
                    kind,
                    width,
                    is_pad: false,
                    raw: f,
                });
            }
            if drafts.is_empty() {
                return Err(At {
                    span: sspan,
                    what: "no fields".into(),
                    fix: "add [[field]] tables".into(),
                });
            }
            python_format = struct_of(big, &drafts);
        }
        (None, None) => {
            return Err(At { span: 0..0, what: "the file describes no fields, so it cannot frame a stream".into(), fix: "write struct = \"!BLL20s\" (a fixed size), or [[field]] tables with a body and its length field".into() });
        }
    }

    // Names: valid and unique.
    for (i, d) in drafts.iter().enumerate() {
        if d.is_pad {
            continue;
        }
        if !good_field_name(d.name) {
            return Err(At {
                span: d.name_span.clone(),
                what: format!("field name {:?} is not a plain name", d.name),
                fix: "write [a-z_][a-z0-9_]*, e.g. \"order\"".into(),
            });
        }
        if drafts.iter().take(i).any(|e| e.name == d.name) {
            return Err(At {
                span: d.name_span.clone(),
                what: format!("two fields are called {:?}", d.name),
                fix: "give each field its own name".into(),
            });
        }
    }

    // Per-field keys: pad, length, description.
    let mut descriptions = Vec::with_capacity(drafts.len());
    let mut body_at: Option<usize> = None;
    for i in 0..drafts.len() {
        let (before, rest) = drafts.split_at_mut(i);
        let Some((d, after)) = rest.split_first_mut() else {
            break;
        };
        let r = d.raw.get_ref();
        let ty_span = r.ty.as_ref().map_or(d.raw.span(), |t| t.span());
        let is_body = matches!(d.kind, FieldKind::SizedBy(_));
        let is_bytes = matches!(d.kind, FieldKind::Bytes { .. });
        let pad = match &r.pad {
            // NUL, as Python's struct pads.
            None => 0,
            Some(p) if !is_bytes => {
                return Err(at(
                    p,
                    format!("pad on field {:?}, which is not an \"Ns\" field", d.name),
                    "remove pad: only Ns fields are padded",
                ));
            }
            Some(p) => match p.get_ref().as_bytes() {
                [b] => *b,
                _ => {
                    return Err(at(
                        p,
                        format!("pad {:?} is not one byte", p.get_ref()),
                        "write one ASCII character, e.g. pad = \"-\" (or \"\\u0000\")",
                    ));
                }
            },
        };
        if let FieldKind::Bytes { .. } = d.kind {
            d.kind = FieldKind::Bytes { pad };
        }
        if is_body {
            if let Some(b) = body_at {
                return Err(At {
                    span: ty_span.clone(),
                    what: format!(
                        "a second body, {:?} (after {:?})",
                        d.name,
                        before.get(b).map_or("", |d| d.name)
                    ),
                    fix: "a frame has one body; fields after it must have fixed sizes (a trailer)"
                        .into(),
                });
            }
            body_at = Some(i);
        }
        match &r.length {
            None if is_body => {
                return Err(At {
                    span: ty_span,
                    what: format!(
                        "body {:?} has no length field, so the stream cannot be framed",
                        d.name
                    ),
                    fix: format!(
                        "add length = \"FIELD\" naming the integer field before it that counts {}'s bytes",
                        d.name
                    ),
                });
            }
            None => {}
            Some(l) if !is_body && !is_bytes => {
                return Err(at(
                    l,
                    format!("length on {:?}, an integer field", d.name),
                    "length belongs on the \"Ns\" or \"body\" field it measures",
                ));
            }
            Some(l) => {
                let by = l.get_ref().as_str();
                let Some(sizer) = before.iter().find(|e| e.name == by && !e.is_pad) else {
                    let what = if by == d.name {
                        format!("length of {by:?} names the field itself")
                    } else if after.iter().any(|e| e.name == by) {
                        format!(
                            "length field {by:?} comes after {:?}, so a reader cannot know the length in time",
                            d.name
                        )
                    } else {
                        format!("length names {by:?}, which is no field")
                    };
                    let earlier: Vec<&str> = before
                        .iter()
                        .filter(|e| !e.is_pad)
                        .map(|e| e.name)
                        .collect();
                    let fix = if after.iter().any(|e| e.name == by) {
                        format!(
                            "move {by:?} before {:?}: a length must come before what it measures",
                            d.name
                        )
                    } else if earlier.is_empty() {
                        format!(
                            "add an unsigned integer field (e.g. type = \"L\") before {:?} and name it here",
                            d.name
                        )
                    } else {
                        format!(
                            "name an unsigned integer field before {:?} (fields: {})",
                            d.name,
                            earlier.join(", ")
                        )
                    };
                    return Err(at(l, what, fix));
                };
                match sizer.kind.int_shape() {
                    Some((_, false, _)) => {}
                    Some((_, true, _)) => {
                        return Err(at(
                            l,
                            format!("length field {by:?} is signed"),
                            format!(
                                "make {by:?} unsigned (B H I L Q): a length cannot be negative"
                            ),
                        ));
                    }
                    None => {
                        return Err(at(
                            l,
                            format!("length field {by:?} is not an integer"),
                            "name an unsigned integer field (B H I L Q)",
                        ));
                    }
                }
                let by = sizer.name;
                d.kind = if is_body {
                    FieldKind::SizedBy(by)
                } else {
                    FieldKind::FixedBytes { pad, len_by: by }
                };
            }
        }
        descriptions.push(r.description.as_ref().map_or("", |s| leak(s.get_ref())));
    }

    // Offsets: from the frame's start, then from the body's end.
    let mut fields = Vec::with_capacity(drafts.len());
    let mut off = 0usize;
    for (d, desc) in drafts.iter().zip(&descriptions) {
        let (offset, next) = match d.kind {
            FieldKind::SizedBy(_) => (off, 0),
            _ => (off, off + d.width),
        };
        off = next;
        fields.push(Field {
            name: d.name,
            filter: leak(&format!("{prefix}.{}", d.name)),
            kind: d.kind,
            offset,
            width: d.width,
            description: desc,
        });
    }
    let fields: &'static [Field] = Box::leak(fields.into_boxed_slice());
    let spec = FramingSpec {
        name: leak(name),
        python_format: leak(&python_format),
        fields,
    };

    // Checks.
    let int_names = || {
        drafts
            .iter()
            .filter(|d| d.kind.int_shape().is_some())
            .map(|d| d.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut checks = Vec::new();
    for d in &drafts {
        let r = d.raw.get_ref();
        if let (Some(_), Some(x)) = (&r.equals, &r.expect) {
            return Err(at(
                x,
                format!("both equals and expect on {:?}", d.name),
                "keep one: equals refuses a frame with another value, expect only reports it",
            ));
        }
        if let (Some(e), Some(_)) = (&r.equals, &r.checksum) {
            return Err(at(
                e,
                format!("equals on the checksum field {:?}", d.name),
                "remove equals: a checksum's value is computed from the fields it covers",
            ));
        }
        for (key, v, equals) in [("equals", &r.equals, true), ("expect", &r.expect, false)] {
            let Some(v) = v else { continue };
            let Some((lo, hi)) = d.kind.int_range() else {
                return Err(at(
                    v,
                    format!("{key} on {:?}, which is not an integer field", d.name),
                    format!("{key} applies to integer fields ({})", int_names()),
                ));
            };
            let value = i128::from(*v.get_ref());
            if value < lo || value > hi {
                return Err(at(
                    v,
                    format!("{key} = {value} does not fit {:?} ({lo}..={hi})", d.name),
                    "write a value the field can hold",
                ));
            }
            checks.push(if equals {
                Check::Equals {
                    field: d.name,
                    value,
                }
            } else {
                Check::Expect {
                    field: d.name,
                    value,
                }
            });
        }
        match (&r.checksum, &r.over) {
            (None, None) => {}
            (None, Some(o)) => {
                return Err(at(
                    o,
                    format!("over on {:?} without checksum", d.name),
                    "add checksum = \"crc32\" or \"internet\", or remove over",
                ));
            }
            (Some(c), None) => {
                return Err(at(
                    c,
                    format!("checksum on {:?} without over", d.name),
                    "add over = [\"field\", ...]: the fields it covers, in the order summed",
                ));
            }
            (Some(c), Some(o)) => {
                let algorithm = match c.get_ref().as_str() {
                    "crc32" => ChecksumKind::Crc32,
                    "internet" => ChecksumKind::Internet,
                    other => {
                        return Err(at(
                            c,
                            format!("unknown checksum {other:?}"),
                            "write checksum = \"crc32\" (Python's zlib.crc32) or \"internet\" (RFC 1071)",
                        ));
                    }
                };
                match d.kind.int_shape() {
                    Some((w, false, _)) if usize::from(w) == algorithm.width() => {}
                    _ => {
                        return Err(at(
                            c,
                            format!(
                                "checksum {} on {:?}: it needs an unsigned field of {} bytes",
                                algorithm.name(),
                                d.name,
                                algorithm.width()
                            ),
                            if algorithm == ChecksumKind::Crc32 {
                                "make the field type I or L"
                            } else {
                                "make the field type H"
                            },
                        ));
                    }
                }
                if o.get_ref().is_empty() {
                    return Err(at(
                        o,
                        "checksum over no fields",
                        "list the fields it covers, e.g. over = [\"version\", \"message\"]",
                    ));
                }
                let mut over = Vec::new();
                for n in o.get_ref() {
                    let Some(g) = drafts.iter().find(|g| g.name == n.get_ref() && !g.is_pad) else {
                        return Err(at(
                            n,
                            format!("checksum over {:?}, which is no field", n.get_ref()),
                            format!(
                                "name fields of this framing ({})",
                                drafts
                                    .iter()
                                    .filter(|e| !e.is_pad)
                                    .map(|e| e.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    };
                    if g.name == d.name {
                        return Err(at(
                            n,
                            format!("checksum {:?} over itself", d.name),
                            "list the other fields it covers",
                        ));
                    }
                    if over.contains(&g.name) {
                        return Err(at(
                            n,
                            format!("checksum {:?} covers {:?} twice", d.name, g.name),
                            "name each field it covers once",
                        ));
                    }
                    over.push(g.name);
                }
                checks.push(Check::Checksum {
                    field: d.name,
                    algorithm,
                    over: Box::leak(over.into_boxed_slice()),
                });
            }
        }
    }

    let echo_key = match &raw.echo_key {
        None => None,
        Some(k) => match spec.field(k.get_ref()) {
            Some(f) if !f.name.starts_with("_pad") => Some(f.name),
            _ => {
                return Err(at(
                    k,
                    format!("echo_key {:?} is no field", k.get_ref()),
                    format!(
                        "name a field ({}), or remove echo_key to match echoes on the whole frame",
                        fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        },
    };

    let max_body = match &raw.max_body {
        None => DEFAULT_MAX_BODY,
        Some(m) if spec.body().is_none() => {
            return Err(at(
                m,
                "max_body, but this framing has no body (its frames have a fixed size)",
                "remove max_body",
            ));
        }
        Some(m) => {
            let fix = "write a byte count: max_body = 65536, or \"64k\", \"1M\"";
            match m.get_ref() {
                toml::Value::Integer(n) if *n >= 0 => *n as u64,
                toml::Value::String(s) => {
                    u64::from(crate::units::parse_size(s).map_err(|e| at(m, e, fix))?)
                }
                _ => return Err(at(m, "max_body is not a size", fix)),
            }
        }
    };
    // A limit above what the length field can say, or none at all, is a
    // mistake in the file: say so rather than believe it.
    if let (Some(m), Some(body)) = (&raw.max_body, spec.body()) {
        if max_body == 0 {
            return Err(at(
                m,
                "max_body = 0: every body would be refused",
                "give the largest body believed, e.g. max_body = \"64k\"",
            ));
        }
        let length = match body.kind {
            FieldKind::SizedBy(by) => spec.field(by),
            _ => None,
        };
        if let Some((lo, hi)) = length.and_then(|l| l.kind.int_range()) {
            let most = u64::try_from(hi.max(lo)).unwrap_or(u64::MAX);
            if max_body > most {
                return Err(at(
                    m,
                    format!(
                        "max_body = {max_body} is more than the length field {:?} can say ({most})",
                        length.map_or("?", |l| l.name)
                    ),
                    format!("give at most max_body = {most}, or widen the length field"),
                ));
            }
        }
    }

    let show = match &raw.show {
        Some(s) => parse_show(s.get_ref(), &spec).map_err(|(i, what, fix)| {
            let start = s.span().start + 1 + i;
            At {
                span: start..start + 1,
                what,
                fix,
            }
        })?,
        None => default_show(&spec),
    };

    let port = match &raw.port {
        None => DEFAULT_PORT,
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(at(
                    p,
                    format!("port {} is not a TCP port", p.get_ref()),
                    "write a port from 1 to 65535, e.g. port = 5005",
                ));
            }
        },
    };

    Ok(FramingDef {
        spec,
        description: raw.description.as_ref().map_or("", |d| leak(d.get_ref())),
        checks: Box::leak(checks.into_boxed_slice()),
        echo_key,
        max_body,
        show,
        port,
        origin: leak(file_name),
        source: leak(text),
    })
}

/// The Python `struct` format of a list of fields: the header's codes;
/// with a trailer after the body, `+ body +` and the trailer's codes.
fn struct_of(big: bool, drafts: &[Draft]) -> String {
    let order = if big { '!' } else { '<' };
    let mut out = String::from(order);
    for d in drafts {
        match d.kind {
            FieldKind::SizedBy(_) => {
                // A header alone is its struct format (v3's "!BLL"); a
                // trailer's codes follow "+ body +".
                if drafts
                    .last()
                    .is_some_and(|l| !matches!(l.kind, FieldKind::SizedBy(_)))
                {
                    out.push_str(" + body + ");
                    out.push(order);
                }
            }
            FieldKind::Bytes { .. } | FieldKind::FixedBytes { .. } => {
                out.push_str(&format!("{}s", d.width))
            }
            k => {
                let (w, s, _) = k.int_shape().unwrap_or((1, false, true));
                out.push_str(int_code(w, s));
            }
        }
    }
    out
}

/// The default `show` line: `name=value` for each field, bytes quoted.
fn default_show(spec: &FramingSpec) -> &'static [ShowPart] {
    let mut parts = Vec::new();
    for f in spec.fields.iter().filter(|f| !f.name.starts_with("_pad")) {
        let quoted = f.kind.int_shape().is_none();
        let sep = if parts.is_empty() { "" } else { " " };
        parts.push(ShowPart::Text(leak(&format!(
            "{sep}{}={}",
            f.name,
            if quoted { "\"" } else { "" }
        ))));
        parts.push(ShowPart::Field(f.name));
        if quoted {
            parts.push(ShowPart::Text("\""));
        }
    }
    Box::leak(parts.into_boxed_slice())
}

/// Parses a `show` template; errors are (byte offset, what, fix).
fn parse_show(t: &str, spec: &FramingSpec) -> Result<&'static [ShowPart], (usize, String, String)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut it = t.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        match c {
            '{' if it.peek().is_some_and(|&(_, d)| d == '{') => {
                it.next();
                text.push('{');
            }
            '}' if it.peek().is_some_and(|&(_, d)| d == '}') => {
                it.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for (_, d) in it.by_ref() {
                    if d == '}' {
                        closed = true;
                        break;
                    }
                    name.push(d);
                }
                if !closed {
                    return Err((
                        i,
                        "a { with no } in show".into(),
                        "close the placeholder, e.g. {order}; write {{ for a brace".into(),
                    ));
                }
                let Some(f) = spec.field(&name) else {
                    return Err((
                        i + 1,
                        format!("show names {{{name}}}, which is no field"),
                        format!(
                            "use the fields' names: {}",
                            spec.fields
                                .iter()
                                .filter(|f| !f.name.starts_with("_pad"))
                                .map(|f| format!("{{{}}}", f.name))
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                    ));
                };
                if !text.is_empty() {
                    parts.push(ShowPart::Text(leak(&text)));
                    text.clear();
                }
                parts.push(ShowPart::Field(f.name));
            }
            '}' => {
                return Err((
                    i,
                    "a } with no { in show".into(),
                    "write }} for a brace".into(),
                ));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(ShowPart::Text(leak(&text)));
    }
    Ok(Box::leak(parts.into_boxed_slice()))
}
