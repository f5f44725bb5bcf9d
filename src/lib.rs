//! rc1: a command-line companion to Wireshark for the RC1 sockets lab.
//!
//! # Layout
//!
//! ```text
//! spec -> codec -> lab::{udp, threaded, selector, client}
//!                       \-> lab::event::Log (text lines or JSON)
//! cli (clap) -> validated options -> run()
//! ```
//!
//! * [`spec`]: the field table of the v2/v3 framings and the diagnostic codes;
//!   everything that knows a field's offset reads it from there.
//! * [`codec`]: frames, their encoding, and [`codec::FrameReader`], the one
//!   streaming decoder every reader of TCP bytes uses.
//! * [`lab`]: the lab's servers and clients.
//! * [`cli`]: the command line; [`units`]: human sizes and durations.
//!
//! Arrows never point back: `codec` knows nothing of sockets, `lab` nothing
//! of the command line.

#![deny(missing_docs)]

/// `println!` that survives a closed standard output (`rc1 … | head`):
/// the rest of the output is dropped, nothing panics.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `print!` that survives a closed standard output.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `eprintln!` that survives a closed standard error.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

pub mod capture;
pub mod cli;
pub mod codec;
pub mod dissector;
pub mod escape;
pub mod exercise;
pub mod flood;
pub mod framing;
pub mod lab;
pub mod spec;
pub mod stop;
pub mod units;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};

use cli::{Cli, Command, OutputArgs};
use lab::client::{ClientOptions, Messages};
use lab::event::{Format, Log};
use lab::{Server, ServerOptions};
use stop::Stop;

fn log_for(o: &OutputArgs) -> Log {
    let format = if o.json { Format::Json } else { Format::Text };
    Log::stdio(format, o.quiet)
}

/// Started as root through `sudo`, becomes the user who ran sudo
/// (`SUDO_UID`/`SUDO_GID`), as `tcpdump -Z` does: a capture that decodes
/// hostile packets should not do it as root. Call it once the capture
/// handle and the `-w` file are open. Returns what it did, if anything.
fn drop_root_to_sudo_user() -> Result<Option<String>> {
    use nix::unistd::{Gid, Uid, geteuid, setgid, setgroups, setuid};
    if !geteuid().is_root() {
        return Ok(None);
    }
    let id = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) else {
        return Ok(None);
    };
    if uid == 0 {
        return Ok(None);
    }
    let fail = |what: &str, e: nix::Error| {
        anyhow::anyhow!("cannot drop root privileges ({what}: {e}); not capturing as root")
    };
    setgroups(&[Gid::from_raw(gid)]).map_err(|e| fail("setgroups", e))?;
    setgid(Gid::from_raw(gid)).map_err(|e| fail("setgid", e))?;
    setuid(Uid::from_raw(uid)).map_err(|e| fail("setuid", e))?;
    Ok(Some(format!(
        "started through sudo: now running as uid {uid}, gid {gid} (the capture is open)"
    )))
}

/// A stop handle that Ctrl+C triggers; a second Ctrl+C exits at once
/// (the user does not want to wait).
fn stop_on_ctrl_c() -> Result<Stop> {
    let stop = Stop::new();
    watch_ctrl_c(&stop)?;
    Ok(stop)
}

/// Makes Ctrl+C trigger `stop` (twice: exit at once).
fn watch_ctrl_c(stop: &Stop) -> Result<()> {
    let s = stop.clone();
    ctrlc::set_handler(move || {
        if !s.stop() {
            std::process::exit(130);
        }
    })?;
    Ok(())
}

/// Options that parse but do not make sense together: said on one line,
/// and status 2, as clap's own usage errors.
fn usage_error(command: &str, e: &anyhow::Error) -> ExitCode {
    eprintln!("rc1 {command}: {e:#}");
    ExitCode::from(2)
}

/// [`usage_error`], except that a `--framing FILE` that does not load
/// exits 1, as `rc1 framing check` does for the same file (the message is
/// the file's: `FILE:LINE:COL: what; fix`).
fn options_error(command: &str, e: &anyhow::Error) -> ExitCode {
    if e.downcast_ref::<framing::FramingError>().is_some() {
        eprintln!("rc1 {command}: {e:#}");
        return ExitCode::from(1);
    }
    usage_error(command, e)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Server(args) => {
            let opts = match ServerOptions::try_from(&args) {
                Ok(o) => o,
                Err(e) => return Ok(options_error("server", &e)),
            };
            let server = Server::bind(opts)?;
            let stop = stop_on_ctrl_c()?;
            server.run(Arc::new(log_for(&args.output)), stop)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(args) => {
            let opts = match ClientOptions::try_from(&args) {
                Ok(o) => o,
                Err(e) => return Ok(options_error("client", &e)),
            };
            let messages = if !args.message.is_empty() {
                Messages::List(args.message.clone().into_iter())
            } else if std::io::stdin().is_terminal() {
                Messages::Interactive {
                    prompt: opts.proto.prompt(),
                    to_stderr: args.output.json,
                }
            } else {
                Messages::Lines(Box::new(std::io::BufReader::new(std::io::stdin())))
            };
            let log = log_for(&args.output);
            let report = lab::client::run(&opts, messages, &log)?;
            if report.mismatched > 0 {
                bail!(
                    "{} of {} echoes differed from what was sent",
                    report.mismatched,
                    report.sent
                );
            }
            if report.extra_bytes > 0 {
                bail!(
                    "the server sent {} byte(s) after the last echo, answering nothing that was sent",
                    report.extra_bytes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Capture(args) => run_capture(&args),
        Command::Lab(args) => run_lab(&args),
        Command::Dissector(args) => run_dissector(&args),
        Command::Framing(args) => Ok(run_framing(&args)),
        Command::Flood(args) => {
            let opts = match flood::FloodOptions::try_from(&args) {
                Ok(o) => o,
                Err(e) => return Ok(options_error("flood", &e)),
            };
            if opts.connections > 500 {
                let _ = rlimit::increase_nofile_limit((opts.connections as u64).saturating_add(64));
            }
            let stop = stop_on_ctrl_c()?;
            let summary = flood::run(&opts, args.json, &stop)?;
            if summary.clean {
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// `rc1 framing check FILE` / `rc1 framing show NAME`: the layout or the
/// file on stdout; a bad file's mistake on stderr and status 1.
fn run_framing(args: &cli::FramingArgs) -> ExitCode {
    match &args.action {
        cli::FramingAction::Check { file, output } => match framing::load(file) {
            Ok(def) => {
                if output.json {
                    outln!("{}", framing::layout_json(def));
                } else if !output.quiet {
                    out!("{}", framing::layout(def));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                errln!("rc1 framing check: {e}");
                ExitCode::from(1)
            }
        },
        cli::FramingAction::Show { name, output } => match framing::builtin_text(name) {
            Some(text) => {
                if output.json {
                    outln!("{}", serde_json::json!({"name": name, "text": text}));
                } else if !output.quiet {
                    out!("{text}");
                }
                ExitCode::SUCCESS
            }
            None => {
                let names: Vec<&str> = framing::BUILTIN_FILES.iter().map(|(n, _)| *n).collect();
                errln!(
                    "rc1 framing show: no built-in framing {name:?}; the built-in ones are {}",
                    names.join(", ")
                );
                ExitCode::from(2)
            }
        },
    }
}

/// `rc1 capture -D`: numbered lines as `tshark -D`; `-q` the names alone,
/// one a line; `--json` an object a line (`type` `interface`).
fn list_interfaces(o: &OutputArgs) -> Result<()> {
    if o.json {
        for (i, d) in capture::source::interfaces()?.iter().enumerate() {
            let v = serde_json::json!({
                "type": "interface",
                "index": i + 1,
                "name": d.name,
                "description": d.description,
                "addresses": d.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "loopback": d.loopback,
                "up": d.up,
                "running": d.running,
            });
            outln!("{v}");
        }
    } else if o.quiet {
        for d in capture::source::interfaces()? {
            outln!("{}", d.name);
        }
    } else {
        out!("{}", capture::source::list_interfaces()?);
    }
    Ok(())
}

fn run_capture(args: &cli::CaptureArgs) -> Result<ExitCode> {
    if args.list_interfaces {
        list_interfaces(&args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let opts = match capture::CaptureOptions::try_from(args) {
        Ok(o) => o,
        // A bad framing file: status 1, as `rc1 framing check`.
        Err(e) if e.is::<cli::BadFraming>() => {
            eprintln!("rc1 capture: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Ok(usage_error("capture", &e)),
    };
    if args.width.is_some() && args.ladder.is_none() && !args.hex {
        return Ok(usage_error(
            "capture",
            &anyhow::anyhow!("--width is the width of --ladder or of --hex: give one of them"),
        ));
    }
    if args.ladder.is_some() && args.output.quiet {
        return Ok(usage_error(
            "capture",
            &anyhow::anyhow!(
                "--ladder draws every event and -q prints none: give one of them \
                 (the ladder is followed by the sessions table either way)"
            ),
        ));
    }
    if args.hex && args.output.quiet {
        return Ok(usage_error(
            "capture",
            &anyhow::anyhow!(
                "--hex shows bytes under each frame line and -q prints none: give one of them"
            ),
        ));
    }
    if args.hex && args.output.json {
        return Ok(usage_error(
            "capture",
            &anyhow::anyhow!(
                "--hex is a text view and --json has every frame's bytes already (message_hex): give one of them"
            ),
        ));
    }
    let mut source = capture::open(&opts)?;
    // The handle (and any -w file) is open: root is no longer needed.
    if source.is_live()
        && let Some(said) = drop_root_to_sudo_user()?
        && !args.output.quiet
    {
        eprintln!("rc1: {said}");
    }
    let stop = Stop::new();
    if source.is_live() {
        // Like tcpdump's "listening on …" (which -q keeps too): says the
        // capture is ready, on stderr, so scripts can wait for it.
        eprintln!(
            "rc1: capturing on {} (filter \"{}\"); Ctrl+C stops and prints the summary",
            source.name,
            source.filter()
        );
    }
    if let Some(handle) = source.break_handle() {
        // A read may block until a packet comes: Ctrl+C breaks it.
        stop.on_stop(move || handle.breakloop());
        watch_ctrl_c(&stop)?;
    }
    let report = capture::output::ReportOptions {
        json: args.output.json,
        tcp_events: args.tcp_events,
        quiet: args.output.quiet,
        // Live: each event as it happens; a file: buffered, for speed.
        flush_each: source.is_live(),
        table: table_layout(args.table),
        hex: args.hex,
        hex_width: if args.hex {
            match capture_width(args) {
                Ok(w) => w,
                Err(e) => return Ok(usage_error("capture", &e)),
            }
        } else {
            0
        },
        summary_only: false,
    };
    if let Some(style) = args.ladder {
        let ladder = match ladder_options(args, style) {
            Ok(l) => l,
            Err(e) => return Ok(usage_error("capture", &e)),
        };
        return run_ladder(&opts, source, &stop, args, ladder);
    }
    let outcome = if let Some(n) = args.follow {
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut follow = capture::streams::Follow::new(n, out);
        let outcome = capture::run(&opts, source, &stop, &mut follow)?;
        if !follow.found() {
            bail!(
                "no TCP session #{n} with data in this capture (see the sessions table of `rc1 capture -r`)"
            );
        }
        outcome
    } else {
        // A file's lines are formatted and written on a thread of their
        // own while decoding goes on; live, each line as it happens.
        // (--hex needs the reassembled chunks in order with the events:
        // the printer on this thread sees them.)
        let mut printer: Box<dyn capture::event::Sink> =
            if source.is_live() || report.quiet || report.hex {
                let out = std::io::BufWriter::new(std::io::stdout().lock());
                Box::new(capture::output::Printer::new(out, report))
            } else {
                let out = std::io::BufWriter::new(std::io::stdout());
                Box::new(
                    capture::output::threaded::Threaded::new(out, report)
                        .map_err(|e| anyhow::anyhow!("cannot start the output thread: {e}"))?,
                )
            };
        match &args.dump_streams {
            Some(dir) => {
                let mut dump = capture::streams::Dump::new(dir.clone())
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
                let outcome = capture::run(
                    &opts,
                    source,
                    &stop,
                    &mut capture::event::Tee(printer.as_mut(), &mut dump),
                )?;
                if let Some(e) = dump.error {
                    bail!("--dump-streams: {e}");
                }
                eprintln!(
                    "rc1: wrote {} file(s) to {}",
                    dump.written.len(),
                    dir.display()
                );
                outcome
            }
            None => capture::run(&opts, source, &stop, printer.as_mut())?,
        }
    };
    if let Some(cut) = outcome.truncated {
        bail!(cut);
    }
    Ok(ExitCode::SUCCESS)
}

/// The sessions table's layout for `--table`: compact on a terminal (or
/// when asked), fitted to its width.
fn table_layout(arg: cli::TableArg) -> capture::output::table::TableLayout {
    use capture::output::table::{TableLayout, terminal_width};
    let compact = match arg {
        cli::TableArg::Full => false,
        cli::TableArg::Compact => true,
        cli::TableArg::Auto => std::io::stdout().is_terminal(),
    };
    if compact {
        TableLayout::Compact {
            width: terminal_width(),
        }
    } else {
        TableLayout::Full
    }
}

/// `--width` of the ladder or the `--hex` panes: given, else the
/// terminal's, else 80; at least the ladder's minimum.
fn capture_width(args: &cli::CaptureArgs) -> Result<usize> {
    use capture::output::ladder::{MAX_WIDTH, MIN_WIDTH};
    Ok(match args.width {
        Some(w) if w < MIN_WIDTH => bail!(
            "--width {w} is too narrow: give at least {MIN_WIDTH} columns \
             (or --ladder mermaid, which has no width)"
        ),
        Some(w) if w > MAX_WIDTH => bail!("--width {w} is too wide: give at most {MAX_WIDTH}"),
        Some(w) => w,
        None => terminal_width().unwrap_or(80).clamp(MIN_WIDTH, MAX_WIDTH),
    })
}

/// The ladder's options from the command line (usage errors as `Err`).
fn ladder_options(
    args: &cli::CaptureArgs,
    style: cli::LadderArg,
) -> Result<capture::output::ladder::LadderOptions> {
    use capture::output::ladder::{LadderOptions, LadderStyle};
    let width = capture_width(args)?;
    if args.ladder_max == 0 {
        bail!("--ladder-max 0 would draw nothing; give at least 1");
    }
    let style = match style {
        cli::LadderArg::Text => LadderStyle::Text,
        cli::LadderArg::Mermaid => LadderStyle::Mermaid,
    };
    let (from, to) = if args.from.is_some() || args.to.is_some() {
        let origin = first_packet_time(args)?;
        let from = args.from.map(|w| resolve_when(w, origin));
        let to = args.to.map(|w| resolve_when(w, origin));
        if let (Some(f), Some(t)) = (from, to)
            && (t.sec, t.usec) < (f.sec, f.usec)
        {
            bail!("--to is before --from: the window would be empty");
        }
        (from, to)
    } else {
        (None, None)
    };
    Ok(LadderOptions {
        style,
        width,
        // Mermaid is never coloured.
        color: style == LadderStyle::Text && use_color(args.color),
        max_events: args.ladder_max,
        from,
        to,
        session: args.follow,
    })
}

/// The time `--from`/`--to` count from: a file's first packet, or now
/// for a live capture.
fn first_packet_time(args: &cli::CaptureArgs) -> Result<capture::source::Timestamp> {
    use capture::source::Timestamp;
    let Some(path) = &args.read else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return Ok(Timestamp {
            sec: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            usec: now.subsec_micros(),
        });
    };
    let mut reader = capture::savefile::Reader::open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // A file with no packet (or a first record that cannot be read: the
    // capture reports it) has no first time: the epoch.
    Ok(match reader.next_packet() {
        Ok(Some(p)) => p.ts,
        _ => Timestamp::default(),
    })
}

/// A `--from`/`--to` time as a timestamp, given the first packet's.
fn resolve_when(w: cli::When, origin: capture::source::Timestamp) -> capture::source::Timestamp {
    use capture::source::Timestamp;
    match w {
        cli::When::After(us) => Timestamp::from_tag(origin.tag().saturating_add(us)),
        cli::When::Epoch(us) => Timestamp::from_tag(us),
        cli::When::OfDay(us) => {
            let midnight = origin.sec - origin.sec.rem_euclid(86_400);
            let midnight = u64::try_from(midnight)
                .unwrap_or(0)
                .saturating_mul(1_000_000);
            Timestamp::from_tag(midnight.saturating_add(us))
        }
    }
}

/// `rc1 capture --ladder`: the events into the ladder, the sessions table
/// and totals into a buffer; then the ladder, then the table (in Mermaid,
/// as `%%` comments, so the output stays one diagram).
fn run_ladder(
    opts: &capture::CaptureOptions,
    source: capture::source::Source,
    stop: &Stop,
    args: &cli::CaptureArgs,
    lopts: capture::output::ladder::LadderOptions,
) -> Result<ExitCode> {
    use capture::output::ladder::{Ladder, LadderStyle};
    use std::io::Write;
    let style = lopts.style;
    let mut ladder = Ladder::new(lopts);
    let report = capture::output::ReportOptions {
        summary_only: true,
        table: table_layout(args.table),
        ..capture::output::ReportOptions::default()
    };
    let mut table = capture::output::Printer::new(Vec::new(), report);
    let outcome = match &args.dump_streams {
        Some(dir) => {
            let mut dump = capture::streams::Dump::new(dir.clone())
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let mut both = capture::event::Tee(&mut ladder, &mut table);
            let outcome = capture::run(
                opts,
                source,
                stop,
                &mut capture::event::Tee(&mut both, &mut dump),
            )?;
            if let Some(e) = dump.error {
                bail!("--dump-streams: {e}");
            }
            outcome
        }
        None => capture::run(
            opts,
            source,
            stop,
            &mut capture::event::Tee(&mut ladder, &mut table),
        )?,
    };
    if let Some(n) = args.follow
        && ladder.counts() == (0, 0)
    {
        bail!(
            "no session #{n} in this capture{} (see the sessions table of `rc1 capture -r`)",
            if args.from.is_some() || args.to.is_some() {
                " between --from and --to"
            } else {
                ""
            }
        );
    }
    let summary = table.into_inner().unwrap_or_default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = ladder.render(&mut out).and_then(|()| {
        let summary = String::from_utf8_lossy(&summary);
        for line in summary.lines() {
            match style {
                LadderStyle::Text => writeln!(out, "{line}")?,
                LadderStyle::Mermaid if line.is_empty() => writeln!(out, "%%")?,
                LadderStyle::Mermaid => writeln!(out, "%% {line}")?,
            }
        }
        out.flush()
    });
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        bail!("cannot write the ladder to standard output: {e}");
    }
    if let Some(cut) = outcome.truncated {
        bail!(cut);
    }
    Ok(ExitCode::SUCCESS)
}

/// The width of standard output when it is a terminal.
fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    console::Term::stdout()
        .size_checked()
        .map(|(_, cols)| usize::from(cols))
}

/// Whether to colour: `--color`, then NO_COLOR and whether stdout is a
/// terminal.
fn use_color(c: cli::ColorArg) -> bool {
    use capture::output::ladder::{ColorChoice, color_wanted};
    let choice = match c {
        cli::ColorArg::Auto => ColorChoice::Auto,
        cli::ColorArg::Always => ColorChoice::Always,
        cli::ColorArg::Never => ColorChoice::Never,
    };
    color_wanted(
        choice,
        std::io::stdout().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    )
}

fn run_lab(args: &cli::LabArgs) -> Result<ExitCode> {
    use std::io::Write;
    let width = match args.width {
        Some(w) => w,
        // A narrower terminal wraps the few widest lines rather than refuse.
        None => terminal_width()
            .unwrap_or(80)
            .clamp(72, capture::output::ladder::MAX_WIDTH),
    };
    // The answers' command lines are never cut: they must fit as they are.
    if width < 72 {
        return Ok(usage_error(
            "lab",
            &anyhow::anyhow!("--width {width} is too narrow: give 72 or more"),
        ));
    }
    let max = capture::output::ladder::MAX_WIDTH;
    if width > max {
        return Ok(usage_error(
            "lab",
            &anyhow::anyhow!("--width {width} is too wide: give at most {max}"),
        ));
    }
    let opts = exercise::LabOptions {
        exercise: args.exercise,
        port: args.port,
        iface: "lo".to_string(),
        keep: args.keep.clone(),
        fixture: args.fixture,
        width,
        color: use_color(args.color),
    };
    let run = exercise::run(&opts)?;
    if let exercise::Wire::Fixture { why, .. } = &run.wire
        && !args.fixture
    {
        errln!(
            "rc1 lab: not capturing ({why}); the ladder and the wire facts come from the \
             shipped fixture instead"
        );
    }
    let mut out = std::io::stdout().lock();
    let written = if args.output.json {
        writeln!(out, "{}", exercise::answers::json(&run, width))
    } else {
        exercise::answers::print_text(&run, width, !args.output.quiet, &mut out)
    }
    .and_then(|()| out.flush());
    match written {
        // `rc1 lab 4 | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r?,
    }
    // UDP clients get no echo in the lab; TCP clients must get every one.
    let (sent, ok) = run
        .exchange
        .clients
        .iter()
        .fold((0, 0), |(s, o), c| (s + c.sent, o + c.echoes_ok));
    if args.exercise.number > 1 && ok < sent {
        bail!("{} of {sent} echoes differed from what was sent", sent - ok);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_dissector(args: &cli::DissectorArgs) -> Result<ExitCode> {
    use std::io::Write;
    let def = match args.framing.as_deref().map(framing::load) {
        None => None,
        Some(Ok(def)) => Some(def),
        Some(Err(e)) => {
            eprintln!("rc1 dissector: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(warning) = def.and_then(dissector::max_body_warning) {
        eprintln!("rc1 dissector: warning: {warning}");
    }
    let (lua, file, again) = match def {
        Some(def) => (
            dissector::generate_framing(def)?,
            dissector::file_name(def),
            format!(" --framing {}", def.origin),
        ),
        None => (
            dissector::generate(&dissector::RC1)?,
            "rc1.lua".to_string(),
            String::new(),
        ),
    };
    let stale = format!(
        "the loaded {file} is not what this rc1 generates (another version, or \
         edited): run `rc1 dissector{again} --install` to replace it"
    );
    if args.check {
        let r = match def {
            Some(def) => dissector::check_framing(def)?,
            None => dissector::check(&dissector::RC1)?,
        };
        if args.json {
            let v = serde_json::json!({
                "plugin": r.plugin,
                "fields": r.fields,
                "lua": r.lua,
                "current": r.current,
            });
            outln!("{v}");
        } else if !args.quiet {
            outln!("Wireshark loads the dissector: {}", r.plugin);
            outln!("fields and expert infos: {}", r.fields.join(", "));
            outln!("Wireshark's Lua: {}", r.lua);
            if !r.current {
                outln!("note: {stale}");
            }
        }
        if !r.current && args.quiet {
            eprintln!("rc1 dissector: warning: {stale}");
        }
    } else if args.install {
        let (path, how) = dissector::install_as(&lua, &file)?;
        if args.json {
            let v = serde_json::json!({
                "path": path.display().to_string(),
                "bytes": lua.len(),
                "how": how,
            });
            outln!("{v}");
        } else if !args.quiet {
            outln!("installed {} ({how})", path.display());
            outln!("check it with: rc1 dissector{again} --check");
        }
    } else if let Some(path) = &args.output {
        std::fs::write(path, &lua)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        if args.json {
            let v = serde_json::json!({
                "path": path.display().to_string(),
                "bytes": lua.len(),
            });
            outln!("{v}");
        } else if !args.quiet {
            eprintln!("wrote {} ({} bytes)", path.display(), lua.len());
        }
    } else {
        let mut out = std::io::stdout().lock();
        let text = if args.json {
            let v = serde_json::json!({ "lua": lua, "bytes": lua.len() });
            format!("{v}\n")
        } else {
            lua
        };
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            bail!("cannot write the dissector to standard output: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
