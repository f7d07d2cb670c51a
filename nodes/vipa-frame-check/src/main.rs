//! dora node binary: see the `vipa_frame_check` library docs (`--help` lists its settings).

use std::process::ExitCode;

use vipa_frame_check::FrameCheckConfig;
use vipa_node_kit::NodeInfo;

fn main() -> ExitCode {
    let info = NodeInfo {
        name: env!("CARGO_PKG_NAME"),
        about: env!("CARGO_PKG_DESCRIPTION"),
        config_source: include_str!("config.rs"),
    };
    vipa_node_kit::run_node::<FrameCheckConfig>(info, vipa_frame_check::node::run)
}
