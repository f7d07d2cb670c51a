//! dora node binary: see the `vipa_dataset_reader` library docs (`--help` lists its settings).

use std::process::ExitCode;

use vipa_dataset_reader::ReaderConfig;
use vipa_node_kit::NodeInfo;

fn main() -> ExitCode {
    let info = NodeInfo {
        name: env!("CARGO_PKG_NAME"),
        about: env!("CARGO_PKG_DESCRIPTION"),
        config_source: include_str!("config.rs"),
    };
    vipa_node_kit::run_node::<ReaderConfig>(info, vipa_dataset_reader::node::run)
}
