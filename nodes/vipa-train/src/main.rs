//! dora node binary: see the `vipa_train` library docs (`--help` lists its settings).

use std::process::ExitCode;

use vipa_node_kit::NodeInfo;
use vipa_train::TrainConfig;

fn main() -> ExitCode {
    let info = NodeInfo {
        name: env!("CARGO_PKG_NAME"),
        about: env!("CARGO_PKG_DESCRIPTION"),
        config_source: include_str!("config.rs"),
    };
    vipa_node_kit::run_node::<TrainConfig>(info, vipa_train::node::run)
}
