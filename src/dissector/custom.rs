//! The Lua dissector of a framing file (`rc1 dissector --framing FILE`).
//!
//! [`generate_framing`] fills `framing.lua` (written once) with what the
//! [`FramingDef`] says: a protocol named after the file's filter prefix,
//! one `ProtoField` per field of the right type and byte order, the field
//! table (offsets, widths, the body's length field, the trailer), the
//! checks (`equals`, `expect`, `checksum`) as expert infos under rc1's
//! diagnostic codes, the `show` line as the info column, and the port. TCP
//! frames are cut from each direction's stream by the length read from the
//! header, resynchronising after a hole as rc1 capture does; bodies are
//! bytes fields with a `.text` string beside them. The built-in v2/v3
//! dissector (`rc1.lua`) stays [`super::generate`].

use std::fmt::Write as _;

use anyhow::{Result, bail};

use super::lua_str;
use crate::framing::{FramingDef, ShowPart};
use crate::spec::{self, Check, FieldKind};

const TEMPLATE: &str = include_str!("framing.lua");

/// The expert infos of a framing's dissector: the Lua key, the diagnostic,
/// the expert group and severity.
const EXPERTS: &[(&str, &spec::Diagnostic, &str, &str)] = &[
    ("constant", &spec::FRAMING_CONSTANT, "MALFORMED", "ERROR"),
    ("checksum", &spec::FRAMING_CHECKSUM, "CHECKSUM", "ERROR"),
    (
        "length_over_max",
        &spec::FRAMING_LENGTH_OVER_MAX,
        "MALFORMED",
        "ERROR",
    ),
    (
        "unexpected_value",
        &spec::FRAMING_UNEXPECTED_VALUE,
        "PROTOCOL",
        "WARN",
    ),
    ("gap", &spec::TCP_GAP, "SEQUENCE", "WARN"),
    ("damaged", &spec::FRAME_DAMAGED, "MALFORMED", "WARN"),
    (
        "unsynchronised",
        &spec::FRAME_UNSYNCHRONISED,
        "MALFORMED",
        "WARN",
    ),
];

/// The Wireshark protocol (and display-filter prefix) of a framing: the
/// file's `filter_prefix`, by default its name (`-` written `_`).
pub fn protocol_name(def: &FramingDef) -> &'static str {
    def.spec
        .fields
        .first()
        .and_then(|f| f.filter.split_once('.'))
        .map_or(def.spec.name, |(prefix, _)| prefix)
}

/// The file a framing's dissector is installed as: `NAME.lua`.
pub fn file_name(def: &FramingDef) -> String {
    format!("{}.lua", def.spec.name)
}

/// The `ProtoField` constructor, base and Lua kind of a field's kind.
fn proto_field(kind: FieldKind) -> Result<(String, &'static str, &'static str)> {
    Ok(match kind {
        FieldKind::FixedBytes { .. } | FieldKind::SizedBy(_) | FieldKind::Bytes { .. } => {
            ("bytes".into(), "base.NONE", "bytes")
        }
        k => {
            let Some((width, signed, _)) = k.int_shape() else {
                bail!("no Wireshark type for a field of kind {k:?}");
            };
            let t = format!(
                "{}int{}",
                if signed { "" } else { "u" },
                8 * u32::from(width)
            );
            (t, "base.DEC", if signed { "int" } else { "uint" })
        }
    })
}

/// The largest body Wireshark can reassemble for a framing: a whole frame
/// (header, body and trailer) must stay within a 32-bit signed PDU length.
fn reassembly_limit(def: &FramingDef) -> u64 {
    u64::from(i32::MAX.unsigned_abs()).saturating_sub(def.spec.fixed_len() as u64)
}

/// The largest body the dissector believes: the file's `max_body`, capped
/// at what Wireshark can reassemble (a larger claim is then refused as a
/// lying length, saying why).
fn max_body(def: &FramingDef) -> u64 {
    def.max_body.min(reassembly_limit(def))
}

/// The warning `rc1 dissector --framing` prints when the file's
/// `max_body` is more than Wireshark can reassemble (the dissector then
/// refuses longer claims, saying so); `None` when it is not.
pub fn max_body_warning(def: &FramingDef) -> Option<String> {
    let limit = reassembly_limit(def);
    (def.max_body > limit).then(|| {
        format!(
            "{}: max_body is {} bytes, but Wireshark cannot reassemble a frame of more than \
             {} bytes: the dissector refuses bodies over {limit} bytes \
             (framing.length_over_max) that rc1 capture would decode; lower max_body \
             to {limit} or less to make them agree",
            def.origin,
            def.max_body,
            i32::MAX
        )
    })
}

/// The Lua dissector for the framing `def`, as text.
pub fn generate_framing(def: &FramingDef) -> Result<String> {
    let s = &def.spec;
    let prefix = protocol_name(def);
    let mut fields = String::new();
    let mut frame = String::new();
    let mut after_body = false;
    for f in s.fields {
        let (ctor, base, kind) = proto_field(f.kind)?;
        let key = lua_str(f.name);
        let extra = if ctor == "string" || ctor == "bytes" {
            String::new()
        } else {
            "nil, nil, ".into()
        };
        let _ = writeln!(
            fields,
            "F[{key}] = ProtoField.{ctor}({}, {}, {base}, {extra}{})",
            lua_str(f.filter),
            lua_str(f.name),
            lua_str(f.description)
        );
        if matches!(f.kind, FieldKind::FixedBytes { .. } | FieldKind::SizedBy(_)) {
            // The readable form of a message's bytes, as rc1 capture shows
            // them (escaped): `PREFIX.FIELD.text`.
            let _ = writeln!(
                fields,
                "F[{}] = ProtoField.string({}, {}, base.ASCII, {})",
                lua_str(&format!("{}.text", f.name)),
                lua_str(&format!("{}.text", f.filter)),
                lua_str(&format!("{} (text)", f.name)),
                lua_str(&format!(
                    "{}, as text (escaped as rc1 capture shows it)",
                    f.name
                ))
            );
        }
        let trailer = if after_body { ", trailer = true" } else { "" };
        let (o, w) = (f.offset, f.width);
        let _ = match f.kind {
            FieldKind::SizedBy(by) => {
                after_body = true;
                writeln!(
                    frame,
                    "  {{ name = {key}, kind = \"body\", offset = {o}, width = 0, by = {} }},",
                    lua_str(by)
                )
            }
            FieldKind::FixedBytes { pad, len_by } => writeln!(
                frame,
                "  {{ name = {key}, kind = \"fixed\", offset = {o}, width = {w}, pad = {pad}, \
                 len_by = {}{trailer} }},",
                lua_str(len_by)
            ),
            FieldKind::Bytes { pad } => writeln!(
                frame,
                "  {{ name = {key}, kind = \"bytes\", offset = {o}, width = {w}, pad = {pad}{trailer} }},"
            ),
            k => {
                let le = k.int_shape().is_some_and(|(w, _, be)| w > 1 && !be);
                writeln!(
                    frame,
                    "  {{ name = {key}, kind = \"{kind}\", offset = {o}, width = {w}, le = {le}{trailer} }},"
                )
            }
        };
    }
    let field_list: Vec<String> = s
        .fields
        .iter()
        .flat_map(|f| {
            let text = matches!(f.kind, FieldKind::FixedBytes { .. } | FieldKind::SizedBy(_))
                .then(|| format!("F[{}]", lua_str(&format!("{}.text", f.name))));
            std::iter::once(format!("F[{}]", lua_str(f.name))).chain(text)
        })
        .collect();

    let length = match s.body().map(|b| b.kind) {
        Some(FieldKind::SizedBy(by)) => {
            let Some(l) = s.field(by) else {
                bail!("the body's length field {by} is not a field of {}", s.name);
            };
            let Some((_, _, be)) = l.kind.int_shape() else {
                bail!("the body's length field {by} is not an integer");
            };
            format!(
                "{{ name = {}, kind = \"uint\", offset = {}, width = {}, le = {} }}",
                lua_str(l.name),
                l.offset,
                l.width,
                l.width > 1 && !be
            )
        }
        _ => "nil".into(),
    };

    let mut experts = String::new();
    for (key, d, group, severity) in EXPERTS {
        let _ = writeln!(
            experts,
            "E.{key} = ProtoExpert.new({}, {}, expert.group.{group}, expert.severity.{severity})",
            lua_str(&format!("{prefix}.{}", d.code)),
            lua_str(&format!("[{}] {}", d.code, d.summary)),
        );
    }
    let expert_list: Vec<String> = EXPERTS.iter().map(|(k, ..)| format!("E.{k}")).collect();

    let mut checks = String::new();
    for c in def.checks {
        let _ = match c {
            Check::Equals { field, value } => writeln!(
                checks,
                "  {{ kind = \"equals\", field = {}, value = \"{value}\" }},",
                lua_str(field)
            ),
            Check::Expect { field, value } => writeln!(
                checks,
                "  {{ kind = \"expect\", field = {}, value = \"{value}\" }},",
                lua_str(field)
            ),
            Check::Checksum {
                field,
                algorithm,
                over,
            } => writeln!(
                checks,
                "  {{ kind = \"checksum\", field = {}, algorithm = {}, over = {{ {} }} }},",
                lua_str(field),
                lua_str(algorithm.name()),
                over.iter()
                    .map(|o| lua_str(o))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
    }

    let show: Vec<String> = def
        .show
        .iter()
        .map(|p| match p {
            ShowPart::Text(t) => lua_str(t),
            ShowPart::Field(f) => format!("{{ {} }}", lua_str(f)),
        })
        .collect();

    let title = if def.description.is_empty() {
        format!("{} (rc1 framing file)", s.name)
    } else {
        format!("{}: {}", s.name, def.description)
    };
    let header = format!(
        "-- {file}: Wireshark dissector for the framing {name} ({origin}).\n\
         --\n\
         -- GENERATED by `rc1 dissector --framing` (rc1 {version}) from the framing file.\n\
         -- Do not edit: change the file, then run\n\
         --   rc1 dissector --framing {origin} -o {file}\n\
         --\n\
         -- Load it (TCP port {port}; another port with -d):\n\
         --   tshark -X lua_script:{file} -o tcp.reassemble_out_of_order:TRUE -r capture.pcap\n\
         --   tshark -X lua_script:{file} -d tcp.port==PORT,{prefix} -r capture.pcap\n\
         -- or install it in your personal Lua plugins folder:\n\
         --   rc1 dissector --framing {origin} --install\n\
         --\n\
         -- Display filters: {prefix}, {filters};\n\
         -- expert info under rc1's diagnostic codes ({prefix}.framing.checksum, ...).",
        file = file_name(def),
        name = s.name,
        origin = def.origin,
        version = env!("CARGO_PKG_VERSION"),
        port = def.port,
        filters = s
            .fields
            .iter()
            .map(|f| f.filter)
            .collect::<Vec<_>>()
            .join(", "),
    );

    let mut out = TEMPLATE.to_string();
    for (marker, value) in [
        ("--@@HEADER@@", header),
        ("@@NAME@@", lua_str(s.name)),
        ("@@PREFIX@@", lua_str(prefix)),
        ("@@TITLE@@", lua_str(&title)),
        ("@@PORT@@", def.port.to_string()),
        ("@@MAX_BODY@@", max_body(def).to_string()),
        ("@@MAX_BODY_FILE@@", lua_str(&def.max_body.to_string())),
        ("@@CAPPED@@", (def.max_body > max_body(def)).to_string()),
        ("@@HEADER_LEN@@", s.header_len().to_string()),
        ("@@FIXED_LEN@@", s.fixed_len().to_string()),
        ("@@LENGTH@@", length),
        ("@@FIELDS@@\n", fields),
        ("@@FIELD_LIST@@", field_list.join(", ")),
        ("@@EXPERTS@@\n", experts),
        ("@@EXPERT_LIST@@", expert_list.join(", ")),
        ("@@FRAME@@\n", frame),
        ("@@CHECKS@@\n", checks),
        ("@@SHOW@@", show.join(", ")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> &'static FramingDef {
        let path = format!(
            "{}/fixtures/framings/{name}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        crate::framing::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn each_field_gets_a_protofield_of_its_type_and_byte_order() {
        let lua = generate_framing(load("le16")).unwrap_or_default();
        assert!(lua.contains("local proto = Proto(\"le16\", "));
        for want in [
            "F[\"version\"] = ProtoField.uint8(\"le16.version\", \"version\", base.DEC, nil, nil, ",
            "F[\"order\"] = ProtoField.uint16(\"le16.order\", ",
            "F[\"len\"] = ProtoField.uint16(\"le16.len\", ",
            "F[\"data\"] = ProtoField.bytes(\"le16.data\", \"data\", base.NONE, ",
            "F[\"data.text\"] = ProtoField.string(\"le16.data.text\", \"data (text)\", base.ASCII, ",
            "{ name = \"order\", kind = \"uint\", offset = 1, width = 2, le = true },",
            "local LENGTH = { name = \"len\", kind = \"uint\", offset = 3, width = 2, le = true }",
            "local MAX_BODY = 65535\n",
            "local PORT = 5006\n",
            "{ kind = \"equals\", field = \"version\", value = \"2\" },",
            "local SHOW = { \"order=\", { \"order\" }, \" len=\", { \"len\" }, \" \\\"\", { \"data\" }, \"\\\"\" }",
        ] {
            assert!(lua.contains(want), "no {want:?} in\n{lua}");
        }
        assert!(!lua.contains("@@"));
    }

    #[test]
    fn a_trailer_and_its_checksum_are_described() {
        let def = load("crc-trailer");
        assert_eq!(protocol_name(def), "crc_trailer");
        assert_eq!(file_name(def), "crc-trailer.lua");
        let lua = generate_framing(def).unwrap_or_default();
        for want in [
            "local HEADER_LEN = 7\n",
            "local FIXED_LEN = 11\n",
            "{ name = \"crc\", kind = \"uint\", offset = 0, width = 4, le = false, trailer = true },",
            "{ kind = \"checksum\", field = \"crc\", algorithm = \"crc32\", \
             over = { \"version\", \"seq\", \"length\", \"payload\" } },",
            "{ kind = \"expect\", field = \"version\", value = \"1\" },",
            "ProtoExpert.new(\"crc_trailer.framing.checksum\", \"[framing.checksum] ",
        ] {
            assert!(lua.contains(want), "no {want:?} in\n{lua}");
        }
    }

    #[test]
    fn signed_wide_and_padded_fields_have_their_types() {
        let def = crate::framing::parse(
            "name = \"wide\"\nstruct = \"<bhqQ4sH\"\n\
             names = [\"a\", \"b\", \"c\", \"d\", \"tag\", \"sum\"]\n\
             [field.sum]\nchecksum = \"internet\"\nover = [\"a\", \"tag\"]\n",
            "wide.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let lua = generate_framing(Box::leak(Box::new(def))).unwrap_or_default();
        for want in [
            "ProtoField.int8(\"wide.a\"",
            "ProtoField.int16(\"wide.b\"",
            "ProtoField.int64(\"wide.c\"",
            "ProtoField.uint64(\"wide.d\"",
            "ProtoField.bytes(\"wide.tag\", \"tag\", base.NONE, ",
            "{ name = \"a\", kind = \"int\", offset = 0, width = 1, le = false },",
            "{ name = \"c\", kind = \"int\", offset = 3, width = 8, le = true },",
            "{ name = \"tag\", kind = \"bytes\", offset = 19, width = 4, pad = 0 },",
            "local LENGTH = nil\n",
            "local HEADER_LEN = 25\n",
            "algorithm = \"internet\"",
        ] {
            assert!(lua.contains(want), "no {want:?} in\n{lua}");
        }
    }
}
