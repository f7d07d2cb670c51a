//! dora node binary: see the `vipa_lift_depth` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_lift_depth::LiftDepthConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-lift-depth");
    let cfg: LiftDepthConfig = vipa_node_kit::load_config().wrap_err("vipa-lift-depth config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_lift_depth::node::run(node, events, cfg)
}
