//! `vipa-run`: runs one command (a `dora run` of a graph) with its output in a log file, and
//! shows one live line for it instead: a progress bar drawn from the node's progress file
//! (`vipa_node_kit::ProgressFile`, e.g. the trainer's `out/pretrain/progress.json`, removed at
//! the start so that an earlier phase's is not shown) when
//! stderr is a terminal, a plain line every 10 % (or minute) otherwise, and a spinner with the
//! elapsed time for a command that writes no progress file.
//!
//! ```text
//! vipa-run --title "stage 1" --log out/logs/pretrain.log --progress out/pretrain/progress.json \
//!     -- dora run dataflows/pretrain.yml --stop-after 3600s
//! ```
//!
//! It exits with the command's exit code. On failure it prints the last lines of the log and
//! where the whole log is, so the error is seen without dora's interleaved noise around it.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use eyre::{WrapErr, eyre};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vipa_node_kit::progress::format_duration;
use vipa_node_kit::{Progress, ProgressFile};

/// Run a command with its output in a log file, showing one live progress line.
#[derive(Debug, Parser)]
#[command(name = "vipa-run")]
struct Args {
    /// What the line is called (e.g. `stage 1`).
    #[arg(long)]
    title: String,
    /// Where the command's stdout and stderr go (folders are created).
    #[arg(long)]
    log: PathBuf,
    /// A progress file the command's node writes (`vipa_node_kit::ProgressFile`).
    #[arg(long)]
    progress: Option<PathBuf>,
    /// Lines of the log shown when the command fails.
    #[arg(long, default_value_t = 40)]
    tail: usize,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The last `n` lines of the log, without terminal colour codes.
fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .map(|l| strip_ansi(&l))
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Removes `ESC [ … letter` sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How the line is shown.
enum Display {
    Bar(ProgressBar),
    Plain { last_line: Instant, last_tenth: u64 },
}

impl Display {
    fn new(title: &str) -> eyre::Result<Self> {
        if !std::io::stderr().is_terminal() {
            eprintln!("{title}: started");
            return Ok(Self::Plain {
                last_line: Instant::now(),
                last_tenth: 0,
            });
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}")
                .map_err(|e| eyre!("{e}"))?,
        );
        bar.set_prefix(title.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Ok(Self::Bar(bar))
    }

    fn show(&mut self, p: &Progress) -> eyre::Result<()> {
        match self {
            Self::Bar(bar) => {
                if let Some(total) = p.total
                    && bar.length() != Some(total)
                {
                    bar.set_length(total);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
                        )
                        .map_err(|e| eyre!("{e}"))?
                        .progress_chars("=> "),
                    );
                }
                bar.set_position(p.done);
                bar.set_message(format!("{} | {}", p.unit, p.message));
            }
            Self::Plain {
                last_line,
                last_tenth,
            } => {
                let tenth = p.total.map_or(0, |t| p.done * 10 / t.max(1));
                if tenth > *last_tenth || last_line.elapsed() >= Duration::from_secs(60) {
                    eprintln!("{}", p.line());
                    *last_tenth = tenth;
                    *last_line = Instant::now();
                }
            }
        }
        Ok(())
    }

    /// The last state, as a plain line.
    fn show_final(&self, p: &Progress) {
        if let Self::Plain { .. } = self {
            eprintln!("{}", p.line());
        }
    }

    /// Without progress to show: a plain line a minute, so a log reader sees it is alive.
    fn tick(&mut self, title: &str, elapsed: Duration) {
        if let Self::Plain { last_line, .. } = self
            && last_line.elapsed() >= Duration::from_secs(60)
        {
            eprintln!(
                "{title}: running, {}",
                format_duration(elapsed.as_secs_f64())
            );
            *last_line = Instant::now();
        }
    }

    fn finish(self, title: &str, ok: bool, took: Duration) {
        let how = if ok { "done" } else { "failed" };
        if let Self::Bar(bar) = &self {
            bar.finish_and_clear();
        }
        eprintln!("{title}: {how} in {}", format_duration(took.as_secs_f64()));
    }
}

fn run() -> eyre::Result<ExitCode> {
    let args = Args::parse();
    if let Some(dir) = args.log.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
    }
    let log =
        File::create(&args.log).wrap_err_with(|| format!("creating {}", args.log.display()))?;
    // A finished earlier phase in the same folder (training, then evaluation) is not this one.
    if let Some(path) = &args.progress {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(eyre!("removing the old {}: {e}", path.display())),
        }
    }
    let started = Instant::now();
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| eyre!("no command given after `--`"))?;
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .wrap_err_with(|| format!("cannot start `{program}`"))?;
    let mut display = Display::new(&args.title)?;
    let mut last: Option<Progress> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Some(path) = &args.progress
            && let Some(p) = ProgressFile::read(path)
            && last.as_ref() != Some(&p)
        {
            display.show(&p)?;
            last = Some(p);
        }
        display.tick(&args.title, started.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    };
    let ok = status.success();
    if let (Some(path), Display::Plain { .. }) = (&args.progress, &mut display)
        && let Some(p) = ProgressFile::read(path)
        && last.as_ref() != Some(&p)
    {
        // The end, as a plain line too, unless the loop already showed it.
        display.show_final(&p);
    }
    display.finish(&args.title, ok, started.elapsed());
    if ok {
        eprintln!("  log: {}", args.log.display());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "  `{}` exited with {status}; the last lines of {}:",
        args.command.join(" "),
        args.log.display()
    );
    for line in tail(&args.log, args.tail) {
        eprintln!("  | {line}");
    }
    Ok(ExitCode::from(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => vipa_node_kit::exit_code("vipa-run", Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ok"),
            "2026  INFO ok"
        );
    }
}
