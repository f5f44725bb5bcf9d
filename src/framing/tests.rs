#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a panic in a test is a failed test"
)]

use super::codec::{self, DecodeError, EncodeError, Parse};
use super::*;
use crate::spec::{self, ChecksumKind, FieldKind, Value};

fn fixture(name: &str) -> &'static FramingDef {
    let path = format!("{}/fixtures/framings/{name}", env!("CARGO_MANIFEST_DIR"));
    load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn leaked(text: &str) -> &'static FramingDef {
    Box::leak(Box::new(
        parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}")),
    ))
}

fn code(p: &Parse<'_>) -> &'static str {
    match p {
        Parse::Error(e) => e.diagnostic().code,
        other => panic!("not an error: {other:?}"),
    }
}

fn frame_len(p: &Parse<'_>) -> usize {
    match p {
        Parse::Frame { len, .. } => *len,
        other => panic!("not a frame: {other:?}"),
    }
}

// ---- the built-in files are the consts ----

#[test]
fn the_builtin_files_are_exactly_the_compiled_specs() {
    for (name, want) in [("v2", &spec::V2), ("v3", &spec::V3)] {
        let def = builtin(name).unwrap_or_else(|| panic!("built-in {name} does not parse"));
        // Every field: name, filter, kind (pad, length-by), offset, width,
        // description; and the framing's name and struct format.
        assert_eq!(&def.spec, want, "{name}");
        assert_eq!(def.echo_key, Some("order"), "{name}");
        assert_eq!(def.port, 5005);
        // The version byte: reported when not the lab's, never refused.
        assert_eq!(
            def.checks,
            [spec::Check::Expect {
                field: "version",
                value: i128::from(spec::LAB_VERSION)
            }],
            "{name}"
        );
        assert_eq!(builtin_text(name), Some(def.source));
    }
    assert!(builtin("v2").unwrap().is_fixed());
    assert_eq!(
        builtin("v3").unwrap().max_body,
        u64::from(spec::DEFAULT_MAX_FRAME)
    );
    assert!(builtin("v4").is_none());
}

#[test]
fn the_builtin_show_lines_read_like_rc1_capture() {
    let v2 = builtin("v2").unwrap();
    let wire = crate::codec::Frame::v2(1, 3, b"hello")
        .unwrap()
        .to_bytes(crate::codec::Framing::V2);
    let Parse::Frame { values, .. } = codec::parse(v2, &wire, v2.max_body) else {
        panic!()
    };
    assert_eq!(v2.show_line(&values), "ver=1 order=3 size=5 \"hello\"");
}

// ---- the three framings rc1 has no code for ----

#[test]
fn le16_encodes_as_python_struct_and_parses_back() {
    let def = fixture("le16.toml");
    assert_eq!(def.spec.python_format, "<BHH");
    // struct.pack('<BHH', 2, 258, 3) + b'abc'
    let want = [0x02, 0x02, 0x01, 0x03, 0x00, b'a', b'b', b'c'];
    let wire = codec::encode(
        def,
        &[
            ("order", Value::Uint(258)),
            (
                "data",
                Value::Bytes {
                    content: b"abc",
                    padding: &[],
                },
            ),
        ],
    )
    .unwrap();
    assert_eq!(wire, want);
    let Parse::Frame { len, values } = codec::parse(def, &wire, def.max_body) else {
        panic!()
    };
    assert_eq!(len, 8);
    assert_eq!(values.uint("order"), Some(258));
    assert_eq!(values.uint("len"), Some(3));
    assert_eq!(values.bytes("data"), Some(&b"abc"[..]));
    assert_eq!(def.show_line(&values), "order=258 len=3 \"abc\"");
    assert_eq!(def.port, 5006);
    // Every shorter prefix is incomplete, with the right need.
    for cut in 0..wire.len() {
        let need = if cut < 5 { 5 } else { 8 };
        assert_eq!(
            codec::parse(def, &wire[..cut], def.max_body),
            Parse::Incomplete { need }
        );
    }
    // A wrong version is not this protocol.
    let mut bad = wire.clone();
    bad[0] = 1;
    assert_eq!(
        code(&codec::parse(def, &bad, def.max_body)),
        "framing.constant"
    );
    assert!(matches!(
        codec::parse(def, &bad, def.max_body),
        Parse::Error(DecodeError::Constant {
            field: "version",
            want: 2,
            got: 1
        })
    ));
    // A length over a lower max_body is refused on the header alone.
    assert!(matches!(
        codec::parse(def, &wire[..5], 2),
        Parse::Error(DecodeError::LengthOverMax {
            field: "len",
            claimed: 3,
            max: 2
        })
    ));
}

#[test]
fn crc_trailer_matches_zlib_and_catches_damage() {
    let def = fixture("crc-trailer.toml");
    // h = struct.pack('!BIH', 1, 7, 5); h + b'hello' + struct.pack('!I', zlib.crc32(h + b'hello'))
    let want: Vec<u8> = [
        &[0x01, 0, 0, 0, 7, 0, 5][..],
        b"hello",
        &[0x4a, 0x4a, 0x43, 0x31],
    ]
    .concat();
    let wire = codec::encode(
        def,
        &[
            ("seq", Value::Uint(7)),
            (
                "payload",
                Value::Bytes {
                    content: b"hello",
                    padding: &[],
                },
            ),
        ],
    )
    .unwrap();
    assert_eq!(wire, want);
    assert_eq!(def.spec.python_format, "!BLH + body + !L");
    assert_eq!((def.spec.header_len(), def.spec.trailer_len()), (7, 4));
    let Parse::Frame { len, values } = codec::parse(def, &wire, def.max_body) else {
        panic!()
    };
    assert_eq!(len, 16);
    assert_eq!(values.uint("crc"), Some(0x4a4a_4331));
    // The trailer is needed before the frame is whole.
    assert_eq!(
        codec::parse(def, &wire[..12], def.max_body),
        Parse::Incomplete { need: 16 }
    );
    assert_eq!(
        codec::parse(def, &wire[..3], def.max_body),
        Parse::Incomplete { need: 11 }
    );
    // One bit flipped anywhere covered, or in the checksum itself.
    for i in 0..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x10;
        let p = codec::parse(def, &bad, def.max_body);
        if (5..7).contains(&i) {
            // The length itself: now 0x1005, the frame is incomplete.
            assert!(matches!(p, Parse::Incomplete { .. }), "{i}: {p:?}");
        } else {
            assert_eq!(code(&p), "framing.checksum", "byte {i}");
        }
    }
    // A given checksum must be the right one.
    let e = codec::encode(
        def,
        &[
            ("seq", Value::Uint(7)),
            (
                "payload",
                Value::Bytes {
                    content: b"hello",
                    padding: &[],
                },
            ),
            ("crc", Value::Uint(1)),
        ],
    );
    assert!(
        matches!(e, Err(EncodeError::Inconsistent { field: "crc", .. })),
        "{e:?}"
    );
    // A lying length: 64k + 1 claimed, refused before the body is awaited.
    let mut lie = wire[..7].to_vec();
    lie[5..7].copy_from_slice(&0xFFFFu16.to_be_bytes());
    assert_eq!(
        code(&codec::parse(def, &lie, 1000)),
        "framing.length_over_max"
    );
    // A version other than 1 is only a note.
    let mut v9 = wire.clone();
    v9[0] = 9;
    let v9 = codec::encode(
        def,
        &[
            ("version", Value::Uint(9)),
            ("seq", Value::Uint(7)),
            (
                "payload",
                Value::Bytes {
                    content: b"hello",
                    padding: &[],
                },
            ),
        ],
    )
    .unwrap();
    let Parse::Frame { values, .. } = codec::parse(def, &v9, def.max_body) else {
        panic!()
    };
    let notes = codec::notes(def, &values);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].diagnostic.code, "framing.unexpected_value");
    assert_eq!(
        (notes[0].field, notes[0].got, notes[0].want),
        ("version", 9, 1)
    );
}

#[test]
fn typed_has_its_type_before_the_length() {
    let def = fixture("typed.toml");
    // struct.pack('!BBI', 3, 9, 2) + b'hi'
    let want = [3, 9, 0, 0, 0, 2, b'h', b'i'];
    let wire = codec::encode(
        def,
        &[
            ("kind", Value::Uint(9)),
            (
                "body",
                Value::Bytes {
                    content: b"hi",
                    padding: &[],
                },
            ),
        ],
    )
    .unwrap();
    assert_eq!(wire, want);
    let Parse::Frame { values, .. } = codec::parse(def, &wire, def.max_body) else {
        panic!()
    };
    assert_eq!(values.uint("kind"), Some(9));
    assert_eq!(def.show_line(&values), "type=9 length=2 \"hi\"");
    let mut bad = wire;
    bad[0] = 2;
    assert_eq!(
        code(&codec::parse(def, &bad, def.max_body)),
        "framing.constant"
    );
    // 4 GB claimed: refused, nothing reserved.
    let lie = [3, 9, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(matches!(
        codec::parse(def, &lie, def.max_body),
        Parse::Error(DecodeError::LengthOverMax {
            field: "length",
            claimed: 0xFFFF_FFFF,
            max: 1_048_576
        })
    ));
    // encode refuses what parse would refuse.
    let e = codec::encode(
        def,
        &[("version", Value::Uint(4)), ("kind", Value::Uint(1))],
    );
    assert!(
        matches!(
            e,
            Err(EncodeError::Inconsistent {
                field: "version",
                got: 4,
                want: 3
            })
        ),
        "{e:?}"
    );
    let e = codec::encode(def, &[("kind", Value::Uint(256))]);
    assert!(
        matches!(e, Err(EncodeError::OutOfRange { field: "kind", .. })),
        "{e:?}"
    );
    let e = codec::encode(def, &[("colour", Value::Uint(1))]);
    assert!(matches!(e, Err(EncodeError::Unknown(_))), "{e:?}");
}

// ---- struct formats ----

#[test]
fn a_struct_alone_is_a_fixed_framing_with_repeats_pads_and_signed_fields() {
    let def =
        leaked("name = \"s\"\nstruct = \"!2L3x4sh\"\nnames = [\"a\", \"b\", \"tag\", \"t\"]\n");
    // struct.calcsize('!2L3x4sh') == 17
    assert_eq!(def.spec.fixed_len(), 17);
    assert!(def.is_fixed());
    let names: Vec<_> = def
        .spec
        .fields
        .iter()
        .map(|f| (f.name, f.offset, f.width))
        .collect();
    assert_eq!(
        names,
        [
            ("a", 0, 4),
            ("b", 4, 4),
            ("_pad1", 8, 3),
            ("tag", 11, 4),
            ("t", 15, 2)
        ]
    );
    assert_eq!(
        def.field("t").unwrap().kind,
        FieldKind::Int {
            width: 2,
            signed: true,
            big_endian: true
        }
    );
    // struct.pack('!2L3x4sh', 1, 2, b'ab', -2)
    let want = hex("000000010000000200000061620000fffe");
    let wire = codec::encode(
        def,
        &[
            ("a", Value::Uint(1)),
            ("b", Value::Uint(2)),
            (
                "tag",
                Value::Bytes {
                    content: b"ab",
                    padding: &[],
                },
            ),
            ("t", Value::Int(-2)),
        ],
    )
    .unwrap();
    assert_eq!(wire, want);
    let Parse::Frame { values, .. } = codec::parse(def, &wire, 0) else {
        panic!()
    };
    assert_eq!(values.int("t"), Some(-2));
    assert_eq!(
        values.get("tag"),
        Some(Value::Bytes {
            content: b"ab",
            padding: &[0, 0]
        })
    );
    assert_eq!(def.show_line(&values), "a=1 b=2 tag=\"ab\" t=-2");
    // Default names f1..fn.
    let d = leaked("name = \"s\"\nstruct = \"<Qq\"\n");
    let f: Vec<_> = d.spec.fields.iter().map(|f| (f.name, f.kind)).collect();
    assert_eq!(
        f,
        [
            (
                "f1",
                FieldKind::Int {
                    width: 8,
                    signed: false,
                    big_endian: false
                }
            ),
            (
                "f2",
                FieldKind::Int {
                    width: 8,
                    signed: true,
                    big_endian: false
                }
            )
        ]
    );
    // `=` is this machine's order with standard sizes.
    let d = leaked("name = \"s\"\nstruct = \"=H\"\n");
    assert_eq!(
        d.spec.fields[0].kind,
        FieldKind::int(2, false, cfg!(target_endian = "big"))
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn checksums_match_their_references() {
    // zlib.crc32(b'123456789') == 0xcbf43926
    assert_eq!(
        codec::checksum(ChecksumKind::Crc32, [&b"1234"[..], b"56789"]),
        0xcbf4_3926
    );
    // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(
        codec::checksum(ChecksumKind::Internet, [&words[..]]),
        u64::from(!0xddf2u16)
    );
    // An odd byte is padded with zero, even across parts.
    assert_eq!(
        codec::checksum(ChecksumKind::Internet, [&[0x01][..], &[0x02, 0x03]]),
        u64::from(!(0x0102u16 + 0x0300))
    );
}

#[test]
fn an_internet_checksum_framing_round_trips_and_catches_damage() {
    let def = leaked(
        "name = \"ip\"\n[[field]]\nname = \"n\"\ntype = \"H\"\n[[field]]\nname = \"sum\"\ntype = \"H\"\n\
         checksum = \"internet\"\nover = [\"n\", \"data\"]\n[[field]]\nname = \"data\"\ntype = \"body\"\nlength = \"n\"\n",
    );
    let wire = codec::encode(
        def,
        &[(
            "data",
            Value::Bytes {
                content: b"abc",
                padding: &[],
            },
        )],
    )
    .unwrap();
    assert_eq!(&wire[..2], &[0, 3]);
    let sum = u16::from_be_bytes([wire[2], wire[3]]);
    assert_eq!(
        u64::from(sum),
        codec::checksum(ChecksumKind::Internet, [&[0, 3][..], b"abc"])
    );
    assert_eq!(frame_len(&codec::parse(def, &wire, 100)), 7);
    let mut bad = wire;
    bad[6] ^= 1;
    assert_eq!(code(&codec::parse(def, &bad, 100)), "framing.checksum");
}

// ---- bad files: one clear error each, at its line and column ----

/// Parses `text`, which must be refused; returns `(line, col, message)`.
fn refused(text: &str) -> (usize, usize, String) {
    match parse(text, "bad.toml") {
        Ok(d) => panic!("accepted: {d:?}"),
        Err(e @ FramingError::Bad { line, col, .. }) => (line, col, e.to_string()),
        Err(e) => panic!("{e}"),
    }
}

fn assert_refused(text: &str, line: usize, col: usize, what: &str, fix: &str) {
    let (l, c, msg) = refused(text);
    assert!(
        msg.starts_with(&format!("bad.toml:{line}:{col}: ")),
        "want {line}:{col}, got {msg}"
    );
    assert!(msg.contains(what), "{msg:?} lacks {what:?}");
    let (_, advice) = msg
        .split_once("; ")
        .unwrap_or_else(|| panic!("no advice: {msg}"));
    assert!(advice.contains(fix), "advice {advice:?} lacks {fix:?}");
    assert_eq!((l, c), (line, col));
}

const HEAD: &str = "name = \"x\"\n[[field]]\nname = \"n\"\ntype = \"L\"\n";

#[test]
fn an_unknown_type_code() {
    assert_refused(
        &format!("{HEAD}[[field]]\nname = \"f\"\ntype = \"d\"\n"),
        7,
        8,
        "unknown field type \"d\"",
        "use B H I L Q",
    );
    assert_refused(
        "name = \"x\"\nstruct = \"!BLf\"\n",
        2,
        14,
        "struct code 'f' is not supported",
        "B H I L Q",
    );
}

#[test]
fn a_length_naming_a_missing_field() {
    assert_refused(
        &format!("{HEAD}[[field]]\nname = \"m\"\ntype = \"body\"\nlength = \"sise\"\n"),
        8,
        10,
        "length names \"sise\", which is no field",
        "name an unsigned integer field before \"m\" (fields: n)",
    );
}

#[test]
fn a_length_after_the_body() {
    assert_refused(
        "name = \"x\"\n[[field]]\nname = \"m\"\ntype = \"body\"\nlength = \"n\"\n[[field]]\nname = \"n\"\ntype = \"L\"\n",
        5,
        10,
        "length field \"n\" comes after \"m\"",
        "move \"n\" before \"m\": a length must come before what it measures",
    );
}

#[test]
fn a_signed_or_byte_length() {
    assert_refused(
        "name = \"x\"\n[[field]]\nname = \"n\"\ntype = \"i\"\n[[field]]\nname = \"m\"\ntype = \"body\"\nlength = \"n\"\n",
        8,
        10,
        "length field \"n\" is signed",
        "make \"n\" unsigned",
    );
    assert_refused(
        "name = \"x\"\n[[field]]\nname = \"n\"\ntype = \"4s\"\n[[field]]\nname = \"m\"\ntype = \"body\"\nlength = \"n\"\n",
        8,
        10,
        "length field \"n\" is not an integer",
        "unsigned integer field",
    );
}

#[test]
fn two_bodies() {
    assert_refused(
        &format!(
            "{HEAD}[[field]]\nname = \"a\"\ntype = \"body\"\nlength = \"n\"\n[[field]]\nname = \"b\"\ntype = \"body\"\nlength = \"n\"\n"
        ),
        11,
        8,
        "a second body, \"b\" (after \"a\")",
        "a frame has one body",
    );
}

#[test]
fn no_way_to_frame() {
    assert_refused(
        "name = \"x\"\ndescription = \"nothing\"\n",
        1,
        1,
        "describes no fields",
        "write struct = ",
    );
    assert_refused(
        &format!("{HEAD}[[field]]\nname = \"m\"\ntype = \"body\"\n"),
        7,
        8,
        "body \"m\" has no length field, so the stream cannot be framed",
        "add length = \"FIELD\"",
    );
}

#[test]
fn bad_toml_syntax() {
    let (line, col, msg) = refused("name = \"x\"\nstruct = \"!BLL\n");
    // At the end of the line, where the closing quote is missing.
    assert_eq!((line, col), (2, 15), "{msg}");
    assert!(msg.contains("invalid basic string"), "{msg}");
    assert!(msg.contains("; write TOML: key = value"), "{msg}");
}

#[test]
fn an_unknown_key() {
    assert_refused(
        "name = \"x\"\nstruct = \"!BLL\"\ncolour = \"red\"\n",
        3,
        1,
        "unknown field `colour`",
        "rc1 framing --help lists every key",
    );
    assert_refused(
        &format!("{HEAD}lenght = \"n\"\n"),
        5,
        1,
        "unknown field `lenght`",
        "rc1 framing --help",
    );
}

#[test]
fn a_show_placeholder_that_names_no_field() {
    assert_refused(
        "name = \"x\"\nstruct = \"!BL\"\nnames = [\"v\", \"order\"]\nshow = \"v={v} o={ordre}\"\n",
        4,
        18,
        "show names {ordre}, which is no field",
        "use the fields' names: {v} {order}",
    );
}

#[test]
fn a_checksum_over_a_missing_field() {
    assert_refused(
        &format!(
            "{HEAD}[[field]]\nname = \"c\"\ntype = \"I\"\nchecksum = \"crc32\"\nover = [\"n\", \"body\"]\n"
        ),
        9,
        14,
        "checksum over \"body\", which is no field",
        "name fields of this framing (n, c)",
    );
    assert_refused(
        &format!(
            "{HEAD}[[field]]\nname = \"c\"\ntype = \"H\"\nchecksum = \"crc32\"\nover = [\"n\"]\n"
        ),
        8,
        12,
        "needs an unsigned field of 4 bytes",
        "make the field type I or L",
    );
}

#[test]
fn struct_and_fields_mixed_or_native_order() {
    assert_refused(
        "name = \"x\"\nstruct = \"!BL\"\n[[field]]\nname = \"n\"\ntype = \"L\"\n",
        3,
        1,
        "struct and [[field]] tables together",
        "not both",
    );
    assert_refused(
        "name = \"x\"\nstruct = \"@BL\"\n",
        2,
        11,
        "byte order '@' is not supported",
        "native alignment and sizes",
    );
    assert_refused(
        "name = \"x\"\nstruct = \"BL\"\n",
        2,
        11,
        "has no byte order",
        "write `!`",
    );
    assert_refused(
        "name = \"x\"\nstruct = \"!BL\"\nnames = [\"a\"]\n",
        3,
        9,
        "1 names for 2 fields",
        "give one name per field",
    );
    assert_refused(
        "name = \"x\"\nstruct = \"!BL20s\"\nnames = [\"a\", \"b\", \"m\"]\n[field.msg]\npad = \"-\"\n",
        4,
        8,
        "[field.msg] names no field of the struct",
        "use one of the names: a, b, m",
    );
}

#[test]
fn bad_values_of_known_keys() {
    assert_refused(
        "name = \"X1\"\nstruct = \"!B\"\n",
        1,
        8,
        "framing name \"X1\"",
        "[a-z][a-z0-9_-]*",
    );
    assert_refused(
        &format!("{HEAD}equals = 4294967296\n"),
        5,
        10,
        "equals = 4294967296 does not fit \"n\"",
        "a value the field can hold",
    );
    assert_refused(
        "name = \"x\"\necho_key = \"m\"\n[[field]]\nname = \"n\"\ntype = \"L\"\n",
        2,
        12,
        "echo_key \"m\" is no field",
        "name a field (n)",
    );
    assert_refused(
        "name = \"x\"\nstruct = \"!B\"\nmax_body = 10\n",
        3,
        12,
        "this framing has no body",
        "remove max_body",
    );
    assert_refused(
        "name = \"x\"\nstruct = \"!B\"\nport = 70000\n",
        3,
        8,
        "port 70000",
        "from 1 to 65535",
    );
}

// ---- properties ----

/// The generic codec's view of a v2/v3 parse, in the old codec's terms.
fn old_view(framing: crate::codec::Framing, buf: &[u8], max: u32) -> String {
    use crate::codec::{self as old};
    match old::parse(framing, buf, max) {
        Ok(old::Parse::Frame(f)) => format!(
            "frame len={} version={} order={} size={} message={:?} padding={:?}",
            f.raw.len(),
            f.version,
            f.order,
            f.size,
            f.message,
            f.padding
        ),
        Ok(old::Parse::Incomplete { need }) => format!("incomplete {need}"),
        Err(old::DecodeError::SizeOverMax { claimed, max }) => format!("over {claimed} {max}"),
        Err(e) => format!("other {e}"),
    }
}

fn new_view(def: &'static FramingDef, buf: &[u8], max: u32) -> String {
    match codec::parse(def, buf, u64::from(max)) {
        Parse::Frame { len, values } => {
            let (message, padding) = match values.get("message") {
                Some(Value::Bytes { content, padding }) => (content, padding),
                _ => (&[][..], &[][..]),
            };
            format!(
                "frame len={len} version={} order={} size={} message={message:?} padding={padding:?}",
                values.uint("version").unwrap_or(999),
                values.uint("order").unwrap_or(u64::MAX),
                values.uint("size").unwrap_or(u64::MAX),
            )
        }
        Parse::Incomplete { need } => format!("incomplete {need}"),
        Parse::Error(DecodeError::LengthOverMax {
            field: "size",
            claimed,
            max,
        }) => {
            format!("over {claimed} {max}")
        }
        Parse::Error(e) => format!("other {e}"),
    }
}

/// Values for every field of `def`, from random numbers and bytes:
/// integers in range, constants where `equals` says, lengths and
/// checksums left to the encoder.
fn values_for<'b>(
    def: &FramingDef,
    nums: &[u64],
    blobs: &'b [Vec<u8>],
) -> Vec<(&'static str, Value<'b>)> {
    let computed = |name: &str| {
        def.spec.fields.iter().any(|g| {
            matches!(g.kind, FieldKind::SizedBy(by) | FieldKind::FixedBytes { len_by: by, .. } if by == name)
        }) || def.checks.iter().any(|c| {
            matches!(c, spec::Check::Checksum { field, .. } | spec::Check::Equals { field, .. } if *field == name)
        })
    };
    let mut out = Vec::new();
    for (i, f) in def.spec.fields.iter().enumerate() {
        let n = nums.get(i).copied().unwrap_or(0);
        let blob = blobs.get(i).map_or(&[][..], Vec::as_slice);
        if computed(f.name) || f.name.starts_with("_pad") {
            continue;
        }
        let v = match f.kind.int_range() {
            Some((lo, hi)) => {
                let span = (hi - lo + 1) as u128;
                let v = lo + (u128::from(n) % span) as i128;
                if lo < 0 {
                    Value::Int(v as i64)
                } else {
                    Value::Uint(v as u64)
                }
            }
            None => {
                let keep = match f.kind {
                    FieldKind::Bytes { pad } => {
                        // Content never ends in the pad byte: it would read back as padding.
                        let b = &blob[..blob.len().min(f.width)];
                        &b[..b.iter().rposition(|&c| c != pad).map_or(0, |i| i + 1)]
                    }
                    _ => blob,
                };
                Value::Bytes {
                    content: keep,
                    padding: &[],
                }
            }
        };
        out.push((f.name, v));
    }
    out
}

fn fixture_framings() -> Vec<&'static FramingDef> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/framings");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(v.len() >= 3, "{v:?}");
    v.iter()
        .map(|p| load(p.to_str().unwrap()).unwrap())
        .collect()
}

proptest::proptest! {
    /// On any bytes, the generic codec of the built-in files and the
    /// hand-written v2/v3 codec agree: same frames and lengths, the same
    /// bytes needed, the same refusal of an oversized length.
    #[test]
    fn the_generic_codec_agrees_with_v2_and_v3(
        v3 in proptest::bool::ANY,
        mut buf in proptest::collection::vec(0u8..=255, 0..80),
        small_size in proptest::option::of(0u32..60),
        max in proptest::sample::select(vec![0u32, 5, 20, 40, 1 << 20]),
    ) {
        use crate::codec::Framing;
        let (framing, def) = if v3 { (Framing::V3, builtin("v3").unwrap()) } else { (Framing::V2, builtin("v2").unwrap()) };
        // Often a plausible size, so frames do complete.
        if let (Some(s), Some(b)) = (small_size, buf.get_mut(5..9)) {
            b.copy_from_slice(&s.to_be_bytes());
        }
        let max = if v3 { max } else { 0 };
        proptest::prop_assert_eq!(old_view(framing, &buf, max), new_view(def, &buf, max));
        if let Parse::Frame { len, .. } = codec::parse(def, &buf, u64::from(max)) {
            // And what the generic one decodes, it re-encodes to the same bytes.
            let Parse::Frame { values, .. } = codec::parse(def, &buf, u64::from(max)) else { unreachable!() };
            let named: Vec<_> = values.fields.iter().map(|(f, v)| (f.name, *v)).collect();
            proptest::prop_assert_eq!(codec::encode(def, &named).unwrap(), &buf[..len]);
        }
    }

    /// encode then parse gives the values back, and re-encoding the parsed
    /// values gives the same bytes, on every framing in fixtures/framings.
    #[test]
    fn encode_then_parse_round_trips_on_every_fixture_framing(
        nums in proptest::collection::vec(proptest::num::u64::ANY, 8),
        blobs in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..40), 8),
        extra in proptest::collection::vec(0u8..=255, 0..10),
    ) {
        for def in fixture_framings() {
            let given = values_for(def, &nums, &blobs);
            let wire = codec::encode(def, &given).unwrap();
            let mut stream = wire.clone();
            stream.extend_from_slice(&extra);
            let Parse::Frame { len, values } = codec::parse(def, &stream, def.max_body) else {
                panic!("{}: no frame from its own bytes", def.spec.name)
            };
            proptest::prop_assert_eq!(len, wire.len());
            for (name, v) in &given {
                let got = values.get(name).unwrap();
                let same = match (v, got) {
                    (Value::Bytes { content: a, .. }, Value::Bytes { content: b, .. }) => *a == b,
                    (a, b) => *a == b,
                };
                proptest::prop_assert!(same, "{}.{}: {:?} became {:?}", def.spec.name, name, v, got);
            }
            let named: Vec<_> = values.fields.iter().map(|(f, v)| (f.name, *v)).collect();
            proptest::prop_assert_eq!(codec::encode(def, &named).unwrap(), wire.clone());
            // Every prefix is incomplete, never an error or a panic.
            for cut in 0..wire.len() {
                let p = codec::parse(def, &wire[..cut], def.max_body);
                proptest::prop_assert!(matches!(p, Parse::Incomplete { need } if need > cut as u64), "{:?}", p);
            }
        }
    }

    /// Any bytes, any framing: a parse never panics, and a frame never
    /// claims more bytes than there are.
    #[test]
    fn any_bytes_parse_without_panic(
        buf in proptest::collection::vec(0u8..=255, 0..64),
        max in 0u64..100,
    ) {
        let mut defs = fixture_framings();
        defs.extend([builtin("v2").unwrap(), builtin("v3").unwrap()]);
        for def in defs {
            if let Parse::Frame { len, .. } = codec::parse(def, &buf, max) {
                proptest::prop_assert!(len <= buf.len());
            }
        }
    }
}

#[test]
fn the_hex_pane_marks_a_trailer_after_the_body_and_a_little_endian_length() {
    use crate::capture::output::hex;
    let def = fixture("crc-trailer.toml");
    let wire = codec::encode(
        def,
        &[
            ("seq", Value::Uint(7)),
            (
                "payload",
                Value::Bytes {
                    content: b"hello",
                    padding: &[],
                },
            ),
        ],
    )
    .unwrap();
    let bytes: Vec<Option<u8>> = wire.iter().copied().map(Some).collect();
    let spans: Vec<_> = hex::field_spans(&def.spec, &bytes)
        .iter()
        .map(|s| (s.name, s.start, s.end))
        .collect();
    assert_eq!(
        spans,
        [
            ("version", 0, 1),
            ("seq", 1, 5),
            ("length", 5, 7),
            ("payload", 7, 12),
            ("crc", 12, 16)
        ]
    );
    assert_eq!(hex::frame_len(&def.spec, &bytes), Some(16));
    let le = fixture("le16.toml");
    // struct.pack('<BHH', 2, 1, 258): a body of 258 bytes.
    let head = [Some(2), Some(1), Some(0), Some(2), Some(1)];
    assert_eq!(hex::frame_len(&le.spec, &head), Some(5 + 258));
}

#[test]
fn the_agreement_views_cover_frames_needs_and_refusals() {
    use crate::codec::{Frame, Framing};
    let (v2, v3) = (builtin("v2").unwrap(), builtin("v3").unwrap());
    let f2 = Frame::v2(1, 3, b"hello world, how are you")
        .unwrap()
        .to_bytes(Framing::V2);
    let f3 = Frame::v3(7, 2, b"hi").unwrap().to_bytes(Framing::V3);
    let over = [1, 0, 0, 0, 1, 0xEE, 0x6B, 0x28, 0x00];
    for (framing, def, buf, max, want) in [
        (
            Framing::V2,
            v2,
            &f2[..],
            0,
            "frame len=29 version=1 order=3 size=24",
        ),
        (Framing::V2, v2, &f2[..28], 0, "incomplete 29"),
        (
            Framing::V3,
            v3,
            &f3[..],
            2,
            "frame len=11 version=7 order=2 size=2",
        ),
        (Framing::V3, v3, &f3[..10], 2, "incomplete 11"),
        (Framing::V3, v3, &f3[..4], 2, "incomplete 9"),
        (Framing::V3, v3, &f3[..], 1, "over 2 1"),
        (
            Framing::V3,
            v3,
            &over[..],
            1 << 20,
            "over 4000000000 1048576",
        ),
    ] {
        let old = old_view(framing, buf, max);
        assert!(old.starts_with(want), "{old}");
        assert_eq!(new_view(def, buf, max), old);
    }
}

#[test]
fn contradictions_within_a_file() {
    let body = "[[field]]\nname = \"len\"\ntype = \"H\"\n[[field]]\nname = \"data\"\ntype = \"body\"\nlength = \"len\"\n";
    assert_refused(
        &format!("{HEAD}equals = 1\nexpect = 2\n"),
        6,
        10,
        "both equals and expect on \"n\"",
        "keep one",
    );
    assert_refused(
        &format!("name = \"x\"\nmax_body = 70000\n{body}"),
        2,
        12,
        "more than the length field \"len\" can say (65535)",
        "at most max_body = 65535",
    );
    assert_refused(
        &format!("name = \"x\"\nmax_body = 0\n{body}"),
        2,
        12,
        "max_body = 0",
        "the largest body believed",
    );
    assert_refused(
        &format!(
            "name = \"x\"\n{body}[[field]]\nname = \"sum\"\ntype = \"H\"\nchecksum = \"internet\"\nover = [\"len\", \"len\"]\n"
        ),
        13,
        16,
        "covers \"len\" twice",
        "once",
    );
    assert_refused(
        &format!(
            "name = \"x\"\n{body}[[field]]\nname = \"sum\"\ntype = \"H\"\nequals = 3\nchecksum = \"internet\"\nover = [\"len\"]\n"
        ),
        12,
        10,
        "equals on the checksum field \"sum\"",
        "remove equals",
    );
}
