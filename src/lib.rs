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

pub mod capture;
pub mod cli;
pub mod codec;
pub mod dissector;
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Server(args) => {
            let opts = match ServerOptions::try_from(&args) {
                Ok(o) => o,
                Err(e) => return Ok(usage_error("server", &e)),
            };
            let server = Server::bind(opts)?;
            let stop = stop_on_ctrl_c()?;
            server.run(Arc::new(log_for(&args.output)), stop)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(args) => {
            let opts = match ClientOptions::try_from(&args) {
                Ok(o) => o,
                Err(e) => return Ok(usage_error("client", &e)),
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
        Command::Dissector(args) => run_dissector(&args),
        Command::Framing(args) => Ok(run_framing(&args)),
        Command::Flood(args) => {
            let opts = match flood::FloodOptions::try_from(&args) {
                Ok(o) => o,
                Err(e) => return Ok(usage_error("flood", &e)),
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
        cli::FramingAction::Check { file } => match framing::load(file) {
            Ok(def) => {
                print!("{}", framing::layout(def));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rc1 framing check: {e}");
                ExitCode::from(1)
            }
        },
        cli::FramingAction::Show { name } => match framing::builtin_text(name) {
            Some(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            None => {
                let names: Vec<&str> = framing::BUILTIN_FILES.iter().map(|(n, _)| *n).collect();
                eprintln!(
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
            println!("{v}");
        }
    } else if o.quiet {
        for d in capture::source::interfaces()? {
            println!("{}", d.name);
        }
    } else {
        print!("{}", capture::source::list_interfaces()?);
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
        Err(e) => return Ok(usage_error("capture", &e)),
    };
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
    };
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

fn run_dissector(args: &cli::DissectorArgs) -> Result<ExitCode> {
    use std::io::Write;
    let lua = dissector::generate(&dissector::RC1)?;
    let stale = "the loaded rc1.lua is not what this rc1 generates (another version, or \
                 edited): run `rc1 dissector --install` to replace it";
    if args.check {
        let r = dissector::check(&dissector::RC1)?;
        if args.json {
            let v = serde_json::json!({
                "plugin": r.plugin,
                "fields": r.fields,
                "lua": r.lua,
                "current": r.current,
            });
            println!("{v}");
        } else if !args.quiet {
            println!("Wireshark loads the dissector: {}", r.plugin);
            println!("fields and expert infos: {}", r.fields.join(", "));
            println!("Wireshark's Lua: {}", r.lua);
            if !r.current {
                println!("note: {stale}");
            }
        }
        if !r.current && args.quiet {
            eprintln!("rc1 dissector: warning: {stale}");
        }
    } else if args.install {
        let (path, how) = dissector::install(&lua)?;
        if args.json {
            let v = serde_json::json!({
                "path": path.display().to_string(),
                "bytes": lua.len(),
                "how": how,
            });
            println!("{v}");
        } else if !args.quiet {
            println!("installed {} ({how})", path.display());
            println!("check it with: rc1 dissector --check");
        }
    } else if let Some(path) = &args.output {
        std::fs::write(path, &lua)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        if args.json {
            let v = serde_json::json!({
                "path": path.display().to_string(),
                "bytes": lua.len(),
            });
            println!("{v}");
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
