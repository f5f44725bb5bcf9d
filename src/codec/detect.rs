//! Which framing does a stream carry? The one set of rules behind
//! `--proto auto` and the Lua dissector's auto mode, stated once in
//! [`crate::spec::AUTO_RULES`] (the generated dissector carries the same
//! text above its port of these functions):
//!
#![doc = include_str!("../auto-rules.md")]

use super::{Framing, Parse, parse, v2, v3};
use crate::spec;

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A binary framing.
    Framed(Framing),
    /// Raw text (no framing).
    Text,
}

/// A decision and the reason for it, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// What was found.
    pub detected: Detected,
    /// Why, for the user.
    pub reason: String,
}

/// How much of the client's first bytes there is to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// More may come at any moment.
    Streaming,
    /// The server answered: the client's request is complete.
    Answered,
    /// The stream ended (or the capture did).
    Ended,
}

/// Decides from `first`, the first bytes of the client's stream. Returns
/// `None` when it is too early to be sure.
pub fn detect(first: &[u8], stage: Stage, max_frame: u32) -> Option<Detection> {
    let complete = stage != Stage::Streaming;
    let v2 = v2_chain(first, complete);
    let v3 = v3_chain(first, max_frame, complete);
    let v2_exact = first.len() % v2::LEN == 0;
    // While the bytes stream in, they may be the start of v2 frames even
    // when v3 reads them exactly (a v2 frame cut after its message, before
    // its padding; or messages of 20 bytes and more, which show no padding).
    let v2_possible = v2.is_some() || (stage == Stage::Streaming && v2_prefix(first, max_frame));
    match (v2, v3) {
        // v3 explains every byte, v2 would leave a partial frame: v3.
        (Some(_), Some(reason)) if !v2_exact => {
            return Some(Detection {
                detected: Detected::Framed(Framing::V3),
                reason,
            });
        }
        // Frames whose message is exactly 20 bytes are the same 29 bytes in
        // v2 and v3: wait for a frame that tells them apart.
        (Some(_), Some(_)) if stage != Stage::Ended => return None,
        (Some(reason), _) => {
            return Some(Detection {
                detected: Detected::Framed(Framing::V2),
                reason,
            });
        }
        // The same bytes read as v3 fit exactly, but v2 is not ruled out:
        // wait for more.
        (None, Some(_)) if v2_possible && stage != Stage::Ended => return None,
        (None, Some(reason)) => {
            return Some(Detection {
                detected: Detected::Framed(Framing::V3),
                reason,
            });
        }
        (None, None) => {}
    }
    // Both framings need the lab's version byte first: without it nothing
    // that follows can make them fit, so text is certain at once.
    if let Some(&v) = first.first()
        && v != spec::LAB_VERSION
    {
        return Some(Detection {
            detected: Detected::Text,
            reason: format!(
                "first byte {v:#04x} is not the lab's version byte ({}): no v2/v3 header",
                spec::LAB_VERSION
            ),
        });
    }
    if !complete {
        return None;
    }
    let reason = if first.len() < v3::HEADER_LEN {
        format!(
            "{} bytes before the first answer: too short for a v2/v3 header",
            first.len()
        )
    } else if std::str::from_utf8(first).is_ok() {
        "printable text with no consistent v2/v3 header".to_string()
    } else {
        "no consistent v2/v3 header; shown as raw text".to_string()
    };
    Some(Detection {
        detected: Detected::Text,
        reason,
    })
}

/// How far into a stream picked up mid-stream a frame boundary is looked
/// for: a capture that begins inside a longer frame is shown as text.
pub const MIDSTREAM_SEARCH: usize = 64 * 1024;

/// A stream picked up mid-stream, decided: the framing and the offset of
/// its first whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aligned {
    /// The decision.
    pub detection: Detection,
    /// Bytes before the first frame boundary (the end of a frame sent
    /// before the capture began).
    pub skip: usize,
}

/// [`detect`] for a connection the capture picked up after it began: its
/// first bytes may be the end of a frame. Every offset where the lab's
/// version byte stands is tried as a frame boundary (v2's 29-byte stride
/// and v3's header chain then confirm it or not), and the first one from
/// which the rules find frames wins. Text only once the bytes are complete
/// and no offset fits. `None`: too early to tell.
pub fn detect_midstream(first: &[u8], stage: Stage, max_frame: u32) -> Option<Aligned> {
    let mut undecided = false;
    for (skip, &b) in first.iter().enumerate().take(MIDSTREAM_SEARCH) {
        if b != spec::LAB_VERSION {
            continue;
        }
        let rest = first.get(skip..).unwrap_or_default();
        match detect(rest, stage, max_frame) {
            Some(d) if d.detected != Detected::Text => {
                let mut detection = d;
                if skip > 0 {
                    detection.reason = format!(
                        "picked up mid-stream: from offset {skip} (the {skip} byte(s) before end a \
                         frame sent before the capture began), {}",
                        detection.reason
                    );
                }
                return Some(Aligned { detection, skip });
            }
            Some(_) => {}
            None => undecided = true,
        }
    }
    if stage == Stage::Streaming || (undecided && stage != Stage::Ended) {
        return None;
    }
    Some(Aligned {
        detection: Detection {
            detected: Detected::Text,
            reason: format!(
                "picked up mid-stream, and no v2/v3 frame boundary fits the first {} byte(s)",
                first.len().min(MIDSTREAM_SEARCH)
            ),
        },
        skip: 0,
    })
}

/// Where whole frames of `framing` begin in `b`, the first bytes of a
/// direction picked up mid-stream: the smallest offset from which they
/// chain as the auto rules require (`complete`: no more bytes will come
/// before the decision must be made). For a framing file: the first
/// whole frame passing every check of the file, else (every checksum
/// wrong) the first whose lengths and constants hold.
pub fn align(framing: Framing, b: &[u8], complete: bool, max_frame: u32) -> Option<usize> {
    let limit = match framing {
        Framing::V2 => v2::LEN,
        Framing::V3 => MIDSTREAM_SEARCH,
        Framing::Custom(d) if d.is_fixed() => d.spec.fixed_len(),
        Framing::Custom(_) => MIDSTREAM_SEARCH,
    };
    let found = (0..b.len().min(limit)).find(|&k| {
        let rest = b.get(k..).unwrap_or_default();
        match framing {
            Framing::V2 => {
                rest.first() == Some(&spec::LAB_VERSION) && v2_chain(rest, complete).is_some()
            }
            Framing::V3 => {
                rest.first() == Some(&spec::LAB_VERSION)
                    && v3_chain(rest, max_frame, complete).is_some()
                    && !oversized_first(rest, max_frame)
            }
            // A whole frame that passes every check of the file.
            Framing::Custom(_) => matches!(
                super::parse(framing, rest, max_frame),
                Ok(super::Parse::Frame(_))
            ),
        }
    });
    // A framing file's frames whose checksums all fail (a client with a
    // wrong CRC): the first whole frame whose lengths and constants hold.
    match framing {
        Framing::Custom(_) if found.is_none() => (0..b.len().min(limit)).find(|&k| {
            let rest = b.get(k..).unwrap_or_default();
            matches!(
                super::parse_lenient(framing, rest, max_frame),
                Ok((super::Parse::Frame(_), _))
            )
        }),
        _ => found,
    }
}

/// A first v3 header whose size is over the limit: the auto rules count it
/// as v3 at the start of a connection, never as a boundary found mid-stream.
fn oversized_first(b: &[u8], max_frame: u32) -> bool {
    b.get(..v3::HEADER_LEN)
        .is_some_and(|h| parse(Framing::V3, h, max_frame).is_err())
}

fn v2_chain(b: &[u8], complete: bool) -> Option<String> {
    let whole = b.len() / v2::LEN;
    // Until the bytes are complete, only an exact multiple is certain; once
    // complete (the server already answered), a client that pipelines may
    // have sent part of its next frame: judge the whole frames.
    if whole == 0 || (!complete && b.len() % v2::LEN != 0) {
        return None;
    }
    let mut first: Option<(u8, u32)> = None;
    let mut n: u32 = 0;
    // A frame whose size is under 20 shows its '-' padding: proof of v2.
    // With 20 or more there is nothing to check, and the bytes may as well
    // be the start of a longer v3 frame: not enough before the answer.
    let mut padding_seen = false;
    for chunk in b.chunks_exact(v2::LEN) {
        let f = v2::view(chunk)?;
        if !f.padding_ok() {
            return None;
        }
        padding_seen |= !f.padding.is_empty();
        match first {
            None => first = Some((f.version, f.order)),
            Some((v, o)) => {
                if f.version != v || f.order != o.wrapping_add(n) {
                    return None;
                }
            }
        }
        n = n.saturating_add(1);
    }
    let (v, o) = first?;
    if v != spec::LAB_VERSION || !(padding_seen || complete) {
        return None;
    }
    Some(format!(
        "{n} whole 29-byte frame(s), version {v}, order {o}..{}{}",
        o.wrapping_add(n.saturating_sub(1)),
        if padding_seen { ", '-' padding" } else { "" }
    ))
}

/// Whether `b` can be the start of a v2 stream: its whole frames agree (as
/// [`v2_chain`] judges complete bytes) and the frame they end inside agrees
/// so far (version, next order, `-` in the padding bytes already there).
///
/// A `size` over `max_frame` is no typed message: not v2.
fn v2_prefix(b: &[u8], max_frame: u32) -> bool {
    let whole = b.len() / v2::LEN;
    let cut = whole.saturating_mul(v2::LEN);
    let (frames, tail) = b.split_at(cut.min(b.len()));
    let (version, next_order) = if whole > 0 {
        if v2_chain(frames, true).is_none() {
            return false;
        }
        let Some(first) = frames.get(..v2::LEN).and_then(v2::view) else {
            return false;
        };
        (
            first.version,
            first
                .order
                .wrapping_add(u32::try_from(whole).unwrap_or(u32::MAX)),
        )
    } else {
        (spec::LAB_VERSION, 0)
    };
    if let Some(&v) = tail.first()
        && v != version
    {
        return false;
    }
    if whole > 0
        && let Some(o) = read_order(tail)
        && o != next_order
    {
        return false;
    }
    if let Some(size) = tail
        .get(5..9)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
    {
        if size > max_frame {
            return false;
        }
        let content = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .min(spec::V2_MESSAGE_WIDTH);
        let padding = tail
            .get(v3::HEADER_LEN.saturating_add(content)..)
            .unwrap_or_default();
        if padding.iter().any(|&b| b != v2::PAD) {
            return false;
        }
    }
    true
}

fn v3_chain(b: &[u8], max_frame: u32, complete: bool) -> Option<String> {
    // The lab's first frame: version 1, order 1. A size over the limit is
    // still v3 (so the oversized claim gets reported as such).
    if let Some(h) = b.get(..v3::HEADER_LEN)
        && let Err(e) = parse(Framing::V3, h, max_frame)
        && h.get(..5) == Some(&[1, 0, 0, 0, 1])
    {
        return Some(format!(
            "a v3 header (version 1, order 1) whose size is over the limit: {e}"
        ));
    }
    let mut at = 0usize;
    let mut first: Option<(u8, u32)> = None;
    let mut n: u32 = 0;
    while at < b.len() {
        let rest = b.get(at..)?;
        if first.is_none() && rest.first() != Some(&spec::LAB_VERSION) {
            return None;
        }
        let f = match parse(Framing::V3, rest, max_frame) {
            Ok(Parse::Frame(f)) => f,
            // A sane header whose message is still coming: v3, cut short,
            // once nothing more is expected and earlier frames agreed.
            Ok(Parse::Incomplete { .. }) if complete && rest.len() >= v3::HEADER_LEN => {
                let (v, o) = first.unwrap_or((rest.first().copied()?, 0));
                let ok = rest.first() == Some(&v)
                    && (first.is_none() || read_order(rest) == Some(o.wrapping_add(n)));
                if !ok {
                    return None;
                }
                return Some(format!(
                    "{} header(s) whose size matches the bytes that follow, the last one cut short",
                    n.saturating_add(1)
                ));
            }
            _ => return None,
        };
        match first {
            None => first = Some((f.version, f.order)),
            Some((v, o)) => {
                if f.version != v || f.order != o.wrapping_add(n) {
                    return None;
                }
            }
        }
        n = n.saturating_add(1);
        at = at.saturating_add(f.raw.len());
    }
    let (v, o) = first?;
    Some(format!(
        "{n} header(s) whose size matches the bytes that follow exactly, version {v}, order {o}..{}",
        o.wrapping_add(n.saturating_sub(1))
    ))
}

fn read_order(h: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(h.get(1..5)?.try_into().ok()?))
}

/// How the first bytes of a stream fare as one framing file's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fit {
    /// They are its frames, this well.
    Yes(Fitted),
    /// Too early to say.
    Wait,
    /// They are not: why.
    No(String),
}

/// A framing file the first bytes fit, and how well: what the ranking of
/// [`detect_with`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fitted {
    /// Why, in words.
    why: String,
    /// The whole frames end exactly where the bytes end (no partial tail,
    /// no broken frame after them).
    exact: bool,
    /// How many of the file's `equals` and `checksum` checks verified (the
    /// `equals` on every whole frame; a checksum on at least one frame).
    held: usize,
    /// A checksum failed on some frame (its lengths and constants held).
    failed: bool,
}

impl Fitted {
    /// The ranking: an exact fit first, then more checks verified, then no
    /// checksum failure. Larger is better; ties keep the command-line order.
    fn key(&self) -> (bool, usize, bool) {
        (self.exact, self.held, !self.failed)
    }

    /// Why `self` ranks below `better`, in words.
    fn below(&self, better: &Fitted) -> &'static str {
        if better.exact && !self.exact {
            "its frames leave a partial tail or a broken frame, the other's end exactly"
        } else if better.held > self.held {
            "fewer of its equals/checksum checks verified"
        } else if self.failed && !better.failed {
            "a checksum fails in it"
        } else {
            "a tie, and it was given later on the command line"
        }
    }
}

/// The checks of a framing file, in words, for a detection's reason:
/// `"version = 2, crc32 of crc right"`; empty when it has none.
fn checks_held(def: &crate::framing::FramingDef) -> String {
    def.checks
        .iter()
        .filter_map(|c| match *c {
            spec::Check::Equals { field, value } => Some(format!("{field} = {value}")),
            spec::Check::Checksum {
                field, algorithm, ..
            } => Some(format!("every {} {field} right", algorithm.name())),
            spec::Check::Expect { .. } => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a framing file with no `equals` or `checksum` has none to hold, in
/// words (its `expect` checks are only reported, they decide nothing).
fn no_checks(def: &crate::framing::FramingDef) -> &'static str {
    if def
        .checks
        .iter()
        .any(|c| matches!(c, spec::Check::Expect { .. }))
    {
        "the file has no equals or checksum to verify (its expect checks are only reported, they decide nothing)"
    } else {
        "the file has no check at all, only its lengths chaining speak for it"
    }
}

/// Whether `b`, the first bytes of a stream, are frames of `framing` (a
/// framing file), and how well: whole frames one after the other from the
/// first byte, at least one, every `equals` holding. A frame whose only
/// fault is a wrong checksum still counts (its length is trusted; it is
/// reported when decoding), but ranks the fit lower. After the first
/// frame, a frame may be cut short or break a constant (then the fit is
/// not exact). A first frame whose header breaks an `equals` is refused at
/// once (the codec checks a header's constants as soon as its bytes are
/// in); one whose length is over `max_body` fits only when the header's
/// `equals` checks (at least one) hold, so the claim gets reported, as
/// v3's oversized first header.
fn custom_fit(framing: Framing, b: &[u8], complete: bool, max_frame: u32) -> Fit {
    let Framing::Custom(def) = framing else {
        return Fit::No("not a framing file".into());
    };
    let equals = def
        .checks
        .iter()
        .filter(|c| matches!(c, spec::Check::Equals { .. }))
        .count();
    let checksums = def
        .checks
        .iter()
        .filter(|c| matches!(c, spec::Check::Checksum { .. }))
        .count();
    let mut at = 0usize;
    let mut n = 0u64;
    let mut clean = 0u64;
    let mut first_failure: Option<(usize, String)> = None;
    let mut failures = 0u64;
    let (after, exact) = loop {
        let rest = b.get(at..).unwrap_or_default();
        if rest.is_empty() {
            break (String::new(), true);
        }
        match super::parse_lenient(framing, rest, max_frame) {
            Ok((Parse::Frame(f), bad)) if !f.raw.is_empty() => {
                n = n.saturating_add(1);
                match bad {
                    None => clean = clean.saturating_add(1),
                    Some(e) => {
                        failures = failures.saturating_add(1);
                        first_failure.get_or_insert((at, e.to_string()));
                    }
                }
                at = at.saturating_add(f.raw.len());
            }
            Ok(_) if n > 0 => break (", then the start of another".into(), false),
            Ok((Parse::Incomplete { need }, _)) if complete => {
                return Fit::No(format!(
                    "{} byte(s) before the first answer, less than its first frame would need ({need})",
                    b.len()
                ));
            }
            Ok(_) if complete => {
                return Fit::No(format!(
                    "{} byte(s) before the first answer: not one whole frame",
                    b.len()
                ));
            }
            Ok(_) => return Fit::Wait,
            Err(e) if n > 0 => break (format!(", then at offset {at}: {e}"), false),
            Err(super::DecodeError::Framing(
                e @ crate::framing::codec::DecodeError::LengthOverMax { .. },
            )) if equals > 0 => {
                return Fit::Yes(Fitted {
                    why: format!(
                        "a first header whose constants hold ({}), but {e}",
                        checks_held(def)
                    ),
                    exact: false,
                    held: equals,
                    failed: false,
                });
            }
            Err(e) => return Fit::No(format!("at offset {at}: {e}")),
        }
    };
    let held = equals.saturating_add(if clean > 0 { checksums } else { 0 });
    let checks = match &first_failure {
        None if equals == 0 && checksums == 0 => no_checks(def).to_string(),
        None => format!("every check holds ({})", checks_held(def)),
        Some((off, e)) => {
            let constants = if equals > 0 {
                "its constants hold, "
            } else {
                ""
            };
            format!(
                "{constants}{failures} of them with a wrong checksum (the first at offset {off}: {e})"
            )
        }
    };
    Fit::Yes(Fitted {
        why: format!("{n} whole frame(s) chain over {at} byte(s), {checks}{after}"),
        exact,
        held,
        failed: failures > 0,
    })
}

/// Printable text: UTF-8 with no control characters but tab, CR and LF.
fn printable(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n'))
    })
}

/// Whether the built-in rules' decision on `b` rests on as much evidence
/// as a framing file's lengths alone: v2 or v3 frames that end exactly
/// where the bytes end, or printable text.
fn builtin_is_sure(d: &Detected, b: &[u8], max_frame: u32) -> bool {
    match d {
        Detected::Text => printable(b),
        Detected::Framed(Framing::V2) => !b.is_empty() && b.len() % v2::LEN == 0,
        Detected::Framed(_) => {
            let mut at = 0usize;
            while let Some(rest) = b.get(at..).filter(|r| !r.is_empty()) {
                match parse(Framing::V3, rest, max_frame) {
                    Ok(Parse::Frame(f)) if !f.raw.is_empty() => {
                        at = at.saturating_add(f.raw.len());
                    }
                    _ => return false,
                }
            }
            at > 0
        }
    }
}

/// What the ranking of framing files decided.
enum Choice {
    /// This file (index into the fits), with the reason.
    File(usize, String),
    /// The built-in rules decide; add these to their reason.
    Builtin(Vec<String>),
    /// Too early.
    Wait,
}

/// Ranks the files that fit (`fits`, in command-line order; `nots` says
/// why the others did not) as [`detect_with`] documents. `builtin` is the
/// built-in rules' decision on the same bytes (asked only when needed).
fn choose(
    fits: &[(Framing, Fitted)],
    mut nots: Vec<String>,
    complete: bool,
    builtin: impl FnOnce() -> Option<(Detected, bool)>,
) -> Choice {
    // The best of the files `keep` lets in: the largest key, the first
    // given on a tie.
    let best = |keep: &dyn Fn(&Fitted) -> bool| {
        fits.iter().enumerate().filter(|(_, (_, x))| keep(x)).fold(
            None::<(usize, &Fitted)>,
            |acc, (i, (_, x))| match acc {
                Some((a, ax)) if ax.key() >= x.key() => Some((a, ax)),
                _ => Some((i, x)),
            },
        )
    };
    let (pick, chosen) = match best(&|x| x.held > 0) {
        Some(p) => p,
        None => {
            // No file has a check that verified: only its lengths chaining
            // speak for it. That is as much as the built-in rules' v2/v3
            // frames ending exactly, or printable text: they win those;
            // the file takes the rest, if its frames end exactly.
            if !complete {
                return Choice::Wait;
            }
            let Some(p) = fits.iter().enumerate().find(|(_, (_, x))| x.exact) else {
                for (f, x) in fits {
                    nots.push(format!(
                        "not {}: {}, but no check verified and the frames do not end exactly where the bytes do",
                        f.name(),
                        x.why
                    ));
                }
                return Choice::Builtin(nots);
            };
            let Some((d, sure)) = builtin() else {
                return Choice::Wait;
            };
            if sure {
                for (f, x) in fits {
                    nots.push(format!(
                        "not {}: {}, but no check of it verified, and the built-in rules' {} has as much evidence",
                        f.name(),
                        x.why,
                        match d {
                            Detected::Text => "printable text",
                            Detected::Framed(_) => "exact frames",
                        }
                    ));
                }
                return Choice::Builtin(nots);
            }
            (p.0, &p.1.1)
        }
    };
    let mut reason = chosen.why.clone();
    for (j, (f, x)) in fits.iter().enumerate() {
        if j != pick {
            reason.push_str(&format!(
                "; also fits {} ({}), ranked lower: {}",
                f.name(),
                x.why,
                if x.held == 0 && chosen.held > 0 {
                    "no equals/checksum check of it verified"
                } else {
                    x.below(chosen)
                }
            ));
        }
    }
    if chosen.held == 0 {
        reason.push_str(
            "; no check of the file verified, but its frames end exactly and the built-in rules \
             have no v2/v3 frames ending exactly nor printable text",
        );
    }
    for n in &nots {
        reason.push_str("; ");
        reason.push_str(n);
    }
    Choice::File(pick, reason)
}

/// [`detect`] with framing files (`--framing`): each of `customs` is tried
/// first, and the files given explicitly win over the built-in v2 and v3.
/// While a file may still fit, or more than one fits, the decision waits
/// until the bytes are complete. When none fits, the built-in rules
/// decide, and the reason says why each file did not.
///
/// A framing file fits when the bytes from the first on are whole frames
/// of it, at least one, every `equals` holding; a frame whose only fault
/// is a wrong checksum still counts (its length is trusted, and the
/// decoder reports it as `framing.checksum`). A header that breaks an
/// `equals` rules the file out at once. The files that fit are ranked:
///
/// 1. frames that end exactly where the client's bytes (before the
///    server's answer) end beat a partial tail or a broken frame after them;
/// 2. then more `equals`/`checksum` checks verified beat fewer (a checksum
///    counts when it verified on at least one frame);
/// 3. then no checksum failure beats one;
/// 4. ties keep the command-line order.
///
/// A file none of whose checks verified (it has none, or every checksum
/// failed) has only its lengths for it: it is chosen only when its frames
/// end exactly and the built-in rules have no v2/v3 frames ending exactly
/// nor printable text (those win); else the built-in rules decide.
pub fn detect_with(
    customs: &[Framing],
    first: &[u8],
    stage: Stage,
    max_frame: u32,
) -> Option<Detection> {
    let complete = stage != Stage::Streaming;
    let mut nots: Vec<String> = Vec::new();
    let mut fits: Vec<(Framing, Fitted)> = Vec::new();
    let mut waiting = false;
    // (v2 and v3 given as files are the built-in rules' own.)
    for &f in customs.iter().filter(|f| f.def().is_some()) {
        match custom_fit(f, first, complete, max_frame) {
            Fit::Yes(x) => fits.push((f, x)),
            Fit::Wait => waiting = true,
            Fit::No(why) => nots.push(format!("not {}: {why}", f.name())),
        }
    }
    if waiting || (!complete && fits.len() > 1) {
        return None;
    }
    let mut builtin_d = None;
    let choice = if fits.is_empty() {
        Choice::Builtin(nots)
    } else {
        choose(&fits, nots, complete, || {
            let d = detect(first, stage, max_frame)?;
            let sure = builtin_is_sure(&d.detected, first, max_frame);
            builtin_d = Some(d.clone());
            Some((d.detected, sure))
        })
    };
    match choice {
        Choice::Wait => None,
        Choice::File(i, reason) => Some(Detection {
            detected: Detected::Framed(fits.get(i)?.0),
            reason,
        }),
        Choice::Builtin(nots) => {
            let mut d = match builtin_d {
                Some(d) => d,
                None => detect(first, stage, max_frame)?,
            };
            for n in &nots {
                d.reason.push_str("; ");
                d.reason.push_str(n);
            }
            Some(d)
        }
    }
}

/// [`detect_midstream`] with framing files: each of `customs` is tried
/// first, from the first offset where its whole frames begin ([`align`])
/// and fit as [`detect_with`] says; the files that fit are ranked as
/// there; else the built-in rules decide, and the reason says why each
/// file did not.
pub fn detect_midstream_with(
    customs: &[Framing],
    first: &[u8],
    stage: Stage,
    max_frame: u32,
) -> Option<Aligned> {
    let complete = stage != Stage::Streaming;
    let mut nots: Vec<String> = Vec::new();
    let mut fits: Vec<(Framing, Fitted)> = Vec::new();
    let mut skips: Vec<usize> = Vec::new();
    // (v2 and v3 given as files are the built-in rules' own.)
    for &f in customs.iter().filter(|f| f.def().is_some()) {
        let found = align(f, first, complete, max_frame).and_then(|skip| {
            let rest = first.get(skip..).unwrap_or_default();
            match custom_fit(f, rest, complete, max_frame) {
                Fit::Yes(x) => Some((skip, x)),
                _ => None,
            }
        });
        match found {
            Some((skip, x)) => {
                skips.push(skip);
                fits.push((f, x));
            }
            // More bytes may show a boundary.
            None if !complete => return None,
            None => nots.push(format!(
                "not {}: no whole frame of it begins in the first {} byte(s)",
                f.name(),
                first.len().min(MIDSTREAM_SEARCH)
            )),
        }
    }
    if !complete && fits.len() > 1 {
        return None;
    }
    let mut builtin_a = None;
    let choice = if fits.is_empty() {
        Choice::Builtin(nots)
    } else {
        choose(&fits, nots, complete, || {
            let a = detect_midstream(first, stage, max_frame)?;
            let rest = first.get(a.skip..).unwrap_or_default();
            let sure = builtin_is_sure(&a.detection.detected, rest, max_frame);
            let d = a.detection.detected;
            builtin_a = Some(a);
            Some((d, sure))
        })
    };
    match choice {
        Choice::Wait => None,
        Choice::File(i, why) => {
            let skip = *skips.get(i)?;
            let reason = if skip > 0 {
                format!(
                    "picked up mid-stream: from offset {skip} (the {skip} byte(s) before end a \
                     frame sent before the capture began), {why}"
                )
            } else {
                why
            };
            Some(Aligned {
                detection: Detection {
                    detected: Detected::Framed(fits.get(i)?.0),
                    reason,
                },
                skip,
            })
        }
        Choice::Builtin(nots) => {
            let mut a = match builtin_a {
                Some(a) => a,
                None => detect_midstream(first, stage, max_frame)?,
            };
            for n in &nots {
                a.detection.reason.push_str("; ");
                a.detection.reason.push_str(n);
            }
            Some(a)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        reason = "a panic in a test is a failed test"
    )]

    use super::*;
    use crate::codec::Frame;

    fn stream(framing: Framing, msgs: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let o = u32::try_from(i).unwrap() + 1;
            let f = match framing {
                Framing::V2 => Frame::v2(1, o, m.as_bytes()),
                Framing::V3 => Frame::v3(1, o, m.as_bytes()),
                Framing::Custom(_) => panic!("a test of v2 and v3 only"),
            };
            f.unwrap().encode(framing, &mut out);
        }
        out
    }

    #[test]
    fn a_stream_picked_up_inside_a_frame_is_aligned() {
        let v2s = stream(Framing::V2, &["one", "two", "three", "four"]);
        // The last 12 bytes of frame 1, then frames 2..4.
        let b = &v2s[29 - 12..];
        let a = detect_midstream(b, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(a.detection.detected, Detected::Framed(Framing::V2));
        assert_eq!(a.skip, 12);
        assert!(
            a.detection.reason.contains("from offset 12"),
            "{}",
            a.detection.reason
        );
        assert_eq!(align(Framing::V2, b, false, 1 << 20), Some(12));
        let v3s = stream(Framing::V3, &["a longer first message", "two", "three"]);
        // 10 bytes of frame 1's message, then frames 2 and 3.
        let b = &v3s[31 - 10..];
        let a = detect_midstream(b, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(a.detection.detected, Detected::Framed(Framing::V3));
        assert_eq!(a.skip, 10);
        assert_eq!(align(Framing::V3, b, false, 1 << 20), Some(10));
        // On a boundary: offset 0, as detect says.
        let a = detect_midstream(&v2s, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(a.skip, 0);
        // Text, once complete; too early while streaming.
        assert_eq!(
            detect_midstream(b"hello there\x01 again", Stage::Streaming, 1 << 20),
            None
        );
        let a = detect_midstream(b"hello there\x01 again", Stage::Answered, 1 << 20).unwrap();
        assert_eq!(a.detection.detected, Detected::Text);
    }

    #[test]
    fn v2_v3_and_text_are_told_apart() {
        let b = stream(Framing::V2, &["hello", "a much longer message than 20"]);
        let d = detect(&b, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V2));
        assert!(d.reason.contains("order 1..2"), "{}", d.reason);

        // A v3 frame of exactly 29 bytes (size 20) is not mistaken for v2
        // unless its bytes look like v2 padding.
        let b = stream(Framing::V3, &["hello world!", "", "twenty characters!!!"]);
        let d = detect(&b, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V3));

        // Text is certain from its first byte (not the version byte 1).
        let d = detect(b"hello", Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Text);
        assert!(d.reason.contains("0x68"), "{}", d.reason);
        assert_eq!(detect(b"\x01hel", Stage::Streaming, 1 << 20), None);
        let d = detect(b"hello", Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Text);
        let d = detect(b"hello world, this is text", Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Text);
    }

    #[test]
    fn regressions_from_review() {
        // A v3 client whose first message is exactly 20 characters: the
        // same 29 bytes as v2, so wait for the next frame...
        let b = stream(Framing::V3, &["twenty characters!!!", "hi"]);
        assert_eq!(detect(&b[..29], Stage::Answered, 1 << 20), None);
        // ...which settles it.
        let d = detect(&b, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V3));
        // At the very end, either decodes those bytes the same.
        assert!(detect(&b[..29], Stage::Ended, 1 << 20).is_some());
        // A 29-byte text line is text (version byte 't').
        let line = b"this line is 29 bytes long!!!";
        assert_eq!(line.len(), 29);
        assert_eq!(
            detect(line, Stage::Answered, 1 << 20).unwrap().detected,
            Detected::Text
        );
        // A v2 client whose first message is exactly 20 characters: its 29
        // bytes read as v3 fit exactly too, so wait, even while streaming,
        // for the padding of a later frame.
        let b = stream(Framing::V2, &["twenty characters!!!", "hi"]);
        assert_eq!(detect(&b[..29], Stage::Streaming, 1 << 20), None);
        assert_eq!(
            detect(&b, Stage::Streaming, 1 << 20).unwrap().detected,
            Detected::Framed(Framing::V2)
        );
        // A v2 frame cut right after its message (9 + size bytes) reads as
        // a whole v3 frame: while streaming, wait for its padding.
        let b = stream(Framing::V2, &["split in three"]);
        assert_eq!(detect(&b[..23], Stage::Streaming, 1 << 20), None);
        assert_eq!(detect(&b[..4], Stage::Streaming, 1 << 20), None);
        assert_eq!(
            detect(&b, Stage::Streaming, 1 << 20).unwrap().detected,
            Detected::Framed(Framing::V2)
        );
        // A short v3 request: v3 once the server answers (or more comes
        // that v2 cannot explain).
        let b = stream(Framing::V3, &["hello", "world"]);
        assert_eq!(detect(&b[..14], Stage::Streaming, 1 << 20), None);
        assert_eq!(
            detect(&b[..14], Stage::Answered, 1 << 20).unwrap().detected,
            Detected::Framed(Framing::V3)
        );
        assert_eq!(
            detect(&b, Stage::Streaming, 1 << 20).unwrap().detected,
            Detected::Framed(Framing::V3)
        );
        // A long v3 frame arriving in small segments is not v2.
        let big = stream(Framing::V3, &[&"x".repeat(100)]);
        assert_eq!(detect(&big[..29], Stage::Streaming, 1 << 20), None);
        assert_eq!(detect(&big[..58], Stage::Streaming, 1 << 20), None);
        assert_eq!(
            detect(&big, Stage::Streaming, 1 << 20).unwrap().detected,
            Detected::Framed(Framing::V3)
        );
    }

    #[test]
    fn pipelined_v2_is_judged_on_its_whole_frames_once_answered() {
        // overlap.pcap's case: 29 bytes + 15 of the next frame when the
        // server answers the first.
        let b = stream(Framing::V2, &["first", "hello, world"]);
        assert_eq!(detect(&b[..44], Stage::Streaming, 1 << 20), None);
        let d = detect(&b[..44], Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V2));
    }

    #[test]
    fn an_incomplete_frame_waits_then_falls_back_to_text() {
        let b = stream(Framing::V3, &["hello world!"]);
        assert_eq!(detect(&b[..15], Stage::Streaming, 1 << 20), None);
        // Complete but cut: still v3 (its header is sane), so the decoder
        // can report the truncated frame.
        assert_eq!(
            detect(&b[..15], Stage::Answered, 1 << 20).unwrap().detected,
            Detected::Framed(Framing::V3)
        );
        assert_eq!(
            detect(&b[..7], Stage::Answered, 1 << 20).unwrap().detected,
            Detected::Text
        );
    }

    #[test]
    fn an_oversized_first_v3_header_is_still_v3() {
        // struct.pack('!BLL', 1, 1, 4_000_000_000) + b'xx'
        let mut b = vec![1, 0, 0, 0, 1, 0xEE, 0x6B, 0x28, 0x00];
        b.extend_from_slice(b"xx");
        let d = detect(&b, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V3));
        assert!(d.reason.contains("4000000000"), "{}", d.reason);
        // Another version or order: not the lab's first frame, so text.
        b[4] = 9;
        assert_eq!(
            detect(&b, Stage::Answered, 1 << 20).unwrap().detected,
            Detected::Text
        );
    }

    /// A framing file, loaded for the test.
    fn file(name: &str, text: &str) -> Framing {
        Framing::Custom(Box::leak(Box::new(
            crate::framing::parse(text, name).unwrap(),
        )))
    }

    fn typed() -> Framing {
        file(
            "typed.toml",
            include_str!("../../fixtures/framings/typed.toml"),
        )
    }

    fn crc() -> Framing {
        file(
            "crc-trailer.toml",
            include_str!("../../fixtures/framings/crc-trailer.toml"),
        )
    }

    fn custom(framing: Framing, key: u32, m: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Frame::v3(1, key, m)
            .unwrap()
            .try_encode(framing, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_framing_file_s_frames_are_detected_and_say_why() {
        let (t, c) = (typed(), crc());
        let b = [custom(t, 1, b"hi"), custom(t, 2, b"there")].concat();
        let d = detect_with(&[t], &b, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(t));
        assert!(d.reason.contains("2 whole frame(s)"), "{}", d.reason);
        assert!(d.reason.contains("version = 3"), "{}", d.reason);
        // A file given before that may still fit (crc-trailer reads these
        // bytes as a header with a long body): wait while streaming; once
        // answered, it is ruled out and said why.
        assert_eq!(detect_with(&[c, t], &b, Stage::Streaming, 1 << 20), None);
        let d = detect_with(&[c, t], &b, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(t));
        assert!(d.reason.contains("; not crc-trailer: "), "{}", d.reason);
        // A frame cut short is not enough while streaming.
        assert_eq!(detect_with(&[t], &b[..4], Stage::Streaming, 1 << 20), None);
    }

    #[test]
    fn a_broken_header_constant_rules_a_file_out_at_once_and_the_built_in_rules_decide() {
        let t = typed();
        // A v3 stream's first header: version 1, not typed's 3; decided
        // while streaming, without waiting for the file.
        let b = stream(Framing::V3, &["hello world, this is v3"]);
        let d = detect_with(&[t], &b, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V3));
        assert!(
            d.reason.contains("; not typed: at offset 0: version is 1"),
            "{}",
            d.reason
        );
        // Text, the same.
        let d = detect_with(&[t], b"hello\n", Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Text);
    }

    #[test]
    fn a_bad_checksum_does_not_rule_a_file_out_and_ranks_below_one_that_verifies() {
        let c = crc();
        let good = custom(c, 1, b"good");
        let mut bad = custom(c, 2, b"bad");
        *bad.last_mut().unwrap() ^= 1;
        // A client whose very first CRC is wrong: still crc-trailer (its
        // length and trailer chain exactly), said why.
        let d = detect_with(&[c], &bad, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(c), "{}", d.reason);
        assert!(
            d.reason
                .contains("1 of them with a wrong checksum (the first at offset 0: crc is"),
            "{}",
            d.reason
        );
        // After a good frame, a bad one is no partial tail: the fit is exact.
        let b = [good.clone(), bad.clone()].concat();
        let d = detect_with(&[c], &b, Stage::Streaming, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(c));
        assert!(
            d.reason
                .contains(&format!("the first at offset {}: crc is", good.len())),
            "{}",
            d.reason
        );
        // The same file twice, one copy seeing only the good frame first:
        // verified checksums rank above failed ones.
        let c2 = crc();
        let all_good = [good.clone(), custom(c, 2, b"bad")].concat();
        assert_eq!(
            custom_fit(c, &all_good, true, 1 << 20),
            Fit::Yes(Fitted {
                why: format!(
                    "2 whole frame(s) chain over {} byte(s), every check holds (every crc32 crc right)",
                    all_good.len()
                ),
                exact: true,
                held: 1,
                failed: false,
            })
        );
        let Fit::Yes(fb) = custom_fit(c2, &b, true, 1 << 20) else {
            panic!("crc-trailer must fit");
        };
        assert!(fb.failed && fb.exact && fb.held == 1, "{fb:?}");
        let Fit::Yes(fg) = custom_fit(c, &all_good, true, 1 << 20) else {
            panic!("crc-trailer must fit");
        };
        assert!(fg.key() > fb.key());
    }

    /// The framing files of the review's cases.
    fn padded() -> Framing {
        // Fixed 16-byte frames: a magic byte, a count, 14 bytes of text.
        file(
            "padded.toml",
            "name = \"padded\"\nstruct = \"!BB14s\"\nnames = [\"magic\", \"n\", \"text\"]\n\
             [field.magic]\nequals = 170\n",
        )
    }

    fn leq() -> Framing {
        // The same magic byte, then a one-byte length and the body.
        file(
            "leq.toml",
            "name = \"leq\"\n[[field]]\nname = \"magic\"\ntype = \"B\"\nequals = 170\n\
             [[field]]\nname = \"len\"\ntype = \"B\"\n\
             [[field]]\nname = \"body\"\ntype = \"body\"\nlength = \"len\"\n",
        )
    }

    fn plain() -> Framing {
        file(
            "plain.toml",
            "name = \"plain\"\nstruct = \"!HH\"\nnames = [\"a\", \"b\"]\n",
        )
    }

    fn inet() -> Framing {
        file(
            "inet.toml",
            "name = \"inet\"\n[[field]]\nname = \"n\"\ntype = \"H\"\n[[field]]\nname = \"data\"\n\
             type = \"body\"\nlength = \"n\"\n[[field]]\nname = \"sum\"\ntype = \"H\"\n\
             checksum = \"internet\"\nover = [\"n\", \"data\"]\n",
        )
    }

    #[test]
    fn an_exact_fit_beats_a_partial_tail_whatever_the_order() {
        let (p, l) = (padded(), leq());
        // Two 16-byte padded frames that leq reads as 2 frames of 11
        // bytes, then the start of a longer one.
        let mut b = vec![0u8; 32];
        b[0] = 170;
        b[1] = 9;
        b[11] = 170;
        b[12] = 9;
        b[16] = 170;
        b[17] = 3;
        b[22] = 170;
        b[23] = 200;
        let Fit::Yes(fl) = custom_fit(l, &b, true, 1 << 20) else {
            panic!("leq must fit");
        };
        assert!(!fl.exact, "{fl:?}");
        let d = detect_with(&[l, p], &b, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(p), "{}", d.reason);
        assert!(
            d.reason
                .starts_with("2 whole frame(s) chain over 32 byte(s)"),
            "{}",
            d.reason
        );
        assert!(
            d.reason
                .contains("; also fits leq (2 whole frame(s) chain over 22 byte(s)")
                && d.reason
                    .contains("ranked lower: its frames leave a partial tail"),
            "{}",
            d.reason
        );
        assert_eq!(
            detect_with(&[p, l], &b, Stage::Answered, 1 << 20)
                .unwrap()
                .detected,
            Detected::Framed(p)
        );
        // While the bytes stream in, two files that fit wait.
        assert_eq!(detect_with(&[l, p], &b, Stage::Streaming, 1 << 20), None);
        // A tie keeps the command-line order.
        let p2 = padded();
        let d = detect_with(&[p2, p], &b, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(p2));
        assert!(
            d.reason.contains("a tie, and it was given later"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn a_file_with_no_checks_claims_only_what_the_built_in_rules_cannot() {
        let (pl, i) = (plain(), inet());
        // Two inet frames (8 bytes each): plain reads them as 4 frames.
        let mut b = Vec::new();
        for m in [&b"abcd"[..], b"wxyz"] {
            let mut f = vec![0, 4];
            f.extend_from_slice(m);
            let sum = crate::framing::codec::checksum(spec::ChecksumKind::Internet, [&f[..]]);
            f.extend_from_slice(&u16::try_from(sum).unwrap().to_be_bytes());
            b.extend_from_slice(&f);
        }
        let d = detect_with(&[pl, i], &b, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(i), "{}", d.reason);
        assert!(
            d.reason
                .contains("also fits plain (4 whole frame(s) chain over 16 byte(s), the file has no check at all"),
            "{}",
            d.reason
        );
        // Printable text is text, though plain's lengths chain over it.
        let t = b"hello world\n";
        let d = detect_with(&[pl], t, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Text, "{}", d.reason);
        assert!(d.reason.contains("; not plain: "), "{}", d.reason);
        // A v2 client is v2.
        let v = stream(Framing::V2, &["one", "two", "three", "four"]);
        let d = detect_with(&[pl], &v, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(Framing::V2), "{}", d.reason);
        // Binary bytes the built-in rules have nothing for: plain.
        let raw = [0u8, 7, 0xfe, 3, 0, 9, 0x80, 1];
        let d = detect_with(&[pl], &raw, Stage::Answered, 1 << 20).unwrap();
        assert_eq!(d.detected, Detected::Framed(pl), "{}", d.reason);
        assert!(
            d.reason.contains("no check of the file verified"),
            "{}",
            d.reason
        );
        // Never while streaming: only complete bytes can be judged so.
        assert_eq!(detect_with(&[pl], &raw, Stage::Streaming, 1 << 20), None);
    }

    #[test]
    fn a_file_with_only_expect_checks_says_so() {
        let e = file(
            "soft.toml",
            "name = \"soft\"\nstruct = \"!BB\"\nnames = [\"v\", \"w\"]\n[field.v]\nexpect = 1\n",
        );
        let Fit::Yes(x) = custom_fit(e, &[1, 2, 1, 3], true, 1 << 20) else {
            panic!("soft must fit");
        };
        assert!(
            x.why
                .contains("the file has no equals or checksum to verify (its expect checks"),
            "{}",
            x.why
        );
        assert!(!x.why.contains("no check to hold"), "{}", x.why);
    }

    #[test]
    fn mid_stream_a_framing_file_is_found_after_the_end_of_a_frame() {
        let t = typed();
        let b = [custom(t, 1, b"before the capture"), custom(t, 2, b"seen")].concat();
        let a = detect_midstream_with(&[t], &b[5..], Stage::Answered, 1 << 20).unwrap();
        assert_eq!(a.detection.detected, Detected::Framed(t));
        assert_eq!(a.skip, custom(t, 1, b"before the capture").len() - 5);
        assert!(a.detection.reason.starts_with("picked up mid-stream"));
    }
}
