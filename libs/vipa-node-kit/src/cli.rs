//! The process edge of every vipa binary: `--help`, and what a failure prints.
//!
//! - [`run_node`] is a dora node's whole `main` (tracing, config, dora connection, `run`),
//!   inside [`node_main`], which answers `--help`: it prints what the node is and the settings
//!   it reads from `VIPA_CONFIG` (the YAML block of its config module's docs) and exits 0; any
//!   other argument is an error, since a node is configured by YAML, not by flags.
//! - [`exit_code`] turns a `main` body's result into the exit code. An error prints its chain
//!   (`error: outer` / `caused by: inner`) and nothing else: no stack backtrace, even when
//!   `RUST_BACKTRACE=1` is set, as the dora daemon's environment often has it and the dora log
//!   repeats a node's last lines. Set `VIPA_BACKTRACE=1` to get eyre's full report.

use std::process::ExitCode;

use dora_node_api::{DoraNode, EventStream};
use eyre::WrapErr;

use crate::config::{CONFIG_ENV, NodeConfig};

/// Environment variable that asks for eyre's full report (with a backtrace) on failure.
pub const BACKTRACE_ENV: &str = "VIPA_BACKTRACE";

/// What `--help` says about a node.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo {
    /// The binary's name (`env!("CARGO_PKG_NAME")`).
    pub name: &'static str,
    /// One paragraph: what the node does (`env!("CARGO_PKG_DESCRIPTION")`).
    pub about: &'static str,
    /// The source of the node's config module (`include_str!("config.rs")`): its first
    /// ```` ```yaml ```` doc block lists the settings and their defaults.
    pub config_source: &'static str,
}

/// The first ```` ```yaml ```` block of a module's `//!` docs, without the comment markers.
pub fn yaml_doc_block(source: &str) -> Option<String> {
    let mut lines = source
        .lines()
        .map(str::trim_start)
        .take_while(|l| l.starts_with("//!") || l.is_empty())
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l));
    lines.by_ref().find(|l| l.trim() == "```yaml")?;
    let block: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    (!block.is_empty()).then(|| block.join("\n"))
}

/// The `--help` text of a node.
pub fn node_usage(info: &NodeInfo) -> String {
    let mut text = format!(
        "{name}: {about}\n\n\
         This is a dora node: run it inside a dataflow (`dora run dataflows/<graph>.yml`), not by \
         hand. It takes no arguments; its settings come from {CONFIG_ENV} (set in the node's \
         `env:`), either the path of a YAML file (relative to the dataflow's folder) or inline \
         YAML. Unknown keys are errors that list the allowed ones.\n",
        name = info.name,
        about = info.about.trim(),
    );
    match yaml_doc_block(info.config_source) {
        Some(yaml) => {
            text.push_str("\nSettings (defaults shown):\n\n");
            for line in yaml.lines() {
                text.push_str("  ");
                text.push_str(line);
                text.push('\n');
            }
        }
        None => text.push_str("\nSettings: see the node's config module docs.\n"),
    }
    text.push_str(&format!(
        "\nOn failure it prints the error and its causes; {BACKTRACE_ENV}=1 adds a backtrace.\n"
    ));
    text
}

/// How an error is printed: the chain, one cause a line, or (with `full`) eyre's report.
pub fn render_error(name: &str, error: &eyre::Report, full: bool) -> String {
    if full {
        return format!("{name}: error: {error:?}");
    }
    let mut text = format!("{name}: error: {error}");
    for cause in error.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}

fn backtrace_asked() -> bool {
    std::env::var(BACKTRACE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The exit code of a `main` body: success, or the error printed by [`render_error`] to stderr
/// and exit code 1.
pub fn exit_code(name: &str, result: eyre::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", render_error(name, &e, backtrace_asked()));
            ExitCode::FAILURE
        }
    }
}

/// What the command line asks of a node binary.
#[derive(Debug, PartialEq, Eq)]
pub enum NodeArgs {
    /// No arguments: run.
    Run,
    /// `-h` / `--help`.
    Help,
    /// Anything else (the argument).
    Unexpected(String),
}

/// Reads a node's arguments (without the program name).
pub fn node_args(args: impl IntoIterator<Item = String>) -> NodeArgs {
    let mut args = args.into_iter();
    match args.next() {
        None => NodeArgs::Run,
        Some(a) if a == "-h" || a == "--help" => NodeArgs::Help,
        Some(a) => NodeArgs::Unexpected(a),
    }
}

/// A dora node's `main`: answers `--help`, refuses arguments, runs `body`, and prints a failure
/// as [`exit_code`] does.
pub fn node_main(info: NodeInfo, body: impl FnOnce() -> eyre::Result<()>) -> ExitCode {
    match node_args(std::env::args().skip(1)) {
        NodeArgs::Help => {
            print!("{}", node_usage(&info));
            ExitCode::SUCCESS
        }
        NodeArgs::Unexpected(a) => {
            eprintln!(
                "{}: error: unexpected argument `{a}`: a node takes no arguments, its settings \
                 come from {CONFIG_ENV}; see `{} --help`",
                info.name, info.name
            );
            ExitCode::from(2)
        }
        NodeArgs::Run => exit_code(info.name, body()),
    }
}

/// The whole `main` of a vipa dora node: [`node_main`] around tracing setup, the config from
/// `VIPA_CONFIG`, the connection to dora, and `run`.
pub fn run_node<C: NodeConfig>(
    info: NodeInfo,
    run: impl FnOnce(DoraNode, EventStream, C) -> eyre::Result<()>,
) -> ExitCode {
    node_main(info, || {
        crate::init_tracing(info.name);
        let cfg: C = crate::load_config().wrap_err_with(|| format!("{} config", info.name))?;
        let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
        run(node, events, cfg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eyre::WrapErr;

    const SOURCE: &str = "//! Config of a demo node.\n//!\n//! ```yaml\n//! fps: 10      # frames a second\n//! out: out/x\n//! ```\n//! More text.\n\nuse std::path::PathBuf;\n//! ```yaml\n//! late: 1\n//! ```\n";

    #[test]
    fn the_yaml_block_of_the_module_docs_is_the_settings() {
        assert_eq!(
            yaml_doc_block(SOURCE).as_deref(),
            Some("fps: 10      # frames a second\nout: out/x")
        );
        assert_eq!(yaml_doc_block("//! no block\nfn f() {}\n"), None);
        let usage = node_usage(&NodeInfo {
            name: "demo",
            about: "does a demo",
            config_source: SOURCE,
        });
        assert!(usage.starts_with("demo: does a demo\n"), "{usage}");
        assert!(usage.contains("  fps: 10"), "{usage}");
        assert!(!usage.contains("late"), "{usage}");
        assert!(usage.contains(CONFIG_ENV), "{usage}");
    }

    #[test]
    fn an_error_prints_its_chain_and_no_backtrace() {
        let err = Err::<(), _>(std::io::Error::other("unknown key `fsp`"))
            .wrap_err("invalid config in VIPA_CONFIG")
            .wrap_err("vipa-demo config")
            .unwrap_err();
        let text = render_error("vipa-demo", &err, false);
        assert_eq!(
            text,
            "vipa-demo: error: vipa-demo config\n  caused by: invalid config in VIPA_CONFIG\n  \
             caused by: unknown key `fsp`"
        );
        let full = render_error("vipa-demo", &err, true);
        assert!(full.contains("unknown key `fsp`"), "{full}");
        assert!(full.lines().count() > text.lines().count(), "{full}");
    }

    #[test]
    fn a_node_answers_help_and_refuses_flags() {
        let v = |a: &[&str]| node_args(a.iter().map(|s| s.to_string()));
        assert_eq!(v(&[]), NodeArgs::Run);
        assert_eq!(v(&["--help"]), NodeArgs::Help);
        assert_eq!(v(&["-h"]), NodeArgs::Help);
        assert_eq!(v(&["--fps", "3"]), NodeArgs::Unexpected("--fps".into()));
    }
}
