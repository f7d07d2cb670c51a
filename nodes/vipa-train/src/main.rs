//! dora node binary: see the `vipa_train` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_train::TrainConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-train");
    let cfg: TrainConfig = vipa_node_kit::load_config().wrap_err("vipa-train config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_train::node::run(node, events, cfg)
}
