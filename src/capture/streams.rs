//! `--follow N` and `--dump-streams DIR`: the reassembled bytes themselves,
//! like Wireshark's Follow TCP Stream and tcpflow — but a gap stays a gap.
//!
//! * `--follow N` prints session N's two directions as they interleave,
//!   each run of bytes escaped like every other rc1 message, and a gap as
//!   `[N bytes missing at offset X]`.
//! * `--dump-streams DIR` writes, per TCP session and direction,
//!   `DIR/sNNN-CLIENT-SERVER-c2s.bin` / `-s2c.bin` with the captured bytes
//!   in order, and, when bytes are missing, `….gaps` listing each gap's
//!   stream offset, length and position in the `.bin` file. tcpflow fills
//!   holes with zeros, which then decode as data; here the `.bin` holds only
//!   bytes that were really captured.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::event::{Dir, Event, SessionSummary, Sink, Totals, Where};
use super::reassembly::Chunk;
use crate::codec::escape::escape;

/// Prints one session's stream (`--follow N`), nothing else.
pub struct Follow<W: Write> {
    session: u64,
    out: W,
    seen: bool,
}

impl<W: Write> Follow<W> {
    /// Follows session `session` (numbers as in the sessions table).
    pub fn new(session: u64, out: W) -> Follow<W> {
        Follow {
            session,
            out,
            seen: false,
        }
    }

    /// Whether the session existed.
    pub fn found(&self) -> bool {
        self.seen
    }
}

impl<W: Write> Sink for Follow<W> {
    fn stream(&mut self, at: &Where, dir: Dir, chunk: &Chunk<'_>) {
        if at.session != self.session {
            return;
        }
        if !self.seen {
            self.seen = true;
            let _ = writeln!(
                self.out,
                "Follow session #{}: client {} (c>s), server {} (s>c)",
                at.session, at.client, at.server
            );
        }
        let _ = match chunk {
            Chunk::Data { offset, bytes } => writeln!(
                self.out,
                "{} @{offset} {} bytes: \"{}\"",
                dir.arrow(),
                bytes.len(),
                escape(bytes)
            ),
            Chunk::Gap { offset, len } => writeln!(
                self.out,
                "{} [{len} bytes missing at offset {offset}]",
                dir.arrow()
            ),
        };
    }

    fn event(&mut self, _ev: &Event<'_>) {}

    fn session_end(&mut self, _s: &SessionSummary) {}

    fn finish(&mut self, _t: &Totals) {
        let _ = self.out.flush();
    }
}

struct DumpFile {
    bin: BufWriter<File>,
    written: u64,
    gaps: Option<BufWriter<File>>,
    /// Path without extension (IP addresses contain dots, so extensions are
    /// appended, never substituted).
    base: String,
}

/// Writes every TCP session's directions to files (`--dump-streams DIR`).
pub struct Dump {
    dir: PathBuf,
    files: HashMap<(u64, usize), DumpFile>,
    /// The first write error, reported at the end.
    pub error: Option<String>,
    /// Files written.
    pub written: Vec<PathBuf>,
}

impl Dump {
    /// Dumps into `dir` (created if missing).
    pub fn new(dir: PathBuf) -> std::io::Result<Dump> {
        std::fs::create_dir_all(&dir)?;
        Ok(Dump {
            dir,
            files: HashMap::new(),
            error: None,
            written: Vec::new(),
        })
    }

    fn file(&mut self, at: &Where, dir: Dir) -> Option<&mut DumpFile> {
        let key = (at.session, dir.index());
        if !self.files.contains_key(&key) {
            let side = if dir == Dir::ToServer { "c2s" } else { "s2c" };
            let name = format!(
                "s{:03}-{}-{}-{side}",
                at.session,
                at.client.to_string().replace([':', '[', ']'], "_"),
                at.server.to_string().replace([':', '[', ']'], "_")
            );
            let base = self.dir.join(name).display().to_string();
            let path = PathBuf::from(format!("{base}.bin"));
            match File::create(&path) {
                Ok(f) => {
                    self.written.push(path);
                    self.files.insert(
                        key,
                        DumpFile {
                            bin: BufWriter::new(f),
                            written: 0,
                            gaps: None,
                            base,
                        },
                    );
                }
                Err(e) => {
                    self.error
                        .get_or_insert_with(|| format!("cannot write {}: {e}", path.display()));
                    return None;
                }
            }
        }
        self.files.get_mut(&key)
    }
}

impl Sink for Dump {
    fn stream(&mut self, at: &Where, dir: Dir, chunk: &Chunk<'_>) {
        let mut failed = None;
        let mut created = None;
        if let Some(f) = self.file(at, dir) {
            match chunk {
                Chunk::Data { bytes, .. } => {
                    if let Err(e) = f.bin.write_all(bytes) {
                        failed = Some(e.to_string());
                    }
                    f.written = f.written.saturating_add(bytes.len() as u64);
                }
                Chunk::Gap { offset, len } => {
                    if f.gaps.is_none() {
                        let path = PathBuf::from(format!("{}.gaps", f.base));
                        match File::create(&path) {
                            Ok(g) => {
                                let mut g = BufWriter::new(g);
                                let _ = writeln!(
                                    g,
                                    "# stream_offset missing_bytes bin_file_offset (bytes never captured; not in the .bin)"
                                );
                                f.gaps = Some(g);
                                created = Some(path);
                            }
                            Err(e) => failed = Some(e.to_string()),
                        }
                    }
                    if let Some(g) = &mut f.gaps
                        && let Err(e) = writeln!(g, "{offset} {len} {}", f.written)
                    {
                        failed = Some(e.to_string());
                    }
                }
            }
        }
        if let Some(p) = created {
            self.written.push(p);
        }
        if let Some(e) = failed {
            self.error.get_or_insert(e);
        }
    }

    fn event(&mut self, _ev: &Event<'_>) {}

    fn session_end(&mut self, s: &SessionSummary) {
        for i in 0..2 {
            if let Some(mut f) = self.files.remove(&(s.id, i)) {
                if let Err(e) = f.bin.flush() {
                    self.error.get_or_insert(e.to_string());
                }
                if let Some(g) = &mut f.gaps {
                    let _ = g.flush();
                }
            }
        }
    }

    fn finish(&mut self, _t: &Totals) {
        for (_, mut f) in self.files.drain() {
            let _ = f.bin.flush();
            if let Some(g) = &mut f.gaps {
                let _ = g.flush();
            }
        }
    }
}
