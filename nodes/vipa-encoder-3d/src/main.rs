//! dora node binary: see the `vipa_encoder_3d` library docs.

use dora_node_api::DoraNode;
use eyre::WrapErr;
use vipa_encoder_3d::Encoder3dConfig;

fn main() -> eyre::Result<()> {
    vipa_node_kit::init_tracing("vipa-encoder-3d");
    let cfg: Encoder3dConfig = vipa_node_kit::load_config().wrap_err("vipa-encoder-3d config")?;
    let (node, events) = DoraNode::init_from_env().wrap_err("cannot connect to dora")?;
    vipa_encoder_3d::node::run(node, events, cfg)
}
