//! dora node binary: see the `vipa_encoder_3d` library docs (`--help` lists its settings).

use std::process::ExitCode;

use vipa_encoder_3d::Encoder3dConfig;
use vipa_node_kit::NodeInfo;

fn main() -> ExitCode {
    let info = NodeInfo {
        name: env!("CARGO_PKG_NAME"),
        about: env!("CARGO_PKG_DESCRIPTION"),
        config_source: include_str!("config.rs"),
    };
    vipa_node_kit::run_node::<Encoder3dConfig>(info, vipa_encoder_3d::node::run)
}
