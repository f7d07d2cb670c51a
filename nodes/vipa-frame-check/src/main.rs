//! dora node binary: see the `vipa_frame_check` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_frame_check::FrameCheckConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-frame-check");
    let cfg: FrameCheckConfig = vipa_node_kit::load_config().wrap_err("vipa-frame-check config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_frame_check::node::run(node, events, cfg)
}
