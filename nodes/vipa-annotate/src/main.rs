//! dora node binary: see the `vipa_annotate` library docs (`--help` lists its settings).

use std::process::ExitCode;

use vipa_annotate::AnnotateConfig;
use vipa_node_kit::NodeInfo;

fn main() -> ExitCode {
    let info = NodeInfo {
        name: env!("CARGO_PKG_NAME"),
        about: env!("CARGO_PKG_DESCRIPTION"),
        config_source: include_str!("config.rs"),
    };
    vipa_node_kit::run_node::<AnnotateConfig>(info, vipa_annotate::node::run)
}
