//! dora node binary: see the `vipa_lift_hands` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_lift_hands::LiftHandsConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-lift-hands");
    let cfg: LiftHandsConfig = vipa_node_kit::load_config().wrap_err("vipa-lift-hands config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_lift_hands::node::run(node, events, cfg)
}
